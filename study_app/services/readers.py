"""Registering readers after a study was created, and cutting a reader's access."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import InvalidInput, NotFound
from study_app.services.events import record_event
from study_app.services.roster import RosterEntry, load_roster, parse_roster
from study_app.services.creation import reallocate, store_readers
from study_app.services.studies import get_study, study_design, StudySummary, summarise
from study_app.store.models import Invite, Reader, WebSession, utcnow


def add_readers(db: Database, actor: Actor, study_id: str, entries: list[RosterEntry]) -> StudySummary:
    """Add readers to a study before launch and allocate again from the seed (all or nothing)."""
    require_coordinator(actor, "add readers")
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        roles = study_design(study).roles
        existing = set(session.scalars(select(Reader.reader_key).where(Reader.study_id == study_id)))
        problems = [f"row {e.row}, column reader_id: '{e.reader_key}' is already a reader of the study"
                    for e in entries if e.reader_key in existing]
        problems += [f"row {e.row}, column role: '{e.role}' is not a role of the design ({', '.join(roles)})"
                     for e in entries if e.role not in roles]
        if problems:
            raise InvalidInput("\n".join(problems))
        store_readers(session, study, entries)
        allocation = reallocate(session, study)
        record_event(session, study_id=study_id, actor=actor, kind="readers_added",
                     payload={"readers": [e.reader_key for e in entries],
                              "n_assignments": len(allocation.assignments)})
        session.flush()
        return summarise(session, study)


def add_reader(db: Database, actor: Actor, study_id: str, reader_key: str, role: str, label: str = "",
               site: str = "") -> StudySummary:
    """Add one reader (checked like a row of a readers CSV); ``site``: their site in a multi-site study."""
    text = f"reader_id,role,label,site\n{reader_key},{role},{label},{site}\n"
    return add_readers(db, actor, study_id, parse_roster(text, source="reader"))


def import_readers(db: Database, actor: Actor, study_id: str, path: str | Path) -> StudySummary:
    return add_readers(db, actor, study_id, load_roster(path))


def revoke_reader(db: Database, actor: Actor, study_id: str, reader_key: str) -> int:
    """Revoke every link and signed-in session of a reader; returns how many were cut. Their data stays."""
    require_coordinator(actor, "revoke a reader's access")
    with db.transaction() as session:
        get_study(session, study_id)
        reader = session.scalars(
            select(Reader).where(Reader.study_id == study_id, Reader.reader_key == reader_key)
        ).first()
        if reader is None:
            raise NotFound(f"no reader '{reader_key}' in study '{study_id}'")
        now = utcnow()
        invites = session.execute(
            update(Invite).where(Invite.reader_id == reader.id, Invite.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        sessions = session.execute(
            update(WebSession).where(WebSession.reader_id == reader.id, WebSession.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        record_event(session, study_id=study_id, actor=actor, kind="access_revoked", reader_id=reader.id,
                     payload={"reader": reader_key, "invites": invites, "sessions": sessions})
        return invites + sessions
