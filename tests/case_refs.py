"""Tests name a reader's case by its case_ref, as the browser does; these find the row behind one."""

from __future__ import annotations

from sqlalchemy import select

from study_app.store.models import Assignment


def assignment_of(session, case_ref: str) -> Assignment:
    """The assignment a case_ref names (inside the caller's session)."""
    return session.scalars(select(Assignment).where(Assignment.case_ref == case_ref)).one()


def assignment_id_of(db, case_ref: str) -> int:
    """The database id of the assignment a case_ref names."""
    with db.read() as session:
        return assignment_of(session, case_ref).id


def case_ref_of(db, assignment_id: int) -> str:
    """The case_ref of an assignment id (for tests that start from the database)."""
    with db.read() as session:
        return session.get(Assignment, assignment_id).case_ref
