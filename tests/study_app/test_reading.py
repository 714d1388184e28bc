"""A reader's way through the demo study via the services: the clock, autosave, submit, answers, dependencies."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from study_app.services import reading
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.errors import AlreadySubmitted, Conflict, InvalidInput, NotFound, PermissionDenied
from study_app.store.models import Arm, Assignment, Autosave, Draft, Event, Reader, Response


def actor_for(db, key):
    with db.read() as s:
        reader = s.scalars(select(Reader).where(Reader.reader_key == key)).one()
        return reader_actor(reader.id, key)


def first_of_arm(db, actor, arm_key, status=None):
    items = reading.worklist(db, actor).items
    return next(i for i in items if i.arm_key == arm_key and (status is None or i.status == status))


def read_case(db, actor, assignment_id, text=None, answers=None):
    reading.open_case(db, actor, assignment_id)
    reading.mark_image_shown(db, actor, assignment_id)
    result = reading.submit(db, actor, assignment_id, text, active_s=1.0, hidden_s=0.0, idle_s=0.0)
    if answers is not None:
        reading.save_answers(db, actor, assignment_id, answers)
    return result


EDIT_ANSWERS = {"edit_reason": "style", "indication_applicability": "5", "writing_efficiency": "10",
                "interpretation_efficiency": "0"}


def test_worklist_counts_and_next_case(demo_study):
    db, _ = demo_study
    res1 = actor_for(db, "res1")
    worklist = reading.worklist(db, res1)
    assert worklist.total == 12 and worklist.done == 0 and worklist.remaining == 12
    assert [i.position for i in worklist.items] == list(range(1, 13))
    assert worklist.next_item().status == "ready"


def test_edit_case_full_cycle_with_timing_and_autosave(demo_study):
    db, _ = demo_study
    res1 = actor_for(db, "res1")
    item = first_of_arm(db, res1, "resident_edit_model")
    view = reading.open_case(db, res1, item.assignment_id)
    assert view.task == "edit" and view.editor_text  # the model draft, pre-filled
    assert "boxed" not in view.editor_text and "Final Answer" not in view.editor_text
    shown = reading.mark_image_shown(db, res1, item.assignment_id)
    assert reading.mark_image_shown(db, res1, item.assignment_id) == shown  # the clock starts once
    reading.autosave(db, res1, item.assignment_id, "first words")
    reading.autosave(db, res1, item.assignment_id, "first words, more")
    # A refresh (new visit) resumes the autosaved text and counts a session.
    view = reading.open_case(db, res1, item.assignment_id)
    assert view.editor_text == "first words, more" and view.first_shown_at == shown
    result = reading.submit(db, res1, item.assignment_id, "Final report.", active_s=12.5, hidden_s=1.0, idle_s=0.0)
    assert result.status == "submitted" and result.duration_s >= 0
    with pytest.raises(AlreadySubmitted):
        reading.submit(db, res1, item.assignment_id, "Second try")
    with pytest.raises(AlreadySubmitted, match="locked"):
        reading.autosave(db, res1, item.assignment_id, "late typing")
    with pytest.raises(InvalidInput, match="please answer: Why did you edit the draft"):
        reading.save_answers(db, res1, item.assignment_id, {"writing_efficiency": "5"})
    with pytest.raises(InvalidInput, match="'7' is not an option"):
        reading.save_answers(db, res1, item.assignment_id, {**EDIT_ANSWERS, "writing_efficiency": "7"})
    reading.save_answers(db, res1, item.assignment_id, EDIT_ANSWERS)
    with pytest.raises(Conflict, match="cannot be reopened"):
        reading.open_case(db, res1, item.assignment_id)
    with db.read() as s:
        a = s.get(Assignment, item.assignment_id)
        response = s.scalars(select(Response).where(Response.assignment_id == a.id)).one()
        kinds = list(s.scalars(select(Event.kind).where(Event.assignment_id == a.id).order_by(Event.id)))
    assert a.status == "completed" and a.sessions == 2
    assert response.final_text == "Final report." and response.active_s == 12.5
    assert response.duration_s == pytest.approx((a.submitted_at - a.first_shown_at).total_seconds())
    assert kinds == ["opened", "image_shown", "autosave", "autosave", "opened", "submitted", "answers_saved",
                     "completed"]


def test_submit_needs_the_image_shown_and_a_non_empty_report(demo_study):
    db, _ = demo_study
    res1 = actor_for(db, "res1")
    item = first_of_arm(db, res1, "resident_scratch")
    reading.open_case(db, res1, item.assignment_id)
    with pytest.raises(Conflict, match="image has not been shown"):
        reading.submit(db, res1, item.assignment_id, "text")
    reading.mark_image_shown(db, res1, item.assignment_id)
    with pytest.raises(InvalidInput, match="report is empty"):
        reading.submit(db, res1, item.assignment_id, "   \n")
    with pytest.raises(InvalidInput, match="control characters"):
        reading.submit(db, res1, item.assignment_id, "bad \x00 byte")
    with pytest.raises(InvalidInput, match="limit is 20,000"):
        reading.submit(db, res1, item.assignment_id, "x" * 20_001)
    with pytest.raises(InvalidInput, match="not a plausible number"):
        reading.submit(db, res1, item.assignment_id, "ok", active_s=-3)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Response)) == 0


def test_a_reader_reaches_only_their_own_assignments(demo_study):
    db, _ = demo_study
    res1, res2 = actor_for(db, "res1"), actor_for(db, "res2")
    theirs = first_of_arm(db, res2, "resident_scratch")
    for call in (reading.open_case, reading.case_view, reading.mark_image_shown):
        with pytest.raises(NotFound, match="no case"):
            call(db, res1, theirs.assignment_id)
    with pytest.raises(NotFound):
        reading.autosave(db, res1, theirs.assignment_id, "x")
    with pytest.raises(PermissionDenied):
        reading.worklist(db, SYSTEM)


def test_resident_report_releases_the_attending_cases_that_wait_on_it(demo_study):
    db, _ = demo_study
    with db.read() as s:
        waiting = s.execute(
            select(Assignment.id, Assignment.source_assignment_id, Assignment.source_b_assignment_id, Arm.key)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.status == "pending")
        ).all()
        supplier_id = next(w.source_assignment_id or w.source_b_assignment_id for w in waiting)
        supplier = s.get(Assignment, supplier_id)
        author = s.get(Reader, supplier.reader_id)
    author_actor = reader_actor(author.id, author.reader_key)
    read_case(db, author_actor, supplier_id, "Resident findings: <b>no</b> **acute** process.")
    with db.read() as s:
        released = [s.get(Assignment, w.id) for w in waiting if supplier_id in (w.source_assignment_id, w.source_b_assignment_id)]
        draft = s.scalars(select(Draft).where(Draft.source_assignment_id == supplier_id)).one()
    assert draft.origin == "reader" and draft.author_reader_id == author.id
    assert released and all(a.status == "ready" for a in released)
    for a in released:
        assert draft.id in (a.draft_id, a.a_draft_id, a.b_draft_id)


def test_compare_case_records_preference_and_pending_cannot_open(demo_study):
    db, _ = demo_study
    with db.read() as s:
        pending = s.execute(
            select(Assignment.id, Reader.id, Reader.reader_key).join(Reader, Assignment.reader_id == Reader.id)
            .where(Assignment.status == "pending")
        ).first()
    with pytest.raises(Conflict, match="waits for another reader"):
        reading.open_case(db, reader_actor(pending[1], pending[2]), pending[0])


def test_rate_reasoning_case_shows_question_trace_and_answer(demo_study):
    db, _ = demo_study
    rad1 = actor_for(db, "rad1")
    item = first_of_arm(db, rad1, "reasoning_review")
    view = reading.open_case(db, rad1, item.assignment_id)
    assert view.task == "rate_reasoning" and view.mc_question and view.mc_options and view.reasoning
    assert "boxed" not in (view.model_answer or "")
    reading.mark_image_shown(db, rad1, item.assignment_id)
    reading.submit(db, rad1, item.assignment_id)
    reading.save_answers(db, rad1, item.assignment_id, {"factuality": "5", "causal_support": "-5"})
    assert reading.worklist(db, rad1).done == 1


def test_write_arm_without_questions_completes_at_submit(demo_study):
    db, _ = demo_study
    res2 = actor_for(db, "res2")
    item = first_of_arm(db, res2, "resident_scratch")
    result = read_case(db, res2, item.assignment_id, "Lungs are clear.")
    assert result.status == "completed"
