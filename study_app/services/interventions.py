"""A coordinator's corrections to a running study: resetting one assignment, with the original kept in the log."""

from __future__ import annotations

from sqlalchemy import delete, select

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput, NotFound
from study_app.services.events import record_event
from study_app.services.export import iso
from study_app.services.release import sync_reader_rounds
from study_app.services.studies import get_study
from study_app.store.models import Answer, Assignment, Autosave, Draft, Question, Reader, Response

MIN_REASON_CHARS = 5


def reset_assignment(db: Database, actor: Actor, study_id: str, reader_key: str, position: int, *, reason: str) -> int:
    """Send one of a reader's cases back to the start (clock, text, answers), keeping what was there in the log.

    Parameters
    ----------
    reader_key, position : the reader and the case's place in their worklist (as the reader sees it).
    reason : why; required, recorded with the original data in a ``reset`` event.

    Returns the assignment id. Refused when the case's report already went to another reader as a
    draft they have opened: resetting it would change what they read.
    """
    require_coordinator(actor, "reset an assignment")
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_CHARS:
        raise InvalidInput("a reset needs a reason (a few words for the audit log)")
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        if study.status == "draft":
            raise Conflict(f"study '{study_id}' is not launched; nothing to reset")
        assignment = session.scalars(
            select(Assignment).join(Reader, Assignment.reader_id == Reader.id)
            .where(Assignment.study_id == study_id, Reader.reader_key == reader_key, Assignment.position == position)
        ).first()
        if assignment is None:
            raise NotFound(f"reader '{reader_key}' has no case at position {position} in study '{study_id}'")
        if assignment.status in ("pending", "ready"):
            raise Conflict(f"case {position} of '{reader_key}' is {assignment.status}: nothing to reset")
        released = session.scalars(select(Draft).where(Draft.source_assignment_id == assignment.id)).first()
        dependents = []
        if released is not None:
            dependents = list(session.scalars(select(Assignment).where(
                (Assignment.draft_id == released.id) | (Assignment.a_draft_id == released.id)
                | (Assignment.b_draft_id == released.id)
            )))
            started = [d for d in dependents if d.status not in ("pending", "ready")]
            if started:
                raise Conflict(
                    f"the report of case {position} of '{reader_key}' is already being read by another reader as a "
                    "draft; it cannot be reset"
                )
        response = session.scalars(select(Response).where(Response.assignment_id == assignment.id)).first()
        answers = session.execute(
            select(Question.key, Answer.value, Answer.answered_at).join(Question, Answer.question_id == Question.id)
            .where(Answer.assignment_id == assignment.id)
        ).all()
        last_autosave = session.scalars(
            select(Autosave).where(Autosave.assignment_id == assignment.id).order_by(Autosave.id.desc()).limit(1)
        ).first()
        original = {
            "reason": reason,
            "status": assignment.status,
            "opened_at": iso(assignment.opened_at),
            "first_shown_at": iso(assignment.first_shown_at),
            "submitted_at": iso(assignment.submitted_at),
            "completed_at": iso(assignment.completed_at),
            "sessions": assignment.sessions,
            "response": None if response is None else {
                "shown_text": response.shown_text, "final_text": response.final_text,
                "duration_s": response.duration_s, "active_s": response.active_s,
                "hidden_s": response.hidden_s, "idle_s": response.idle_s,
            },
            "answers": {key: value for key, value, _ in answers},
            "last_autosave": last_autosave.text if last_autosave else None,
            "released_draft_id": released.id if released else None,
        }
        for dependent in dependents:
            for column in ("draft_id", "a_draft_id", "b_draft_id"):
                if getattr(dependent, column) == released.id:
                    setattr(dependent, column, None)
        session.flush()
        if released is not None:
            session.delete(released)
        session.execute(delete(Answer).where(Answer.assignment_id == assignment.id))
        session.execute(delete(Response).where(Response.assignment_id == assignment.id))
        session.execute(delete(Autosave).where(Autosave.assignment_id == assignment.id))
        assignment.status = "pending"
        assignment.opened_at = assignment.first_shown_at = assignment.submitted_at = assignment.completed_at = None
        assignment.sessions = 0
        record_event(session, study_id=study_id, actor=actor, kind="reset", assignment_id=assignment.id,
                     reader_id=assignment.reader_id, payload=original)
        session.flush()
        # Rounds open and close whole: the dependents' readers lose a draft (their round is held again until
        # it is rewritten), and the reset case opens again with its own round.
        for reader_id in sorted({assignment.reader_id, *(d.reader_id for d in dependents)}):
            sync_reader_rounds(session, reader_id, actor=actor, at=db.now())
        return assignment.id
