"""Fixtures of the web tests: a launched demo study copied per test, signed-in readers, and their app pages."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from study_app.services import auth, reading
from study_app.services.actors import Actor
from study_app.services.database import Database, open_database

APP_SCRIPT = Path(__file__).resolve().parents[2] / "study_app" / "web" / "app.py"


@dataclass
class WebStudy:
    """The demo study in a private database file, with each demo reader's one-time invite token."""

    db: Database
    url: str
    path: Path
    invites: dict[str, str]

    def sign_in(self, reader_key: str) -> tuple[str, Actor]:
        return auth.exchange_invite(self.db, self.invites[reader_key])

    def items(self, actor: Actor, task: str | None = None, status: str | None = None):
        return [
            i for i in reading.worklist(self.db, actor).items
            if (task is None or i.task == task) and (status is None or i.status == status)
        ]


def _launched_template(tmp_path_factory, demo_cohort_dir, design: str):
    from study_app.demo import build_demo_study

    out = tmp_path_factory.mktemp(f"web-{design}")
    cohort = out / "cohort"
    shutil.copytree(demo_cohort_dir, cohort)
    path = out / "template.sqlite"
    db = open_database(f"sqlite:///{path}")
    result = build_demo_study(db, cohort_dir=cohort, design=design)
    db.dispose()
    return path, {invite.reader_key: invite.token for invite in result.invites}


def _private_copy(template, tmp_path, monkeypatch):
    from study_app.web.database import DB_URL_ENV, close_shared_databases, shared_database

    path_of_template, invites = template
    path = tmp_path / "study.sqlite"
    shutil.copyfile(path_of_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv(DB_URL_ENV, url)
    yield WebStudy(shared_database(), url, path, dict(invites))
    close_shared_databases()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory, demo_cohort_dir):
    """The launched demo study, built once; tests get copies of its database file."""
    return _launched_template(tmp_path_factory, demo_cohort_dir, "chexone")


@pytest.fixture
def web_study(demo_template, tmp_path, monkeypatch) -> WebStudy:
    """A private copy of the demo study, made the web app's database for this test."""
    yield from _private_copy(demo_template, tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def detection_template(tmp_path_factory, demo_cohort_dir):
    """The launched demo study of the shipped ai_detection design, built once."""
    return _launched_template(tmp_path_factory, demo_cohort_dir, "ai_detection")


@pytest.fixture
def detection_study(detection_template, tmp_path, monkeypatch) -> WebStudy:
    """A private copy of the ai_detection demo study, made the web app's database for this test."""
    yield from _private_copy(detection_template, tmp_path, monkeypatch)


def reader_page(session_token: str | None, **query):
    """A fresh browser tab on the app (new AppTest = new session state, like a refresh)."""
    from streamlit.testing.v1 import AppTest

    from study_app.web.session import SESSION_TOKEN_KEY

    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=30)
    if session_token is not None:
        at.session_state[SESSION_TOKEN_KEY] = session_token
    for name, value in query.items():
        at.query_params[name] = str(value)
    return at.run()


def complete_case(study: WebStudy, actor: Actor, assignment_id: int, text: str = "No acute findings.") -> None:
    """Do a case through the service layer, as a browser would (open, image shown, submit, answers)."""
    view = reading.open_case(study.db, actor, assignment_id)
    reading.mark_image_shown(study.db, actor, assignment_id)
    result = reading.submit(study.db, actor, assignment_id, text if view.task in ("write", "edit") else None)
    if result.status == "submitted":
        reading.save_answers(
            study.db, actor, assignment_id, {q.key: q.options[0]["value"] for q in view.questions}
        )


def complete_residents(study: WebStudy) -> None:
    """Finish every resident case, which releases the attendings' cases that wait for resident reports."""
    for key in ("res1", "res2"):
        _, actor = study.sign_in(key)
        for item in reading.worklist(study.db, actor).items:
            complete_case(study, actor, item.case_ref, text=f"Findings by {key}: lungs clear.")


@pytest.fixture
def open_page():
    """``open_page(session_token, **query)``: a new tab on the app, run once."""
    return reader_page


@pytest.fixture
def finish_case():
    """``finish_case(study, actor, assignment_id, text=...)``: a case done through the services."""
    return complete_case


@pytest.fixture
def residents_done(web_study) -> WebStudy:
    """The demo study after both residents finished all their cases."""
    complete_residents(web_study)
    return web_study
