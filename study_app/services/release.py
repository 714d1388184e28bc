"""When a reader's cases open: drafts bound to assignments, and reading rounds opened or held, whole.

A reader's cases open by reading round, never one by one. Every arm has a round (the design parser gives
it: an arm opens after the arms whose reports it shows, and all of a role's arms of one task open
together). A reader's round opens when every draft its assignments need exists: then all of them become
``ready`` at once; until then all of them stay ``pending``. So what a reader can see (which cases are open,
when they opened, in what order they come) depends on the round, which every arm of a task shares, and
never on where a case's draft came from. Before rounds, an attending's model-draft cases opened at launch
and their resident-draft cases one by one as residents submitted: the worklist named the source of every
draft.

A design with ``[sessions]`` adds a gate: rounds belong to reading sessions (a reader's round is the pair
(session, arm round)), and a round of session s > 1 opens only once the reader has completed every case of
the earlier sessions and ``washout_days`` have passed since the last of them was completed, by the server's
clock. The gate depends only on the reader's own completion times, never on a draft's source.

Every entry point that can change which drafts exist calls :func:`sync_reader_rounds` (study creation,
launch, a submitted report, a coordinator's reset), and so does the reader's worklist once a washout has run
out (:func:`session_schedule` says when); nothing else changes ``pending`` and ``ready``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_app.services.actors import SYSTEM, Actor
from study_app.services.events import record_event
from study_app.store.models import Arm, Assignment, Draft, Event, Study, utcnow

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


# A reader's round: (reading session, the arm's reading round), opened in this order.
RoundKey = tuple[int, int]


def _by_round(session: Session, reader_id: int) -> dict[RoundKey, list[tuple[Assignment, Arm]]]:
    """A reader's assignments (with their arms) by (reading session, reading round)."""
    by_round: dict[RoundKey, list[tuple[Assignment, Arm]]] = defaultdict(list)
    for assignment, arm in session.execute(
        select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id).where(Assignment.reader_id == reader_id)
    ):
        by_round[(assignment.reading_session, arm.reading_round)].append((assignment, arm))
    return by_round


def washout_days(study: Study) -> int:
    """The design's washout between reading sessions (0 without [sessions]), as frozen in the study."""
    return int((study.settings.get("sessions") or {}).get("washout_days", 0))


def session_opens_at(earlier: list[Assignment], washout: timedelta) -> tuple[bool, datetime | None]:
    """Whether a reader's earlier sessions are all completed, and when the washout after the last one ends.

    ``earlier`` holds the reader's assignments of the earlier sessions (or rows with their ``status`` and
    ``completed_at``).

    The one statement of the washout rule: a session opens ``washout`` after the reader completed the last
    case of every earlier session (so after their last read of any case they will read again). While an
    earlier case is unfinished the date is not known: (False, None).
    """
    if any(a.status != "completed" or a.completed_at is None for a in earlier):
        return False, None
    if not earlier:
        return True, None
    return True, max(a.completed_at for a in earlier) + washout


def _session_gates(
    by_round: dict[RoundKey, list[tuple[Assignment, Arm]]], washout: timedelta, at: datetime,
) -> dict[int, tuple[bool, datetime | None]]:
    """Per reading session: (may open at ``at``, when its washout ends or None)."""
    sessions = sorted({key[0] for key in by_round})
    gates = {}
    for reading_session in sessions:
        if reading_session == sessions[0]:
            gates[reading_session] = (True, None)
            continue
        earlier = [a for key, members in by_round.items() if key[0] < reading_session for a, _ in members]
        done, opens_at = session_opens_at(earlier, washout)
        gates[reading_session] = (done and (opens_at is None or at >= opens_at), opens_at)
    return gates


def sync_reader_rounds(
    session: Session, reader_id: int, *, actor: Actor = SYSTEM, bind: bool = True, at: datetime | None = None,
) -> list[RoundKey]:
    """Open every round of the reader whose drafts all exist and whose session's washout has passed; hold
    again a round that lost one of them.

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
        The moment of the change, by the server's clock (defaults to now); the washout is measured to it.

    Returns
    -------
    list of (session, round)
        The rounds opened by this call.
    """
    at = at or utcnow()
    by_round = _by_round(session, reader_id)
    if not by_round:
        return []
    study = session.get(Study, next(iter(by_round.values()))[0][0].study_id)
    gates = _session_gates(by_round, timedelta(days=washout_days(study)), at)
    opened = []
    for key in sorted(by_round):
        members = by_round[key]
        if bind:
            complete = all([bind_drafts(session, a, arm) for a, arm in members])
        else:
            complete = all(has_drafts(a, arm) for a, arm in members)
        complete = complete and gates[key[0]][0]
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
            payload={"session": key[0], "round": key[1], "n_cases": len(changing)},
        )
        if complete:
            opened.append(key)
    session.flush()
    return opened


@dataclass(frozen=True)
class NextSession:
    """A reader's next reading session not open yet, as the reader may be told: nothing in it depends on a
    draft's source (only on the reader's own completion times and the design's washout)."""

    reading_session: int
    opens_at: datetime | None  # None while the reader has cases of earlier sessions to finish
    washout_days: int
    washout_over: bool  # the earlier sessions are done and the washout has run out by the server's clock
    due: bool  # ... and the session's drafts are bound: a sync would open it now

    def message(self) -> str:
        """The sentence the worklist and the end screen show."""
        if self.opens_at is None:
            return (f"Your next reading session opens {self.washout_days} days after you finish the cases of this "
                    "one." if self.washout_days else "Your next reading session opens when you finish this one.")
        if self.washout_over:
            return "Your next reading session opens as soon as its cases are ready."
        return f"Your next reading session opens on {format_opening(self.opens_at)}."


def format_opening(at: datetime) -> str:
    """A session's opening as readers and coordinators read it: the date and the minute, in UTC."""
    return f"{at.day} {at.strftime('%B %Y')} at {at.strftime('%H:%M')} UTC"


def next_session_of(rows: list, washout_days: int, at: datetime) -> NextSession | None:
    """:func:`session_schedule` from a reader's worklist rows (``reading_session``, ``status``, ``completed_at``)
    without loading their arms: every page rerun asks it. ``due`` is left False (it needs the drafts); when the
    washout is over, :func:`session_schedule` says whether the session can open."""
    by_session: dict[RoundKey, list] = defaultdict(list)
    for row in rows:
        by_session[(row.reading_session, 0)].append((row, None))
    gates = _session_gates(by_session, timedelta(days=washout_days), at)
    for reading_session in sorted(gates)[1:]:
        if any(row.status == "pending" for row, _ in by_session[(reading_session, 0)]):
            may_open, opens_at = gates[reading_session]
            return NextSession(reading_session, opens_at, washout_days, may_open, False)
    return None


def session_schedule(session: Session, reader_id: int, at: datetime) -> NextSession | None:
    """The reader's first reading session after the first with cases still held, or None.

    Parameters
    ----------
    at : datetime
        Now by the server's clock (``Database.now``): the washout is measured to it.
    """
    by_round = _by_round(session, reader_id)
    if not by_round:
        return None
    study = session.get(Study, next(iter(by_round.values()))[0][0].study_id)
    days = washout_days(study)
    gates = _session_gates(by_round, timedelta(days=days), at)
    for reading_session in sorted(gates)[1:]:
        members = [m for key, rows in by_round.items() if key[0] == reading_session for m in rows]
        if not any(a.status == "pending" for a, _ in members):
            continue
        may_open, opens_at = gates[reading_session]
        due = may_open and all(has_drafts(a, arm) for a, arm in members)
        return NextSession(reading_session, opens_at, days, may_open, due)
    return None


@dataclass(frozen=True)
class SessionStatus:
    """One reading session of one reader, as the coordinator sees it (the console's schedule)."""

    reader_key: str
    role: str
    reading_session: int
    n_cases: int
    n_completed: int
    # "done", "open", "washout" (earlier sessions done, washout running), "washout over" (opens at the reader's
    # next visit, or once its drafts exist), "after session N" (an earlier session is not finished)
    state: str
    opens_at: datetime | None  # session 1: launch; later: when the washout ends, once known
    opened_at: datetime | None  # when the reader's cases of the session first opened (a round_opened event)


def study_schedule(session: Session, study: Study, at: datetime) -> list[SessionStatus]:
    """Every reader's reading sessions: cases, cases done, the state and when each opens, by the washout rule
    (:func:`session_opens_at`). Two queries for the whole study, so the console can redraw it every few seconds.
    """
    from study_app.store.models import Reader

    rows = session.execute(
        select(Reader.id, Reader.reader_key, Reader.role, Assignment.reading_session, Assignment.status,
               Assignment.completed_at)
        .join(Reader, Assignment.reader_id == Reader.id)
        .where(Assignment.study_id == study.id)
        .order_by(Reader.id, Assignment.reading_session)
    ).all()
    opened: dict[tuple[int, int], datetime] = {}
    for reader_id, event_at, payload in session.execute(
        select(Event.reader_id, Event.at, Event.payload)
        .where(Event.study_id == study.id, Event.kind == "round_opened").order_by(Event.id)
    ):
        opened.setdefault((reader_id, int((payload or {}).get("session", 1))), event_at)
    washout = timedelta(days=washout_days(study))
    by_reader: dict[int, dict[RoundKey, list]] = defaultdict(lambda: defaultdict(list))
    who: dict[int, tuple[str, str]] = {}
    for row in rows:
        by_reader[row.id][(row.reading_session, 0)].append((row, None))
        who[row.id] = (row.reader_key, row.role)
    out = []
    for reader_id, by_round in by_reader.items():
        gates = _session_gates(by_round, washout, at)
        sessions = sorted(key[0] for key in by_round)
        for reading_session in sessions:
            members = [a for a, _ in by_round[(reading_session, 0)]]
            n_completed = sum(1 for a in members if a.status == "completed")
            n_open = sum(1 for a in members if a.status != "pending")
            may_open, opens_at = gates[reading_session]
            if reading_session == sessions[0]:
                opens_at = study.launched_at
            if n_completed == len(members):
                state = "done"
            elif n_open:
                state = "open"
            elif may_open:
                state = "washout over"
            elif opens_at is not None:
                state = "washout"
            else:
                state = f"after session {max(s for s in sessions if s < reading_session)}"
            out.append(SessionStatus(*who[reader_id], reading_session, len(members), n_completed, state, opens_at,
                                     opened.get((reader_id, reading_session))))
    return out


@dataclass(frozen=True)
class RoundStatus:
    """One reading round of one reader, as the coordinator sees it (never shown to readers)."""

    reading_round: int
    n_cases: int
    n_open: int
    n_drafts_needed: int
    n_drafts_missing: int
    waits_on_arms: tuple[str, ...]
    reading_session: int = 1
    n_completed: int = 0
    opened_at: datetime | None = None  # when the round was last opened (its round_opened event)
    washout_ends_at: datetime | None = None  # for a later session: when its washout ends, once known
    held_by_session: bool = False  # a later session not open yet: earlier cases unfinished, or the washout runs


def reader_rounds(session: Session, reader_id: int, *, at: datetime | None = None) -> list[RoundStatus]:
    """Each round of a reader: how many cases, how many open, how many drafts still missing, and from where;
    with sessions, when the round opened or when its washout ends."""
    by_round = _by_round(session, reader_id)
    if not by_round:
        return []
    study = session.get(Study, next(iter(by_round.values()))[0][0].study_id)
    gates = _session_gates(by_round, timedelta(days=washout_days(study)), at or utcnow())
    opened_at: dict[RoundKey, datetime] = {}
    for event in session.scalars(select(Event).where(Event.reader_id == reader_id, Event.kind == "round_opened")
                                 .order_by(Event.id)):
        opened_at[(int(event.payload.get("session", 1)), int(event.payload.get("round", 0)))] = event.at
    out = []
    for key in sorted(by_round):
        members = by_round[key]
        needed = sum(len(arm.draft_sources) for _, arm in members)
        missing = 0
        waits: set[str] = set()
        for assignment, arm in members:
            bound = _bound_by_source(assignment, arm)
            for source, draft_id in zip(arm.draft_sources, bound):
                if draft_id is None:
                    missing += 1
                    waits.add(f"arm:{source['arm']}" if source["kind"] == "arm" else source["kind"])
        n_open = sum(1 for a, _ in members if a.status != "pending")
        out.append(RoundStatus(
            reading_round=key[1], n_cases=len(members), n_open=n_open,
            n_drafts_needed=needed, n_drafts_missing=missing, waits_on_arms=tuple(sorted(waits)),
            reading_session=key[0], n_completed=sum(1 for a, _ in members if a.status == "completed"),
            opened_at=opened_at.get(key) if n_open else None, washout_ends_at=gates[key[0]][1],
            held_by_session=not gates[key[0]][0],
        ))
    return out
