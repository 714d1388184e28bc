"""The console's Progress page shows the schedule of a crossover's reading sessions (docs/console.md, "Progress")."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest

from study_app.services import reading
from study_app.services.actors import reader_actor
from study_app.services.database import open_database

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

T0 = datetime(2027, 5, 3, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def crossover_console(small_cohort, tmp_path, monkeypatch):
    """The crossover demo study launched at T0, made the console's database, its server clock at T0."""
    from study_app.demo import build_demo_study
    from study_app.web.database import DB_URL_ENV, close_shared_databases, shared_database

    cohort = tmp_path / "cohort"
    shutil.copytree(small_cohort, cohort)
    path = tmp_path / "study.sqlite"
    db = open_database(f"sqlite:///{path}")
    db.clock = lambda: T0
    build_demo_study(db, cohort_dir=cohort, design="crossover_washout")
    db.dispose()
    monkeypatch.setenv(DB_URL_ENV, f"sqlite:///{path}")
    yield shared_database()
    close_shared_databases()


def test_the_progress_page_shows_each_readers_sessions_state_opening_and_cases_done(crossover_console, console_page):
    from sqlalchemy import select

    from study_app.store.models import Reader

    db = crossover_console
    now = {"at": T0}
    db.clock = lambda: now["at"]
    with db.read() as session:
        res1 = session.scalar(select(Reader).where(Reader.reader_key == "res1"))
        actor = reader_actor(res1.id, res1.reader_key)
    while (item := reading.worklist(db, actor).next_item()) is not None:
        now["at"] += timedelta(minutes=3)
        view = reading.open_case(db, actor, item.case_ref)
        reading.mark_image_shown(db, actor, item.case_ref)
        if reading.submit(db, actor, item.case_ref, view.editor_text or "Clear lungs.").status == "submitted":
            reading.save_answers(db, actor, item.case_ref, {q.key: q.options[0]["value"] for q in view.questions})
    finished = now["at"]
    now["at"] += timedelta(days=3)

    at = console_page("console-progress", study="demo-crossover_washout")
    assert not at.exception, at.exception
    assert "Reading sessions" in [s.value for s in at.subheader]
    schedule = next(d.value for d in at.dataframe if "opens_at" in d.value.columns)
    assert list(schedule.columns) == ["reader", "role", "session", "state", "opens_at", "opened_at", "cases", "done"]
    rows = {(r.reader, r.session): r for r in schedule.itertuples()}
    assert (rows[("res1", 1)].state, rows[("res1", 1)].cases, rows[("res1", 1)].done) == ("done", 12, 12)
    assert rows[("res1", 1)].opens_at == T0.strftime("%Y-%m-%d %H:%M")
    assert rows[("res1", 2)].state == "washout"
    assert rows[("res1", 2)].opens_at == (finished + timedelta(days=28)).strftime("%Y-%m-%d %H:%M")
    assert (rows[("res2", 1)].state, rows[("res2", 2)].state) == ("open", "after session 1")
    assert ("rad1", 2) not in rows  # the reasoning review is not part of the crossover: one session
