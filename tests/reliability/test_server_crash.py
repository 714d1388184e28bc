"""SIGKILL of the live reader server mid-case and mid-submit: the restart keeps the sign-in, the text, the clock, and
never half a submission."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from sqlalchemy import func, select

from study_app.services import auth
from study_app.store.models import Response
from tests.case_refs import assignment_of
from tests.browser_support import sign_in, wait_saved
from tests.reliability.conftest import open_case, wait_clock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What the page says once the server has taken a submission: questions follow (edit, compare) or the case is done
# at once and the next one opens (write, which asks nothing).
ACKNOWLEDGED = re.compile(r"Submitted; the clock has stopped|is saved and finished|"
                          r"Submitted: the server has your report")


def assignment_state(study, case_ref: str):
    with study.db.read() as session:
        row = assignment_of(session, case_ref)
        responses = session.scalars(select(Response).where(Response.assignment_id == row.id)).all()
        return row.status, row.first_shown_at, [(r.final_text, r.submitted_at) for r in responses]


def integrity(study) -> str:
    with sqlite3.connect(study.path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_killed_server_restarts_with_sign_in_autosaved_text_and_clock(killable_study, browser):
    study = killable_study
    actor = study.actor("res1")
    case = study.items(actor, status="ready")[0].case_ref
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, study.base, study.invites["res1"])
    open_case(page, study.base, case)
    typed = "Typed before the crash: no pneumothorax, mild cardiomegaly."
    page.locator("textarea.rs-text").fill(typed)
    wait_saved(page, timeout_ms=20_000)
    _, shown_at, _ = assignment_state(study, case)
    assert shown_at is not None

    study.server.kill()
    study.server.start()
    page.reload()
    wait_clock(page, case)
    assert page.locator("textarea.rs-text").input_value() == typed, "the autosaved text is back"
    assert any(c["name"] == auth.SESSION_COOKIE for c in page.context.cookies()), "still signed in (cookie)"
    status, shown_after, responses = assignment_state(study, case)
    assert status == "in_progress" and responses == []
    assert shown_after == shown_at, "a crash does not restart the reading clock"

    # The reader goes on where they were: the submission after the restart is stored once.
    page.locator("button.rs-submit").click()
    page.get_by_text(ACKNOWLEDGED).wait_for(timeout=30_000)
    status, _, responses = assignment_state(study, case)
    assert status in ("submitted", "completed") and [text for text, _ in responses] == [typed]
    assert integrity(study) == "ok"


@pytest.mark.parametrize("delays_s", [(0.0, 0.08, 0.25, 0.6)])
def test_kill_during_submit_leaves_whole_or_no_submission(killable_study, browser, delays_s):
    study = killable_study
    actor = study.actor("res2")
    cases = [i.case_ref for i in study.items(actor, status="ready")][: len(delays_s)]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, study.base, study.invites["res2"])
    outcomes = []
    for case, delay in zip(cases, delays_s):
        open_case(page, study.base, case)
        text = f"Submitted at the moment of the crash (delay {delay} s)."
        page.locator("textarea.rs-text").fill(text)
        page.locator("button.rs-submit").click()
        time.sleep(delay)
        study.server.kill()
        # Whatever the browser shows now left the server before it died.
        page.wait_for_timeout(300)
        acknowledged = page.get_by_text(ACKNOWLEDGED).count() > 0
        study.server.start()
        status, shown_at, responses = assignment_state(study, case)
        outcomes.append((delay, acknowledged, status, len(responses)))
        assert shown_at is not None
        if responses:
            assert status in ("submitted", "completed"), (delay, status)
            assert [t for t, _ in responses] == [text], "one whole response, the text as typed"
        else:
            assert status == "in_progress", (delay, status)
            assert not acknowledged, f"the page acknowledged the submission but nothing is stored (delay {delay})"
        # After the restart the reader finishes the case; an unsaved submit can be repeated, a saved one is not twice.
        page.goto(f"{study.base}/?case={case}")
        submit, done = page.locator("button.rs-submit"), page.get_by_text(ACKNOWLEDGED)
        # A case completed before the crash is not reopened: the page says so instead.
        finished = page.get_by_text("This case is finished and cannot be reopened")
        submit, done = submit, done.or_(finished)
        submit.or_(done).first.wait_for(timeout=30_000)
        if not done.count():
            page.locator("textarea.rs-text").fill(text)
            submit.click()
        done.first.wait_for(timeout=30_000)
        with study.db.read() as session:
            stored = session.scalar(select(func.count()).select_from(Response).where(Response.assignment_id == assignment_of(session, case).id))
        assert stored == 1, (delay, stored)
    assert integrity(study) == "ok"
    print("kill during submit (delay, acknowledged, status after restart, responses):", outcomes)


def _duration(study, case_ref: str) -> float:
    with study.db.read() as session:
        row = assignment_of(session, case_ref)
        return session.scalars(select(Response.duration_s).where(Response.assignment_id == row.id)).one()


# Presses SUBMIT from inside the page and returns when, by the page's own clock (ms since 1970), it was pressed.
PRESS = "button => { const at = performance.timeOrigin + performance.now(); button.click(); return at; }"


@pytest.mark.parametrize("server_down_at_press", [False, True], ids=["press-right-after-restart", "press-while-down"])
def test_a_restart_adds_nothing_to_the_reading_time(killable_study, browser, server_down_at_press):
    """duration_s is first image to the SUBMIT press, whatever the server went through in between.

    Right after a restart the page's websocket is still reconnecting, so a submission riding on it reached the
    new process seconds late (3.8-12.6 s were added); with the server down at the press, the browser retries
    until the new process answers, saying how long ago the press was. The true interval is measured by the
    page's own clock: from the moment the viewer drew the image to the press.
    """
    study = killable_study
    actor = study.actor("res1")
    case = next(i for i in study.items(actor, status="ready") if i.task == "edit").case_ref
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, study.base, study.invites["res1"])
    open_case(page, study.base, case)
    shown_at_ms = float(page.get_attribute(".rs-viewer", "data-shown-at"))
    page.locator("textarea.rs-text").fill("Read across a server restart.")
    wait_saved(page, timeout_ms=20_000)
    study.server.kill()
    if server_down_at_press:
        pressed_at_ms = page.locator("button.rs-submit").evaluate(PRESS)
        time.sleep(3.0)
        study.server.start()
    else:
        study.server.start()
        pressed_at_ms = page.locator("button.rs-submit").evaluate(PRESS)
    page.get_by_text(ACKNOWLEDGED).first.wait_for(timeout=60_000)
    # And the page moves on to the questions once its websocket is back, without a reload.
    page.get_by_text("Submitted; the clock has stopped").wait_for(timeout=60_000)
    scripted = (pressed_at_ms - shown_at_ms) / 1000
    duration = _duration(study, case)
    assert abs(duration - scripted) <= 0.5, (duration, scripted)
    with study.db.read() as session:
        from study_app.store.models import Event

        submitted = session.scalars(select(Event.payload).where(
            Event.assignment_id == assignment_of(session, case).id, Event.kind == "submitted")).one()
    if server_down_at_press:
        # The press reached the new process only after its 3 s and more of absence, and was dated back.
        assert submitted["age_s"] >= 3.0, submitted
