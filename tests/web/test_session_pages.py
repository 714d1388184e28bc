"""AppTest of the reader's pages in a crossover with a washout (docs/designs.md, "Sessions and washout"): the end
of a session says when the next one opens, by the server's clock, and the next session's cases open on that date."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest

from study_app.services import reading
from study_app.services.database import open_database
from tests.web.conftest import WebStudy, complete_case

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

T0 = datetime(2027, 3, 1, 8, 30, tzinfo=timezone.utc)


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def crossover_template(tmp_path_factory, demo_cohort_dir):
    """The crossover demo study (`readerstudy demo --design crossover_washout`), launched at T0, built once."""
    from study_app.demo import build_demo_study

    out = tmp_path_factory.mktemp("web-crossover")
    cohort = out / "cohort"
    shutil.copytree(demo_cohort_dir, cohort)
    path = out / "template.sqlite"
    db = open_database(f"sqlite:///{path}")
    db.clock = Clock(T0)
    result = build_demo_study(db, cohort_dir=cohort, design="crossover_washout")
    db.dispose()
    return path, {invite.reader_key: invite.token for invite in result.invites}


@pytest.fixture
def crossover_study(crossover_template, tmp_path, monkeypatch):
    """A private copy of the crossover demo, the web app's database, its server clock at T0 (moved by tests)."""
    from study_app.web.database import DB_URL_ENV, close_shared_databases, shared_database

    template, invites = crossover_template
    path = tmp_path / "study.sqlite"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv(DB_URL_ENV, url)
    db = shared_database()
    db.clock = Clock(T0)
    yield WebStudy(db, url, path, dict(invites))
    close_shared_databases()


def _worklist_page(actor):
    """The worklist page on its own (the app reaches it through navigation, which AppTest cannot click)."""
    from streamlit.testing.v1 import AppTest

    def page():
        from study_app.web.views import worklist

        worklist.render()

    at = AppTest.from_function(page, default_timeout=30)
    at.session_state["actor"] = actor
    return at.run()


def _finish_session_1(study: WebStudy, actor) -> datetime:
    clock = study.db.clock
    while (item := reading.worklist(study.db, actor).next_item()) is not None:
        clock.now += timedelta(minutes=4)
        complete_case(study, actor, item.case_ref)
    return clock.now


def test_the_reader_is_told_the_date_the_next_session_opens_and_it_opens_then(crossover_study, open_page):
    token, actor = crossover_study.sign_in("att1")
    at = _worklist_page(actor)
    assert not at.exception
    assert [i.value for i in at.info] == ["Your next reading session opens 28 days after you finish the cases of "
                                          "this one."]
    states = at.dataframe[0].value["state"].tolist()
    assert states.count("opens with your next reading session") == 12 and states.count("to do") == 12

    finished = _finish_session_1(crossover_study, actor)
    opens = finished + timedelta(days=28)
    sentence = f"Your next reading session opens on {opens.day} {opens.strftime('%B %Y at %H:%M')} UTC."
    at = open_page(token)
    assert not at.exception
    assert [i.value for i in at.info] == [f"You have done every case of this reading session. {sentence} Come "
                                          "back then; your place is kept."]
    assert [i.value for i in _worklist_page(actor).info] == [sentence]

    crossover_study.db.clock.now = opens - timedelta(minutes=1)
    assert [i.value for i in open_page(token).info] == [f"You have done every case of this reading session. "
                                                        f"{sentence} Come back then; your place is kept."]
    crossover_study.db.clock.now = opens
    at = open_page(token)
    assert not at.exception and not at.info, "a case of session 2 is on screen, not the end screen"
    items = reading.worklist(crossover_study.db, actor).items
    assert all(i.status != "pending" for i in items)
    assert [i.reading_session for i in items if i.status == "in_progress"] == [2], "the page opened its first case"


def test_every_reader_finishing_at_the_same_moment_is_told_the_same_date(crossover_study, open_page):
    """Whatever modalities (and so draft sources) their sessions hold, two readers whose last cases were completed
    at the same moment see the same sentence: it depends on their completion times only."""
    from sqlalchemy import select

    from study_app.store.models import Arm, Assignment, Reader

    actors = [crossover_study.sign_in(key) for key in ("att1", "att2")]
    for _, actor in actors:
        _finish_session_1(crossover_study, actor)
    moment = crossover_study.db.clock.now
    ours = Reader.reader_key.in_(["att1", "att2"])
    with crossover_study.db.transaction() as session:
        for a in session.scalars(select(Assignment).join(Reader).where(ours, Assignment.status == "completed")):
            a.completed_at = moment  # the same last completion for both readers
        session_1 = {key: {(case_id, arm) for case_id, arm in session.execute(
            select(Assignment.case_id, Arm.key).join(Reader).join(Arm, Assignment.arm_id == Arm.id)
            .where(Reader.reader_key == key, Assignment.reading_session == 1))} for key in ("att1", "att2")}
    assert session_1["att1"] != session_1["att2"], "their first sessions hold different modalities of the cases"
    seen = {tuple(i.value for i in open_page(token).info) for token, _ in actors}
    assert len(seen) == 1 and "opens on" in next(iter(seen))[0]
