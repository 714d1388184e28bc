"""The console's Progress page counts a multi-site study's assignments by site (docs/designs.md, "[sites]")."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def two_site_console(tmp_path, monkeypatch):
    """The two-site demo study (`readerstudy demo --design two_site`), launched, made the console's database."""
    from cohorts.demo import build_demo_cohort

    from study_app.demo import DEMO_SITES, build_demo_study
    from study_app.services.database import open_database
    from study_app.web.database import DB_URL_ENV, close_shared_databases, shared_database

    cohort = tmp_path / "cohort"
    # The sited manifest the demo builds, with its large case made small.
    build_demo_cohort(cohort, n_cases=12, seed=0, large_case_size=(64, 80), sites=DEMO_SITES,
                      manifest_name="manifest_sites.csv")
    path = tmp_path / "study.sqlite"
    db = open_database(f"sqlite:///{path}")
    build_demo_study(db, cohort_dir=cohort, design="two_site")
    db.dispose()
    monkeypatch.setenv(DB_URL_ENV, f"sqlite:///{path}")
    yield shared_database()
    close_shared_databases()


def test_the_progress_page_shows_assignments_per_site_of_the_case_and_of_the_reader(two_site_console, console_page):
    at = console_page("console-progress", study="demo-two_site")
    assert not at.exception, at.exception
    assert "Per site" in [s.value for s in at.subheader]
    by_site = next(d.value for d in at.dataframe if "case_site" in d.value.columns)
    assert list(by_site.columns[:2]) == ["case_site", "reader_site"]
    # Crossed: every reader site reads every case site.
    assert set(zip(by_site["case_site"], by_site["reader_site"])) == {
        (c, r) for c in ("site_a", "site_b") for r in ("site_a", "site_b")}
    states = ["completed", "submitted", "in_progress", "ready", "pending"]
    with two_site_console.read() as session:
        from sqlalchemy import func, select

        from study_app.store.models import Assignment
        total = session.scalar(select(func.count()).select_from(Assignment))
    assert int(by_site[states].to_numpy().sum()) == total


def test_a_study_without_sites_has_no_site_table(console_study, console_page):
    at = console_page("console-progress", study="demo")
    assert not at.exception, at.exception
    assert "Per site" not in [s.value for s in at.subheader]
