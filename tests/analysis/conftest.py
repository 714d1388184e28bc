"""Shared fixtures of the analysis tests: small simulated studies, built once per session."""

import pytest

from analysis.simulate import simulate_study


@pytest.fixture(scope="session")
def paper_sized_study():
    """11 readers x 80 cases (~500 reads), default effects (time ratio 0.7)."""
    return simulate_study(seed=3)


@pytest.fixture(scope="session")
def paper_sized_result(paper_sized_study):
    """Full analysis of the paper-sized study with few resamples (fast)."""
    from analysis import run_analysis

    return run_analysis(paper_sized_study, n_boot=200, seed=7)
