"""Fixtures shared by the whole suite: small, named for what they hold."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED_DESIGN = Path(__file__).resolve().parents[1].parent / "shared" / "design"


@pytest.fixture(scope="session")
def demo_cohort_dir(tmp_path_factory) -> Path:
    """The generated demo cohort (12 cases, PNG and 16-bit DICOM), built once per test session."""
    from cohorts.demo import build_demo_cohort

    out = tmp_path_factory.mktemp("demo-cohort")
    build_demo_cohort(out, n_cases=12, seed=0)
    return out


@pytest.fixture
def cohort_copy(demo_cohort_dir, tmp_path) -> Path:
    """A private copy of the demo cohort a test may break."""
    target = tmp_path / "cohort"
    shutil.copytree(demo_cohort_dir, target)
    return target


@pytest.fixture
def fresh_db(tmp_path):
    """An empty, migrated SQLite database file."""
    from study_app.services.database import open_database

    db = open_database(f"sqlite:///{tmp_path / 'study.sqlite'}")
    yield db
    db.dispose()


@pytest.fixture
def demo_study(fresh_db, demo_cohort_dir, tmp_path):
    """The launched demo study (CheXOne design, recorded model drafts) in a fresh database."""
    from study_app.demo import build_demo_study

    cohort = tmp_path / "demo-cohort"
    shutil.copytree(demo_cohort_dir, cohort)
    result = build_demo_study(fresh_db, cohort_dir=cohort)
    return fresh_db, result
