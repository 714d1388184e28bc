"""A reader's way through the demo study via the services: the clock, autosave, submit, answers, dependencies."""


import pytest
from sqlalchemy import func, select

from study_app.services import reading
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.errors import AlreadySubmitted, Conflict, InvalidInput, NotFound, PermissionDenied
from study_app.store.models import Arm, Assignment, Draft, Event, Reader, Response
from tests.case_refs import assignment_of


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
    view = reading.open_case(db, res1, item.case_ref)
    assert view.task == "edit" and view.editor_text  # the model draft, pre-filled
    assert "boxed" not in view.editor_text and "Final Answer" not in view.editor_text
    shown = reading.mark_image_shown(db, res1, item.case_ref)
    assert reading.mark_image_shown(db, res1, item.case_ref) == shown  # the clock starts once
    reading.autosave(db, res1, item.case_ref, "first words")
    reading.autosave(db, res1, item.case_ref, "first words, more")
    # A refresh (new visit) resumes the autosaved text and counts a session.
    view = reading.open_case(db, res1, item.case_ref)
    assert view.editor_text == "first words, more" and view.first_shown_at == shown
    result = reading.submit(db, res1, item.case_ref, "Final report.", active_s=12.5, hidden_s=1.0, idle_s=0.0)
    assert result.status == "submitted" and result.duration_s >= 0
    with pytest.raises(AlreadySubmitted):
        reading.submit(db, res1, item.case_ref, "Second try")
    with pytest.raises(AlreadySubmitted, match="locked"):
        reading.autosave(db, res1, item.case_ref, "late typing")
    with pytest.raises(InvalidInput, match="please answer: Why did you edit the draft"):
        reading.save_answers(db, res1, item.case_ref, {"writing_efficiency": "5"})
    with pytest.raises(InvalidInput, match="'7' is not an option"):
        reading.save_answers(db, res1, item.case_ref, {**EDIT_ANSWERS, "writing_efficiency": "7"})
    reading.save_answers(db, res1, item.case_ref, EDIT_ANSWERS)
    with pytest.raises(Conflict, match="cannot be reopened"):
        reading.open_case(db, res1, item.case_ref)
    with db.read() as s:
        a = assignment_of(s, item.case_ref)
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
    reading.open_case(db, res1, item.case_ref)
    with pytest.raises(Conflict, match="image has not been shown"):
        reading.submit(db, res1, item.case_ref, "text")
    reading.mark_image_shown(db, res1, item.case_ref)
    with pytest.raises(InvalidInput, match="report is empty"):
        reading.submit(db, res1, item.case_ref, "   \n")
    with pytest.raises(InvalidInput, match="control characters"):
        reading.submit(db, res1, item.case_ref, "bad \x00 byte")
    with pytest.raises(InvalidInput, match="limit is 20,000"):
        reading.submit(db, res1, item.case_ref, "x" * 20_001)
    with pytest.raises(InvalidInput, match="not a plausible number"):
        reading.submit(db, res1, item.case_ref, "ok", active_s=-3)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Response)) == 0


def test_a_reader_reaches_only_their_own_assignments(demo_study):
    db, _ = demo_study
    res1, res2 = actor_for(db, "res1"), actor_for(db, "res2")
    theirs = first_of_arm(db, res2, "resident_scratch")
    for call in (reading.open_case, reading.case_view, reading.mark_image_shown):
        with pytest.raises(NotFound, match="no such case in your worklist"):
            call(db, res1, theirs.case_ref)
    # An unknown, malformed or numeric reference is refused in exactly the same words.
    for ref in ("x" * 22, "", 7, None, "x" * 500):
        with pytest.raises(NotFound, match="^no such case in your worklist$"):
            reading.case_view(db, res1, ref)
    with pytest.raises(NotFound):
        reading.autosave(db, res1, theirs.case_ref, "x")
    with pytest.raises(PermissionDenied):
        reading.worklist(db, SYSTEM)


def _attending_rounds(db):
    with db.read() as s:
        rows = s.execute(
            select(Reader.reader_key, Assignment.status, Arm.key, Arm.reading_round)
            .join(Reader, Assignment.reader_id == Reader.id).join(Arm, Assignment.arm_id == Arm.id)
            .where(Reader.role == "attending")
        ).all()
    return rows


def test_attending_cases_open_together_when_every_report_they_need_is_in(demo_study):
    db, _ = demo_study
    rows = _attending_rounds(db)
    # Model-draft edits wait with the resident-draft ones: one round for every attending case.
    assert {r.reading_round for r in rows} == {2} and {r.status for r in rows} == {"pending"}
    with db.read() as s:
        suppliers = s.execute(
            select(Assignment.id, Assignment.case_ref, Reader.id, Reader.reader_key)
            .join(Reader, Assignment.reader_id == Reader.id)
            .where(Assignment.id.in_(select(Assignment.source_assignment_id).where(
                Assignment.source_assignment_id.is_not(None))))
            .order_by(Assignment.id)
        ).all()
    first, *rest = suppliers
    read_case(db, reader_actor(first[2], first[3]), first[1], "Resident findings: <b>no</b> **acute** process.")
    with db.read() as s:
        draft = s.scalars(select(Draft).where(Draft.source_assignment_id == first[0])).one()
    assert draft.origin == "reader" and draft.author_reader_id == first[2]
    # One report in: nothing opens yet, for any attending (no case opens alone).
    assert {r.status for r in _attending_rounds(db)} == {"pending"}
    for supplier_id, ref, reader_id, key in rest:
        with db.read() as s:
            status = s.get(Assignment, supplier_id).status
        if status == "ready":
            read_case(db, reader_actor(reader_id, key), ref, f"Findings {supplier_id}.")
    # Every report in: every attending's round is open, model-draft cases and reader-draft cases alike.
    assert {r.status for r in _attending_rounds(db)} == {"ready"}
    with db.read() as s:
        opened = s.scalars(select(Event).where(Event.kind == "round_opened", Event.payload["round"].as_integer() == 2)).all()
        attendings = s.scalars(select(Reader.id).where(Reader.role == "attending")).all()
        for a in s.scalars(select(Assignment).join(Arm, Assignment.arm_id == Arm.id).where(Arm.key == "attending_compare")):
            assert a.a_draft_id and a.b_draft_id
    assert sorted(e.reader_id for e in opened) == sorted(attendings)


def test_a_held_case_cannot_be_opened_and_says_only_that_it_waits_for_its_round(demo_study):
    db, _ = demo_study
    with db.read() as s:
        held = s.execute(
            select(Assignment.case_ref, Reader.id, Reader.reader_key, Arm.key).join(Reader, Assignment.reader_id == Reader.id)
            .join(Arm, Assignment.arm_id == Arm.id).where(Assignment.status == "pending")
        ).all()
    messages = set()
    for ref, reader_id, key, _arm in held:
        for call in (reading.open_case, reading.case_view):
            with pytest.raises(Conflict) as refused:
                call(db, reader_actor(reader_id, key), ref)
            messages.add(str(refused.value))
    assert {arm for *_, arm in held} == {"attending_edit_resident", "attending_edit_model", "attending_compare"}
    assert messages == {reading.HELD_MESSAGE}


def test_rate_reasoning_case_shows_question_trace_and_answer(demo_study):
    db, _ = demo_study
    rad1 = actor_for(db, "rad1")
    item = first_of_arm(db, rad1, "reasoning_review")
    view = reading.open_case(db, rad1, item.case_ref)
    assert view.task == "rate_reasoning" and view.mc_question and view.mc_options and view.reasoning
    assert "boxed" not in (view.model_answer or "")
    reading.mark_image_shown(db, rad1, item.case_ref)
    reading.submit(db, rad1, item.case_ref)
    reading.save_answers(db, rad1, item.case_ref, {"factuality": "5", "causal_support": "-5"})
    assert reading.worklist(db, rad1).done == 1


def test_write_arm_without_questions_completes_at_submit(demo_study):
    db, _ = demo_study
    res2 = actor_for(db, "res2")
    item = first_of_arm(db, res2, "resident_scratch")
    result = read_case(db, res2, item.case_ref, "Lungs are clear.")
    assert result.status == "completed"


def test_a_visual_analogue_answer_is_a_mark_on_its_scale():
    from study_app.store.models import Question

    vas = Question(key="quality", kind="vas", label="Image quality", options=[], required=True,
                   scale={"min": 0, "max": 100, "step": 5, "min_label": "unusable", "max_label": "perfect"})
    seven = Question(key="confidence", kind="likert", label="Confidence", required=False,
                     options=[{"value": str(i), "label": f"level {i}"} for i in range(1, 8)])
    accepted = reading.validate_answers([vas, seven], {"quality": "75", "confidence": "6"})
    assert accepted["quality"][1:] == ("75", "75") and accepted["confidence"][1:] == ("6", "level 6")
    assert reading.validate_answers([vas, seven], {"quality": 40.0})["quality"][1] == "40"
    for bad in ("101", "-5", "72", "lots"):
        with pytest.raises(InvalidInput, match="is not a mark from 0 to 100 on: Image quality"):
            reading.validate_answers([vas, seven], {"quality": bad})
    with pytest.raises(InvalidInput, match="please answer: Image quality"):
        reading.validate_answers([vas, seven], {"confidence": "6"})


def test_autosave_keeps_the_one_rule_of_access(demo_study):
    """The autosave reads its case with its own column query (P8), through the same rule as reader_case."""
    from study_app.services.lifecycle import change_status
    from study_app.store.models import Autosave

    db, _ = demo_study
    res1, res2 = actor_for(db, "res1"), actor_for(db, "res2")
    case = first_of_arm(db, res1, "resident_scratch").case_ref
    reading.open_case(db, res1, case)
    reading.autosave(db, res1, case, "my words")
    with pytest.raises(NotFound) as other:
        reading.autosave(db, res2, case, "not mine")
    with pytest.raises(NotFound) as unknown:
        reading.autosave(db, res2, "f" * 32, "nobody's")
    assert str(other.value) == str(unknown.value)  # someone else's case reads as an unknown one
    with pytest.raises(NotFound):
        reading.autosave(db, res1, ["not", "a", "reference"], "x")
    with pytest.raises(PermissionDenied):
        reading.autosave(db, SYSTEM, case, "x")
    change_status(db, SYSTEM, "demo", "pause", reason="maintenance")
    with pytest.raises(Conflict, match="paused"):
        reading.autosave(db, res1, case, "while paused")
    with db.read() as session:  # only the reader's own save, made while the study was open, was kept
        kept = session.scalars(select(Autosave.text).join(Assignment, Assignment.id == Autosave.assignment_id)
                               .where(Assignment.case_ref == case)).all()
    assert kept == ["my words"]
