"""In real headless Chromium: a reader marks every finding of an aided detect case, a Submit before the last one is
refused with the findings still to mark named, and the second Submit stores all fourteen marks and finishes the
case; axe finds no serious accessibility violation on the page at a common hospital laptop's size."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cohorts.findings import CHEXPERT_FINDINGS
from study_app.services.actors import reader_actor
from study_app.store.models import FindingMark, Reader
from tests.browser_support import CHROMIUM_ARGS, axe_violations, serving, sign_in
from tests.case_refs import assignment_of
from tests.web.test_browser import answer, open_case, save_and_next, shoot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def detection_server(detection_study, tmp_path):
    with serving(detection_study.url, tmp_path) as base:
        yield detection_study, base


def test_a_reader_marks_every_finding_and_submits_them_in_chromium(detection_server, chromium):
    from playwright.sync_api import sync_playwright

    study, base = detection_server
    with study.db.read() as session:  # (not sign_in: the link is single-use, the browser signs in with it)
        actor = reader_actor(session.scalars(select(Reader.id).where(Reader.reader_key == "res1")).one(), "res1")
    case_ref = next(i for i in study.items(actor, status="ready") if i.arm_key == "resident_aided").case_ref
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # (The policy bypassed for axe's inline script only, as in the desk's accessibility test.)
        page = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True).new_page()
        sign_in(page, base, study.invites["res1"])
        open_case(page, base, case_ref)
        assert page.get_by_text("· AI:").count() == 14
        shoot(page, "desk-detect-1366x768")
        for finding in CHEXPERT_FINDINGS[:-1]:
            present = finding in ("Cardiomegaly", "Support Devices")
            answer(page, f"{finding}: present?", "Present" if present else "Absent")
            answer(page, f"{finding}: confidence it is present", "4" if present else "1")
        page.wait_for_timeout(500)  # the last change's rerun stores its mark
        shoot(page, "desk-detect-marked-1366x768")
        assert axe_violations(page) == [], "no serious accessibility violation on the marked page"
        submit = page.locator("button.rs-submit")
        submit.click()
        page.get_by_text("still to mark").wait_for(timeout=20_000)
        assert "(Support Devices still to mark)" in page.locator(".rs-saved").inner_text()
        answer(page, "Support Devices: present?", "Present")
        answer(page, "Support Devices: confidence it is present", "5")
        page.wait_for_timeout(500)
        submit.click()
        what = "The AI's labels helped me read this case."
        page.get_by_role("radiogroup", name=what).wait_for(timeout=20_000)
        answer(page, what, "Agree")
        save_and_next(page)
        browser.close()
    with study.db.read() as session:
        assignment = assignment_of(session, case_ref)
        marks = {m.finding: (m.present, m.confidence) for m in
                 session.scalars(select(FindingMark).where(FindingMark.assignment_id == assignment.id))}
    assert assignment.status == "completed"
    assert len(marks) == 14 and marks["Cardiomegaly"] == (True, 4) and marks["Support Devices"] == (True, 5)
    assert marks["Edema"] == (False, 1)
