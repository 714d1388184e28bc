"""Appends to the audit log; the log is never updated or deleted (the database refuses it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from study_app.services.actors import Actor
from study_app.store.models import Event, utcnow

# Kept small: the log must stay cheap enough to write on every autosave.
MAX_PAYLOAD_KEYS = 32


# Built once; its rows come as parameters (P8).
_EVENT_ROW = insert(Event.__table__)


def record_event(
    session: Session | Connection,
    *,
    study_id: str | None,
    actor: Actor,
    kind: str,
    payload: dict[str, Any] | None = None,
    reader_id: int | None = None,
    assignment_id: int | None = None,
    at=None,
) -> None:
    """Append one event in the transaction of ``session`` (an ORM session or a Core connection): it commits or
    rolls back with the work it records.

    Written as one prepared INSERT rather than an object for the session's unit of work: the log is append-only
    (nothing reads the row back in the transaction) and it is written on every autosave and beacon (P8).
    """
    payload = dict(payload or {})
    if len(payload) > MAX_PAYLOAD_KEYS:
        raise ValueError("event payload too large")
    session.execute(_EVENT_ROW, {
        "study_id": study_id,
        "at": at or utcnow(),
        "actor": actor.audit_name(),
        "reader_id": reader_id if reader_id is not None else actor.reader_id,
        "assignment_id": assignment_id,
        "kind": kind,
        "payload": payload,
    })
