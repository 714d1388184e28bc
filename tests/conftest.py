"""Fixtures shared by the whole suite: small, named for what they hold."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on loopback, one per test worker.

    Skips when no server can be started here, unless CI is set: on CI the PostgreSQL tests must run.
    """
    from tests.postgres_server import PostgresUnavailable, start_postgres

    try:
        server = start_postgres()
    except PostgresUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL cannot be started: {error}")
        pytest.skip(f"PostgreSQL tests skipped (CI unset): {error}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.sqlite'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def fresh_db(database_url):
    """An empty, migrated database (SQLite file or PostgreSQL database)."""
    from study_app.services.database import open_database

    db = open_database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def sqlite_db(tmp_path):
    """An empty, migrated SQLite database file, for what only SQLite has (pragmas, online backup)."""
    from study_app.services.database import open_database

    db = open_database(f"sqlite:///{tmp_path / 'study.sqlite'}")
    yield db
    db.dispose()


def _demo_study(db, demo_cohort_dir, tmp_path):
    from study_app.demo import build_demo_study

    cohort = tmp_path / "demo-cohort"
    shutil.copytree(demo_cohort_dir, cohort)
    return db, build_demo_study(db, cohort_dir=cohort)


@pytest.fixture
def demo_study(fresh_db, demo_cohort_dir, tmp_path):
    """The launched demo study (CheXOne design, recorded model drafts), on SQLite and on PostgreSQL."""
    return _demo_study(fresh_db, demo_cohort_dir, tmp_path)


@pytest.fixture
def sqlite_demo_study(sqlite_db, demo_cohort_dir, tmp_path):
    """The launched demo study on a SQLite file only."""
    return _demo_study(sqlite_db, demo_cohort_dir, tmp_path)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's Chromium for the browser tests: skipped without one only when CI is unset."""
    from tests.browser_support import chromium_path

    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium found and CI is set: the CI image must install Debian's chromium")
        pytest.skip("no Chromium found (CI unset); install Debian's chromium to run the browser tests")
    pytest.importorskip("playwright.sync_api")
    return path


def _leftover_processes():
    """Processes this test process started (directly or not) that are still alive."""
    import psutil

    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def pytest_sessionfinish(session, exitstatus):
    """`make test` leaves no process behind: every server and helper a test started is stopped by now.

    Runs in each xdist worker (and in a plain run), after every fixture has been torn down; the controller's
    own children are the workers themselves. Anything still alive is killed, named, and fails the run.
    """
    import psutil

    if getattr(session.config, "workerinput", None) is None and session.config.pluginmanager.has_plugin("dsession"):
        return
    left = _leftover_processes()
    if not left:
        return
    described = []
    for process in left:
        try:
            described.append(f"pid {process.pid}: {' '.join(process.cmdline())[:160]}")
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)
    message = "processes left running by the tests (now killed):\n  " + "\n  ".join(described)
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
