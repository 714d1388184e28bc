"""End to end in real headless Chromium: sign in by link, edit, refresh mid-case, compare; then check the database."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from study_app.services import reading
from study_app.services.actors import reader_actor
from study_app.store.models import Answer, Event, Question, Reader, Response
from tests.case_refs import assignment_of
from tests.browser_support import CHROMIUM_ARGS, serving, sign_in, wait_saved

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPTED_WAIT_S = 3.0
SCREENSHOTS = Path(os.environ.get("READERSTUDY_SCREENSHOTS", "")) if os.environ.get("READERSTUDY_SCREENSHOTS") else None


@pytest.fixture
def live_server(residents_done, tmp_path):
    """`readerstudy serve` on a free loopback port, against the study's SQLite file."""
    with serving(residents_done.url, tmp_path) as base:  # stopped on every path
        yield base


def wait_clock(page, case_ref: str) -> float:
    """Wait until the viewer has drawn the case's first image and the server has started the clock."""
    page.wait_for_selector(f".rs-viewer[data-case='{case_ref}'][data-clock='started']", timeout=20_000)
    return time.monotonic()


def open_case(page, base: str, case_ref: str) -> float:
    page.goto(f"{base}/?case={case_ref}")
    start = page.get_by_role("button", name="Start")
    viewer = page.locator(f".rs-viewer[data-case='{case_ref}']")
    start.or_(viewer).first.wait_for(timeout=20_000)
    if start.count():
        start.click()
    return wait_clock(page, case_ref)


def answer(page, label: str, option: str) -> None:
    page.get_by_role("radiogroup", name=label).get_by_text(option, exact=True).click()


def save_and_next(page) -> None:
    page.get_by_role("button", name="Save and next").click()
    page.get_by_role("button", name="Save and next").wait_for(state="detached", timeout=20_000)


def edit_answers(page) -> None:
    page.get_by_role("radiogroup", name="Why did you edit the draft?").wait_for(timeout=20_000)
    answer(page, "Why did you edit the draft?", "Content: false or missing finding, wrong severity")
    for label in ("The draft helps answer the exam indication.", "The draft improves report-writing efficiency.",
                  "The draft improves interpretation efficiency."):
        answer(page, label, "Agree")


def shoot(page, name: str) -> None:
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_reader_signs_in_edits_refreshes_and_compares(residents_done, live_server, chromium):
    from playwright.sync_api import sync_playwright

    study, base = residents_done, live_server
    token = study.invites["att1"]  # the browser spends this link; the test looks at the same reader's worklist
    with study.db.read() as session:
        reader_id = session.scalars(select(Reader.id).where(Reader.reader_key == "att1")).one()
    actor = reader_actor(reader_id, "att1")
    edits = [i.case_ref for i in study.items(actor, task="edit", status="ready")]
    compare = study.items(actor, task="compare", status="ready")[0].case_ref
    first, second = edits[:2]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"{base}/signin?token={token}")
        page.click("#signin")
        page.wait_for_url(f"{base}/**")
        cookie = next(c for c in page.context.cookies() if c["name"] == "readerstudy_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        # Case 1: edit, a scripted pause, submit, answers, next.
        open_case(page, base, first)
        # The true interval, by the page's own clock: from the image drawn to the press (the test process's
        # clock would add however late it saw the page change, which under load is most of a second).
        shown_at = float(page.locator(".rs-viewer").get_attribute("data-shown-at")) / 1000
        editor = page.locator("textarea.rs-text")
        editor.fill("Edited in the browser: small left pleural effusion.")
        page.wait_for_timeout(SCRIPTED_WAIT_S * 1000)
        submitted_at = page.locator("button.rs-submit").evaluate(
            "button => { const at = performance.timeOrigin + performance.now(); button.click(); return at; }") / 1000
        edit_answers(page)
        shoot(page, "1-questions")
        save_and_next(page)

        # Case 2: type, let autosave run, refresh, check the text and the clock survived, finish.
        open_case(page, base, second)
        editor.fill("Typed before the refresh.")
        wait_saved(page, timeout_ms=15_000)
        before = reading.case_view(study.db, actor, second).first_shown_at
        page.reload()
        wait_clock(page, second)
        assert page.locator("textarea.rs-text").input_value() == "Typed before the refresh."
        shoot(page, "2-after-refresh")
        page.locator("button.rs-submit").click()
        edit_answers(page)
        save_and_next(page)

        # Case 3: compare, prefer B.
        open_case(page, base, compare)
        shoot(page, "3-compare")
        page.wait_for_timeout(500)
        page.locator("button.rs-submit").click()
        page.get_by_role("radiogroup", name="Which report do you prefer?").wait_for(timeout=20_000)
        answer(page, "Which report do you prefer?", "Report B")
        save_and_next(page)
        browser.close()

    with study.db.read() as session:
        response = session.scalars(select(Response).where(Response.assignment_id == assignment_of(session, first).id)).one()
        assert response.final_text == "Edited in the browser: small left pleural effusion."
        assert abs(response.duration_s - (submitted_at - shown_at)) <= 0.5
        assert response.duration_s >= SCRIPTED_WAIT_S
        assert response.active_s is not None and 0 < response.active_s <= response.duration_s + 0.5
        answers = dict(session.execute(
            select(Question.key, Answer.value).join(Question, Answer.question_id == Question.id)
            .where(Answer.assignment_id == assignment_of(session, first).id)
        ).all())
        assert answers == {"edit_reason": "content", "indication_applicability": "5",
                           "writing_efficiency": "5", "interpretation_efficiency": "5"}
        events = session.execute(select(Event.kind, Event.payload)
                                 .where(Event.assignment_id == assignment_of(session, first).id).order_by(Event.id)).all()
        kinds = [k for k, _ in events if k not in ("autosave", "hidden", "visible", "idle")]
        assert kinds == ["opened", "image_shown", "submitted", "answers_saved", "completed"]
        # The submission went to the server at the press, named by the press (so a retry is not a second one).
        submitted = next(p for k, p in events if k == "submitted")
        assert len(submitted["press_id"]) == 32

        second_row = assignment_of(session, second)
        assert second_row.first_shown_at == before, "a refresh does not restart the clock"
        assert second_row.sessions == 2 and second_row.status == "completed"
        assert session.scalars(select(Response.final_text).where(Response.assignment_id == assignment_of(session, second).id)).one() == (
            "Typed before the refresh."
        )
        preference = session.scalars(
            select(Answer.value).join(Question, Answer.question_id == Question.id)
            .where(Answer.assignment_id == assignment_of(session, compare).id, Question.key == "preference")
        ).one()
        assert preference == "B"
        assert assignment_of(session, compare).status == "completed"


def test_hidden_and_idle_time_reach_the_submission(residents_done, live_server, chromium):
    """A reasoning case: the tab hides for a while, the reader idles past the threshold, then submits."""
    from playwright.sync_api import sync_playwright

    study, base = residents_done, live_server
    idle_threshold = 5  # the browser's floor; the study's 60 s would make the test a minute long
    with study.db.transaction() as session:
        from study_app.store.models import Study

        row = session.get(Study, "demo")
        row.settings = {**row.settings, "idle_threshold_s": idle_threshold}
    with study.db.read() as session:
        reader_id = session.scalars(select(Reader.id).where(Reader.reader_key == "rad1")).one()
    actor = reader_actor(reader_id, "rad1")
    case = study.items(actor, task="rate_reasoning", status="ready")[0].case_ref

    hide = ("Object.defineProperty(document, 'hidden', {value: %s, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'));")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        sign_in(page, base, study.invites["rad1"])
        open_case(page, base, case)
        shoot(page, "4-reasoning")
        page.evaluate(hide % "true")
        page.wait_for_timeout(1500)
        page.evaluate(hide % "false")
        page.mouse.move(200, 300)
        page.wait_for_timeout((idle_threshold + 1.5) * 1000)
        page.mouse.move(220, 320)  # ends the idle stretch
        page.wait_for_timeout(300)
        page.locator("button.rs-submit").click()
        page.get_by_role("radiogroup", name="The reasoning is factually correct about the image.").wait_for(
            timeout=20_000)
        answer(page, "The reasoning is factually correct about the image.", "Agree")
        answer(page, "The reasoning supports the final answer.", "Strongly agree")
        save_and_next(page)
        browser.close()

    with study.db.read() as session:
        response = session.scalars(select(Response).where(Response.assignment_id == assignment_of(session, case).id)).one()
        events = session.execute(
            select(Event.kind, Event.payload).where(Event.assignment_id == assignment_of(session, case).id).order_by(Event.id)
        ).all()
    assert response.hidden_s == pytest.approx(1.5, abs=0.5)
    assert response.idle_s == pytest.approx(idle_threshold + 1.5, abs=1.0)
    assert response.active_s == pytest.approx(response.duration_s - response.hidden_s - response.idle_s, abs=1.0)
    kinds = [kind for kind, _ in events if kind != "autosave"]
    assert kinds == ["opened", "image_shown", "hidden", "visible", "idle", "submitted", "answers_saved",
                     "completed"]
    payload = dict(events)
    assert payload["visible"]["duration_s"] == pytest.approx(1.5, abs=0.5)
    assert payload["idle"]["duration_s"] >= idle_threshold
