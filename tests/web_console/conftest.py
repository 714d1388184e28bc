"""Fixtures of the console tests: the launched demo study and a study not launched yet, and a console page runner."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from study_app.services.actors import Actor, reader_actor
from study_app.services.database import Database, open_database

ENTRY = Path(__file__).with_name("console_entry.py")
COORDINATOR = Actor(kind="coordinator", name="coord", coordinator_id=1)
PAGES = ("console-studies", "console-readers", "console-drafts", "console-launch", "console-progress",
         "console-data", "console-interventions")


@dataclass
class ConsoleStudy:
    """A database made the web app's own for one test, and where its demo cohort lies."""

    db: Database
    path: Path
    cohort: Path


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """The demo cohort (12 cases, PNG and DICOM) with its one large case made small: these tests are about the
    console, not about decoding a 2500 x 3000 radiograph again and again."""
    from cohorts.demo import build_demo_cohort

    out = tmp_path_factory.mktemp("small-cohort")
    build_demo_cohort(out, n_cases=12, seed=0, large_case_size=(512, 640))
    return out


@pytest.fixture(scope="session")
def console_template(tmp_path_factory, small_cohort):
    """The launched demo study plus 'pilot', the same cohort not launched and without drafts, built once."""
    from study_app.demo import build_demo_study, write_demo_readers
    from study_app.designs import shipped_design_path
    from study_app.services.actors import SYSTEM
    from study_app.services.creation import create_study

    out = tmp_path_factory.mktemp("console")
    cohort = out / "cohort"
    shutil.copytree(small_cohort, cohort)
    path = out / "template.sqlite"
    db = open_database(f"sqlite:///{path}")
    build_demo_study(db, cohort_dir=cohort)
    create_study(db, SYSTEM, study_id="pilot", design_path=shipped_design_path("chexone"),
                 manifest_path=cohort / "manifest.csv", readers_path=write_demo_readers(out / "readers.csv"),
                 seed=7)
    db.dispose()
    return path, cohort


@pytest.fixture
def console_study(console_template, tmp_path, monkeypatch) -> ConsoleStudy:
    """A private copy of the template database, made the web app's database for this test."""
    from study_app.web.database import DB_URL_ENV, close_shared_databases, shared_database

    template, cohort = console_template
    path = tmp_path / "study.sqlite"
    shutil.copyfile(template, path)
    monkeypatch.setenv(DB_URL_ENV, f"sqlite:///{path}")
    yield ConsoleStudy(shared_database(), path, cohort)
    close_shared_databases()


def run_page(page: str, actor: Actor | None = COORDINATOR, study: str | None = None, timeout: float = 30):
    """One console page in a fresh session of ``actor``, run once (AppTest)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ENTRY), default_timeout=timeout)
    at.session_state["console_test_page"] = page
    if actor is not None:
        at.session_state["actor"] = actor
    if study is not None:
        at.session_state["console_study"] = study
    return at.run()


@pytest.fixture
def console_page():
    """``console_page(page, actor=COORDINATOR, study=None)``: a console page run once."""
    return run_page


@pytest.fixture
def a_reader() -> Actor:
    return reader_actor(1, "res1")
