"""Fixtures shared by the study_app tests."""

from __future__ import annotations

import pytest

from study_app.demo import write_demo_readers
from study_app.designs import shipped_design_path
from study_app.services.actors import SYSTEM
from study_app.services.creation import create_study


@pytest.fixture
def draft_study(fresh_db, demo_cohort_dir, tmp_path, monkeypatch):
    """The shipped CheXOne design on the demo cohort as study "pilot", not launched and without drafts; the CLI
    finds it through READERSTUDY_DB, and no vLLM API key is set (each test sets the one it needs)."""
    create_study(fresh_db, SYSTEM, study_id="pilot", design_path=shipped_design_path(),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=3)
    monkeypatch.setenv("READERSTUDY_DB", fresh_db.url)
    monkeypatch.delenv("READERSTUDY_VLLM_API_KEY", raising=False)
    return fresh_db
