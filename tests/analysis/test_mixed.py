"""Crossed random-effects mixed model recovers known time ratios from simulated studies."""

import pytest

from analysis.simulate import simulate_study
from analysis.stats import crossed_mixed_ratio


@pytest.mark.parametrize("seed, ratio", [(1, 0.7), (2, 0.5), (3, 1.0)])
def test_known_time_ratio_inside_ci(seed, ratio):
    reads = simulate_study(seed=seed, time_ratio=ratio).counted_reads()
    residents = reads[reads["reader_role"] == "resident"]
    r = crossed_mixed_ratio(residents, "duration_s", "condition", ("write", "edit_model"))
    assert r["ci_low"] < ratio < r["ci_high"]
    assert r["converged"] and not r["subsampled"]
    assert r["var_reader"] > 0 and r["var_residual"] > 0


def test_large_data_is_fitted_on_a_seeded_case_subsample():
    reads = simulate_study(n_readers=12, n_cases=200, reads_per_reader=80, seed=4).counted_reads()
    residents = reads[reads["reader_role"] == "resident"]
    r1 = crossed_mixed_ratio(residents, "duration_s", "condition", ("write", "edit_model"), max_reads=250, seed=1)
    r2 = crossed_mixed_ratio(residents, "duration_s", "condition", ("write", "edit_model"), max_reads=250, seed=1)
    assert r1["subsampled"] and r1["n_reads"] < len(residents)
    assert r1["ratio"] == r2["ratio"]
    assert r1["ci_low"] < 0.7 < r1["ci_high"]
