"""In real headless Chromium: an attending edits a draft, marks the error the edit fixed and saves; the database
holds the mark beside the answers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from study_app.store.models import Arm, ErrorAnnotation, Reader
from study_app.services.actors import reader_actor
from tests.browser_support import CHROMIUM_ARGS, serving, sign_in
from tests.case_refs import assignment_of
from tests.web.test_browser import answer, edit_answers, open_case, save_and_next

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def annotating_server(residents_done, tmp_path):
    """The demo study, its attending edit arms annotating errors, served on a free loopback port."""
    with residents_done.db.transaction() as session:
        for arm in session.scalars(select(Arm).where(Arm.key.in_(["attending_edit_model", "attending_edit_resident"]))):
            arm.annotate_errors = True
    with serving(residents_done.url, tmp_path) as base:
        yield residents_done, base


def test_an_attending_marks_the_error_of_an_edit_and_saves_it_with_the_answers(annotating_server, chromium):
    from playwright.sync_api import sync_playwright

    study, base = annotating_server
    with study.db.read() as session:
        actor = reader_actor(session.scalars(select(Reader.id).where(Reader.reader_key == "att1")).one(), "att1")
    case_ref = study.items(actor, task="edit", status="ready")[0].case_ref
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        sign_in(page, base, study.invites["att1"])
        open_case(page, base, case_ref)
        editor = page.locator("textarea.rs-text")
        editor.fill(editor.input_value() + " Heart size is normal.")
        page.locator("button.rs-submit").click()
        what = "Edit 1: what the draft got wrong"
        page.get_by_role("radiogroup", name=what).wait_for(timeout=20_000)
        assert page.get_by_text("Yours: Heart size is normal.").count() == 1
        answer(page, what, "Omission of finding")
        answer(page, "Edit 1: clinical significance (of an error)", "Clinically significant")
        edit_answers(page)
        save_and_next(page)
        browser.close()
    with study.db.read() as session:
        assignment = assignment_of(session, case_ref)
        rows = session.scalars(select(ErrorAnnotation).where(ErrorAnnotation.assignment_id == assignment.id)).all()
    assert assignment.status == "completed"
    assert [(r.segment, r.edit_kind, r.final_text, r.category, r.significant) for r in rows] == [
        (1, "insert", "Heart size is normal.", "omitted_finding", True)]
