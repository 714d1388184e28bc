"""Two tabs on one case and a page left mid-typing, in real Chromium: one submission stands, typing survives."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from study_app.services import auth, reading
from study_app.store.models import Response
from tests.case_refs import assignment_of
from tests.browser_support import sign_in, wait_saved
from tests.reliability.conftest import open_case

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_second_tab_on_the_case_is_told_at_once_and_read_only_until_it_is_the_only_one(killable_study, browser):
    study = killable_study
    actor = study.actor("res1")  # a resident's model-draft edit: open from launch
    case = study.items(actor, task="edit", status="ready")[0].case_ref
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    first = context.new_page()
    sign_in(first, study.base, study.invites["res1"])
    open_case(first, study.base, case)
    second = context.new_page()
    open_case(second, study.base, case)
    notice = second.locator(".rs-tab-notice")
    notice.wait_for(state="visible", timeout=10_000)
    assert "open in another tab" in notice.inner_text()
    assert second.locator("textarea.rs-text").get_attribute("readonly") is not None
    assert second.locator("button.rs-submit").is_disabled()
    assert first.locator(".rs-tab-notice").is_hidden() and first.locator("button.rs-submit").is_enabled()
    first.locator("textarea.rs-text").fill("Typed in the first tab.")
    wait_saved(first, timeout_ms=20_000)
    first.close()  # the only tab left takes the case over, with what the first one saved
    second.wait_for_selector(".rs-editor[data-tab='holder']", timeout=20_000)
    assert second.locator(".rs-tab-notice").is_hidden()
    box = second.locator("textarea.rs-text")
    assert box.input_value() == "Typed in the first tab."
    # The closed tab's last save arrives late (a keepalive request outlives its page): the tab that took over looks
    # again and takes it, as nothing was typed there since.
    reading.autosave(study.db, actor, case, "Typed in the first tab. Its last words.")
    from playwright.sync_api import expect

    expect(box).to_have_value("Typed in the first tab. Its last words.", timeout=10_000)
    assert second.locator(".rs-saved").inner_text() == "Updated with the other tab's last save."
    # Once the reader types here, nothing from the server replaces the box.
    box.fill("Typed in the second tab.")
    reading.autosave(study.db, actor, case, "A stale save that must not replace the box.")
    second.wait_for_timeout(3500)  # past the last look (TAKEOVER_RECHECK_MS)
    assert box.input_value() == "Typed in the second tab."
    box.fill("Finished in the second tab.")
    second.locator("button.rs-submit").click()
    second.get_by_text("Submitted; the clock has stopped").wait_for(timeout=30_000)
    with study.db.read() as session:
        texts = session.scalars(select(Response.final_text).where(Response.assignment_id == assignment_of(session, case).id)).all()
    assert texts == ["Finished in the second tab."]
    context.close()


def test_two_browsers_submitting_one_case_keep_the_first(killable_study, browser):
    # Two browsers (two profiles) cannot see each other's tabs: both edit, the server keeps the first submission.
    study = killable_study
    actor = study.actor("res1")
    case = study.items(actor, task="edit", status="ready")[0].case_ref
    token = study.session_token("res1")
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_cookies([{"name": auth.SESSION_COOKIE, "value": token, "url": study.base}])
        pages.append(context.new_page())
        open_case(pages[-1], study.base, case)
    first, second = pages
    first.locator("textarea.rs-text").fill("From the first tab.")
    second.locator("textarea.rs-text").fill("From the second tab.")
    first.locator("button.rs-submit").click()
    first.get_by_text("Submitted; the clock has stopped").wait_for(timeout=30_000)
    second.locator("button.rs-submit").click()
    second.get_by_text(re.compile("already submitted")).wait_for(timeout=30_000)
    with study.db.read() as session:
        texts = session.scalars(select(Response.final_text).where(Response.assignment_id == assignment_of(session, case).id)).all()
    assert texts == ["From the first tab."]
    for page in pages:
        page.context.close()


def test_leaving_the_page_keeps_what_was_typed(killable_study, browser):
    study = killable_study
    actor = study.actor("res2")
    case = study.items(actor, task="edit", status="ready")[0].case_ref
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, study.base, study.invites["res2"])
    open_case(page, study.base, case)
    typed = "Typed just before leaving the page."
    page.locator("textarea.rs-text").fill(typed)
    # No wait for the periodic autosave: the page-leave save must carry it. Leaving for another page fires the
    # same pagehide as closing the tab; a closed renderer under heavy CPU load can also abort the keepalive
    # request before its body is out, which no page can prevent (that loss is within the autosave's seconds).
    page.goto("about:blank")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and reading.case_view(study.db, actor, case).editor_text != typed:
        time.sleep(0.2)
    assert reading.case_view(study.db, actor, case).editor_text == typed
