"""When a reader's cases open: drafts bound to assignments, and reading rounds opened or held, whole.

A reader's cases open by reading round, never one by one. Every arm has a round (the design parser gives
it: an arm opens after the arms whose reports it shows, and all of a role's arms of one task open
together). A reader's round opens when every draft its assignments need exists: then all of them become
``ready`` at once; until then all of them stay ``pending``. So what a reader can see (which cases are open,
when they opened, in what order they come) depends on the round, which every arm of a task shares, and
never on where a case's draft came from. Before rounds, an attending's model-draft cases opened at launch
and their resident-draft cases one by one as residents submitted: the worklist named the source of every
draft.

Every entry point that can change which drafts exist calls :func:`sync_reader_rounds` (study creation,
launch, a submitted report, a coordinator's reset); nothing else changes ``pending`` and ``ready``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_app.services.actors import SYSTEM, Actor
from study_app.services.events import record_event
from study_app.store.models import Arm, Assignment, Draft, utcnow

# Statuses in which an assignment has not been started: the only ones a round opens or holds.
UNSTARTED = ("pending", "ready")


def _shown_model_drafts():
    """The rule of which model draft readers see, as a query: model drafts, first choice, not replaced."""
    return select(Draft).where(
        Draft.origin == "model",
        Draft.source_kind == "model",
        Draft.choice_index == 0,
        Draft.superseded_at.is_(None),
    )


def model_draft(session: Session, assignment: Assignment) -> Draft | None:
    """The model draft every reader of this case (and item) sees: the oldest successful one not replaced by a
    regeneration before launch (``drafting.regenerate_drafts``)."""
    query = _shown_model_drafts().where(Draft.case_id == assignment.case_id)
    if assignment.mc_item_id is not None:
        query = query.where(Draft.mc_item_id == assignment.mc_item_id)
    else:
        query = query.where(Draft.mc_item_id.is_(None), Draft.task == "findings")
    # Later generation runs never replace the draft readers were or will be shown; only an explicit regeneration
    # before launch does (it marks the old draft superseded).
    return session.scalars(query.order_by(Draft.id).limit(1)).first()


def model_drafts_by_need(session: Session, study_id: str) -> dict[tuple[int, int | None], Draft]:
    """Every model draft readers would see in a study, by (case id, MC item id or None for findings): the same
    rule as :func:`model_draft`, in one query (the launch checklist asks it for thousands of cases)."""
    shown: dict[tuple[int, int | None], Draft] = {}
    for draft in session.scalars(_shown_model_drafts().where(Draft.study_id == study_id).order_by(Draft.id)):
        if draft.mc_item_id is None and draft.task != "findings":
            continue
        shown.setdefault((draft.case_id, draft.mc_item_id), draft)
    return shown


def manifest_draft(session: Session, case_id: int) -> Draft | None:
    return session.scalars(
        select(Draft).where(Draft.case_id == case_id, Draft.source_kind == "manifest").order_by(Draft.id).limit(1)
    ).first()


def _draft_for_source(session: Session, assignment: Assignment, source: dict, slot: int) -> Draft | None:
    if source["kind"] == "model":
        return model_draft(session, assignment)
    if source["kind"] == "manifest":
        return manifest_draft(session, assignment.case_id)
    supplier = assignment.source_assignment_id if slot == 0 else assignment.source_b_assignment_id
    if supplier is None:
        return None
    return session.scalars(select(Draft).where(Draft.source_assignment_id == supplier)).first()


def bind_drafts(session: Session, assignment: Assignment, arm: Arm) -> bool:
    """Bind the drafts of an unstarted assignment that exist now; True when it has every draft it needs."""
    drafts = [_draft_for_source(session, assignment, s, i) for i, s in enumerate(arm.draft_sources)]
    if assignment.status in UNSTARTED:
        if arm.task == "compare":
            a_index = assignment.a_source_index or 0
            assignment.a_draft_id = drafts[a_index].id if drafts[a_index] is not None else None
            assignment.b_draft_id = drafts[1 - a_index].id if drafts[1 - a_index] is not None else None
        elif drafts:
            assignment.draft_id = drafts[0].id if drafts[0] is not None else None
    return all(d is not None for d in drafts)


def _bound_by_source(assignment: Assignment, arm: Arm) -> list[int | None]:
    """The bound draft ids in the order of the arm's draft sources (a compare's A is source a_source_index)."""
    if arm.task == "compare":
        a_index = assignment.a_source_index or 0
        pair = [assignment.a_draft_id, assignment.b_draft_id]
        return pair if a_index == 0 else pair[::-1]
    return [assignment.draft_id] if arm.draft_sources else []


def has_drafts(assignment: Assignment, arm: Arm) -> bool:
    """Whether the assignment's drafts are bound (a write arm needs none)."""
    return all(draft_id is not None for draft_id in _bound_by_source(assignment, arm))


def _by_round(session: Session, reader_id: int) -> dict[int, list[tuple[Assignment, Arm]]]:
    """A reader's assignments (with their arms) by reading round."""
    by_round: dict[int, list[tuple[Assignment, Arm]]] = defaultdict(list)
    for assignment, arm in session.execute(
        select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id).where(Assignment.reader_id == reader_id)
    ):
        by_round[arm.reading_round].append((assignment, arm))
    return by_round


def sync_reader_rounds(
    session: Session, reader_id: int, *, actor: Actor = SYSTEM, bind: bool = True, at: datetime | None = None,
) -> list[int]:
    """Open every round of the reader whose drafts all exist; hold again a round that lost one.

    Parameters
    ----------
    session : Session
        The caller's transaction.
    reader_id : int
    actor : Actor
        Who caused the change, for the audit log.
    bind : bool
        Bind the drafts that exist first (False when the caller just did).
    at : datetime, optional
        The moment of the change (defaults to now).

    Returns
    -------
    list of int
        The rounds opened by this call.
    """
    at = at or utcnow()
    by_round = _by_round(session, reader_id)
    opened = []
    for reading_round in sorted(by_round):
        members = by_round[reading_round]
        if bind:
            complete = all([bind_drafts(session, a, arm) for a, arm in members])
        else:
            complete = all(has_drafts(a, arm) for a, arm in members)
        was_open = any(a.status != "pending" for a, _ in members)
        target = "ready" if complete else "pending"
        changing = [a for a, _ in members if a.status in UNSTARTED and a.status != target]
        if not changing:
            continue
        for assignment in changing:
            assignment.status = target
        if complete and was_open:
            continue  # a case of an open round made ready again (a reset): its own event says so
        record_event(
            session, study_id=members[0][0].study_id, actor=actor, reader_id=reader_id, at=at,
            kind="round_opened" if complete else "round_held",
            payload={"round": reading_round, "n_cases": len(changing)},
        )
        if complete:
            opened.append(reading_round)
    session.flush()
    return opened


@dataclass(frozen=True)
class RoundStatus:
    """One reading round of one reader, as the coordinator sees it (never shown to readers)."""

    reading_round: int
    n_cases: int
    n_open: int
    n_drafts_needed: int
    n_drafts_missing: int
    waits_on_arms: tuple[str, ...]


def reader_rounds(session: Session, reader_id: int) -> list[RoundStatus]:
    """Each round of a reader: how many cases, how many open, how many drafts still missing, and from where."""
    by_round = _by_round(session, reader_id)
    out = []
    for reading_round in sorted(by_round):
        members = by_round[reading_round]
        needed = sum(len(arm.draft_sources) for _, arm in members)
        missing = 0
        waits: set[str] = set()
        for assignment, arm in members:
            bound = _bound_by_source(assignment, arm)
            for source, draft_id in zip(arm.draft_sources, bound):
                if draft_id is None:
                    missing += 1
                    waits.add(f"arm:{source['arm']}" if source["kind"] == "arm" else source["kind"])
        out.append(RoundStatus(
            reading_round=reading_round, n_cases=len(members),
            n_open=sum(1 for a, _ in members if a.status != "pending"),
            n_drafts_needed=needed, n_drafts_missing=missing, waits_on_arms=tuple(sorted(waits)),
        ))
    return out
