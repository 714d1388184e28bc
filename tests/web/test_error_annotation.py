"""AppTest of the error annotation after an edit: the edits listed, marked and saved with the answers in one press,
nothing lost on a refused save, and the same page for a model draft and a resident draft."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from study_app.services import reading
from study_app.store.models import Arm, Assignment, ErrorAnnotation
from tests.case_refs import assignment_of
from tests.web.conftest import complete_residents
from tests.web.test_pages import _walk, start

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ADDED = " Heart size is normal."


@pytest.fixture
def annotating(web_study):
    """The demo study with both attending edit arms annotating errors, after the residents finished."""
    with web_study.db.transaction() as session:
        for arm in session.scalars(select(Arm).where(Arm.key.in_(["attending_edit_model", "attending_edit_resident"]))):
            arm.annotate_errors = True
    complete_residents(web_study)
    return web_study


def _submitted_edit(study, open_page, token, actor, item, text):
    at = start(open_page(token, case=item.case_ref))
    reading.mark_image_shown(study.db, actor, item.case_ref)
    reading.submit(study.db, actor, item.case_ref, text)
    return at.run()


def _structure(at, case_ref: str) -> list:
    """What the page is made of, without the report texts: element types, labels, keys (the case's reference
    replaced), options; the number of plain-text elements but not their texts."""
    out = []
    for node in _walk(at.main):
        kind = getattr(node, "type", type(node).__name__)
        if kind == "text":
            out.append(("text",))
            continue
        label = getattr(node, "label", None)
        key = getattr(node, "key", None)
        value = getattr(node, "value", None) if kind in ("markdown", "caption", "info", "subheader") else None
        options = tuple(getattr(node, "options", ()) or ())
        out.append(tuple(str(x).replace(case_ref, "CASE") if x is not None else None
                         for x in (kind, label, key, value, options)))
    return out


def _by_source(study, actor):
    items = {i.arm_key: i for i in study.items(actor, task="edit", status="ready")}
    return items["attending_edit_model"], items["attending_edit_resident"]


def test_a_model_draft_and_a_resident_draft_get_the_same_annotation_page(annotating, open_page):
    token, actor = annotating.sign_in("att1")
    pages = []
    for item in _by_source(annotating, actor):
        draft = reading.case_view(annotating.db, actor, item.case_ref).editor_text
        at = _submitted_edit(annotating, open_page, token, actor, item, draft + ADDED)
        assert not at.exception
        labels = [r.label for r in at.radio]
        assert labels[:2] == ["Edit 1: what the draft got wrong", "Edit 1: clinical significance (of an error)"]
        assert "Yours: Heart size is normal." in [t.value for t in at.text]
        structure = _structure(at, item.case_ref)
        # The position, the case's place in the worklist, is the one difference a page may have.
        pages.append([tuple(re.sub(r"Case \d+ of", "Case N of", x) if isinstance(x, str) else x for x in row)
                      for row in structure])
    assert sum(row[0] == "radio" for row in pages[0]) == 2 + 4  # the edit's two and the four questions
    assert ("text",) in pages[0] and len(pages[0]) > 20
    assert pages[0] == pages[1]


def test_marks_are_saved_with_the_answers_in_one_press_and_survive_a_refused_save(annotating, open_page):
    token, actor = annotating.sign_in("att1")
    item = _by_source(annotating, actor)[0]
    draft = reading.case_view(annotating.db, actor, item.case_ref).editor_text
    at = _submitted_edit(annotating, open_page, token, actor, item, draft + ADDED)
    view = reading.case_view(annotating.db, actor, item.case_ref)
    assert [s["segment"] for s in view.error_segments] == [1]
    category, significance = at.radio[0], at.radio[1]
    assert category.options[:2] == ["False prediction of finding", "Omission of finding"]
    assert significance.options == ["Clinically significant", "Not clinically significant"]
    category.set_value("omitted_finding")
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    # No significance and no answers: refused, nothing written, and the mark made is still there.
    assert "edit 1: say whether the error is clinically significant" in at.error[0].value
    assert "please answer" in at.error[0].value
    with annotating.db.read() as session:
        assert assignment_of(session, item.case_ref).status == "submitted"
        assert session.scalars(select(ErrorAnnotation)).all() == []
    assert at.radio[0].value == "omitted_finding"
    at.radio[1].set_value("significant")
    for radio, question in zip(at.radio[2:], view.questions):
        radio.set_value(question.options[0]["value"])
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception and not at.error
    with annotating.db.read() as session:
        assignment = assignment_of(session, item.case_ref)
        [row] = session.scalars(select(ErrorAnnotation).where(ErrorAnnotation.assignment_id == assignment.id)).all()
    assert assignment.status == "completed"
    assert (row.segment, row.edit_kind, row.draft_text, row.final_text, row.category, row.significant) == (
        1, "insert", "", "Heart size is normal.", "omitted_finding", True)
    assert [t.value for t in at.toast][0].endswith("is saved and finished.")


def test_an_unchanged_draft_has_nothing_to_mark_and_saves_with_its_answers(annotating, open_page):
    token, actor = annotating.sign_in("att1")
    item = _by_source(annotating, actor)[1]
    draft = reading.case_view(annotating.db, actor, item.case_ref).editor_text
    at = _submitted_edit(annotating, open_page, token, actor, item, draft)
    assert "You made no edit to the draft: there is nothing to mark." in [c.value for c in at.caption]
    view = reading.case_view(annotating.db, actor, item.case_ref)
    for radio, question in zip(at.radio, view.questions):
        radio.set_value(question.options[0]["value"])
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception and not at.error
    with annotating.db.read() as session:
        assert session.scalar(select(Assignment.status).where(Assignment.case_ref == item.case_ref)) == "completed"
