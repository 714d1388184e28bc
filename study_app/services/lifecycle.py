"""A study's status after launch: pause, resume and close, each recorded in the audit log."""

from __future__ import annotations

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict
from study_app.services.events import record_event
from study_app.services.studies import get_study, StudySummary, summarise
from study_app.store.models import utcnow

# status now -> action -> status after
TRANSITIONS = {
    "open": {"pause": "paused", "close": "closed"},
    "paused": {"resume": "open", "close": "closed"},
}


def change_status(db: Database, actor: Actor, study_id: str, action: str, *, reason: str = "") -> StudySummary:
    """Pause (readers cannot work until resumed), resume, or close (for good) a launched study."""
    require_coordinator(actor, f"{action} a study")
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        allowed = TRANSITIONS.get(study.status, {})
        if action not in allowed:
            can = ", ".join(allowed) or ("nothing until it is launched" if study.status == "draft" else "nothing")
            raise Conflict(f"study '{study_id}' is {study.status}: it cannot {action} (possible: {can})")
        before = study.status
        study.status = allowed[action]
        if study.status == "closed":
            study.closed_at = utcnow()
        record_event(session, study_id=study_id, actor=actor, kind=action,
                     payload={"from": before, "to": study.status, "reason": reason})
        session.flush()
        return summarise(session, study)
