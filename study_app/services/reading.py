"""A reader's way through the study: worklist, open a case, the clock, autosave, submit, answers.

The rules of a read live here and nowhere else; the web pages, the HTTP routes and the tests call these
functions. Each call is one transaction and checks, through :func:`reader_case`, that the case belongs to
the acting reader and that reading is open. A reader names a case by its ``case_ref`` (an opaque random
string): assignment ids are sequential and never reach a browser.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_app.services.actors import Actor
from study_app.services.database import Database
from study_app.services.draft_records import new_draft
from study_app.services.detection import check_complete, detection_view, save_mark
from study_app.services.error_annotation import segments_of, validate_error_marks
from study_app.services.errors import AlreadySubmitted, Conflict, InvalidInput, NotFound, PermissionDenied
from study_app.services.events import record_event
from study_app.services.release import NextSession, next_session_of, session_schedule, sync_reader_rounds
from study_app.store.models import (
    Answer,
    Arm,
    Assignment,
    Autosave,
    Case,
    Draft,
    ErrorAnnotation,
    Event,
    Image,
    MCItem,
    Question,
    Reader,
    Response,
    Study,
)

MAX_REPORT_CHARS = 20_000
CLIENT_EVENT_KINDS = ("hidden", "visible", "idle")
# Client-measured durations above this are a broken clock, not a long read.
MAX_CLIENT_SECONDS = 7 * 24 * 3600
# How long before its request reached the server a SUBMIT press or a first image may have happened (the
# browser retries while the server restarts). Longer than any restart; short enough that a broken or
# tampered client cannot move a read's clock by much.
MAX_BEACON_AGE_S = 900.0
# The statuses in which a reader may look at a case (its images, its page).
VIEWABLE = ("ready", "in_progress", "submitted", "completed")
HELD_MESSAGE = "This case opens with your next reading round, when the previous round is complete."


@dataclass(frozen=True)
class WorklistItem:
    """One case of a reader's worklist. ``arm_key`` is for the server's own use: no page ever renders it."""

    case_ref: str
    position: int
    arm_key: str
    task: str
    status: str
    reading_round: int
    reading_session: int = 1


@dataclass(frozen=True)
class Worklist:
    reader_key: str
    study_status: str
    items: list[WorklistItem]
    can_go_back: bool = False  # the design lets a reader look at a finished case again
    # With [sessions]: the reader's next reading session not open yet, and when it opens (a date from the
    # reader's own completion times and the washout; nothing about any draft).
    next_session: NextSession | None = None

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def done(self) -> int:
        return sum(1 for i in self.items if i.status == "completed")

    @property
    def remaining(self) -> int:
        return self.total - self.done

    @property
    def waiting(self) -> int:
        """Cases held until their reading round (or reading session) opens."""
        return sum(1 for i in self.items if i.status == "pending")

    def held_for_session(self, item: WorklistItem) -> bool:
        """Whether a held case waits for a later reading session (its washout), not for a round of this one."""
        return (item.status == "pending" and self.next_session is not None
                and item.reading_session >= self.next_session.reading_session)

    def item(self, case_ref: str) -> WorklistItem | None:
        return next((i for i in self.items if i.case_ref == case_ref), None)

    def next_item(self) -> WorklistItem | None:
        """The case to work on: one already started (submitted awaiting answers first), else the next ready one."""
        for status in ("submitted", "in_progress", "ready"):
            for item in self.items:
                if item.status == status:
                    return item
        return None


@dataclass(frozen=True)
class QuestionView:
    key: str
    kind: str
    label: str
    options: list[dict]
    required: bool
    scale: dict | None = None  # a visual-analogue question's min, max, step and end labels


@dataclass(frozen=True)
class ImageView:
    ordinal: int
    view: str
    is_prior: bool


@dataclass(frozen=True)
class CaseImage:
    """An image of a case as the page lists it (no pixels); ``ordinal`` is its place in the case."""

    ordinal: int
    view: str
    is_prior: bool
    path: str
    sha256: str


# What every rerun of a case page reads, built once (constructing a statement cost about as much as running it: P8).
_CASE_IMAGES = (select(Image.ordinal, Image.view, Image.is_prior, Image.path, Image.relpath, Image.sha256)
                .where(Image.case_id == bindparam("case_id")).order_by(Image.ordinal))
_CASE_FACTS = (select(Arm.task, Arm.timed, Arm.instructions, Arm.annotate_errors, Case.indication, Case.comparison)
               .select_from(Assignment).join(Arm, Arm.id == Assignment.arm_id).join(Case, Case.id == Assignment.case_id)
               .where(Assignment.id == bindparam("assignment_id")))
_READER_CASE_COUNT = select(func.count(Assignment.id)).where(Assignment.reader_id == bindparam("reader_id"))
_ARM_QUESTIONS = (select(Question.key, Question.kind, Question.label, Question.options, Question.required,
                         Question.scale)
                  .where(Question.arm_id == bindparam("arm_id")).order_by(Question.ordinal))
_CASE_ANSWERS = (select(Question.key, Answer.value).join(Question, Answer.question_id == Question.id)
                 .where(Answer.assignment_id == bindparam("assignment_id")))
_CASE_RESPONSE = (select(Response.final_text, Response.shown_text)
                  .where(Response.assignment_id == bindparam("assignment_id")).limit(1))
_LATEST_AUTOSAVE = (select(Autosave.text).where(Autosave.assignment_id == bindparam("assignment_id"))
                    .order_by(Autosave.id.desc()).limit(1))
_DRAFT_REPORT = select(Draft.report).where(Draft.id == bindparam("draft_id"))


def case_image_files(session: Session, assignment: Assignment, study: Study) -> list[CaseImage]:
    """The images of an assignment's case in their order, with where each file is (the manifest's path, else the
    cohort folder's copy): what the image routes and the viewer read."""
    root = Path(study.cohort_root or ".")
    rows = session.execute(_CASE_IMAGES, {"case_id": assignment.case_id}).all()
    return [CaseImage(row.ordinal, row.view, row.is_prior,
                      row.path if Path(row.path).is_file() else str(root / row.relpath), row.sha256)
            for row in rows]


def default_window(study: Study) -> str:
    """The study's first window of every image (the design's [study.desk] default_window)."""
    return str((study.settings.get("desk") or {}).get("default_window", DESK_DEFAULTS["default_window"]))


@dataclass
class CaseView:
    """Everything the case page shows; deliberately nothing that says where a draft came from (no arm)."""

    case_ref: str
    position: int
    total: int
    task: str
    status: str
    timed: bool
    instructions: str
    indication: str
    comparison: str
    images: list[ImageView]
    editor_text: str = ""
    report_a: str | None = None
    report_b: str | None = None
    mc_question: str | None = None
    mc_options: dict[str, str] | None = None
    reasoning: str | None = None
    model_answer: str | None = None
    questions: list[QuestionView] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)
    first_shown_at: datetime | None = None
    submitted_at: datetime | None = None
    idle_threshold_s: float = 60.0
    # The draft as first shown (edit tasks), for the read-only copy above the editor.
    draft_text: str | None = None
    # The study's reading-desk settings (the design's [study.desk]): the same for every case of the study.
    desk: dict = field(default_factory=dict)
    # Error annotation (an edit arm's ``annotate_errors``): after SUBMIT, the edits of the draft-to-final diff to
    # mark (analysis.draft_errors.edit_segments), and the marks saved, by edit number.
    annotate_errors: bool = False
    error_segments: list[dict] = field(default_factory=list)
    error_marks: dict[int, dict] = field(default_factory=dict)
    # A detect read (study_app.services.detection.detection_view): findings, scale, the AI's labels, the marks.
    detection: dict | None = None
    # Where the images' files are, for the server's display cache (the viewer's rerun needs no second lookup);
    # never sent to the browser, which knows an image only by its place in the case.
    image_files: list[CaseImage] = field(default_factory=list, repr=False)


DESK_DEFAULTS = {"hanging": ["frontal_lateral", "current_prior", "single"], "default_window": "file",
                 "show_draft": True}


def reader_case(
    session: Session, actor: Actor, case_ref: object, *, for_update: bool = False, viewing: bool = False,
) -> Assignment:
    """The one rule of access to a case: it is the signed-in reader's, and their study is open for reading.

    Every reader entry point calls it: the case page, the image route, every beacon (shown, press, events,
    autosave) and submit. Someone else's case, an unknown reference and a malformed one are all reported
    the same way, so a reference reveals nothing. With ``viewing``, the case must also be open to look at
    (not held for a later round).
    """
    ref = _reader_ref(actor, case_ref)
    row = None
    if ref is not None:  # the case and its study in one query: every reader request and rerun runs it
        row = session.execute(_READER_CASE_FOR_UPDATE if for_update else _READER_CASE, {"case_ref": ref}).first()
    if row is None:
        raise NotFound(NOT_YOURS)
    assignment, study = row
    _check_access(actor, assignment.reader_id, study.status, assignment.status,
                  bool(study.settings.get("allow_going_back", False)), viewing=viewing)
    return assignment


NOT_YOURS = "no such case in your worklist"
# reader_case's query, built once (P8).
_READER_CASE = (select(Assignment, Study).join(Study, Study.id == Assignment.study_id)
                .where(Assignment.case_ref == bindparam("case_ref")))
_READER_CASE_FOR_UPDATE = _READER_CASE.with_for_update(of=Assignment)


def _reader_ref(actor: Actor, case_ref: object) -> str | None:
    """The case reference a reader's request names, or None when it cannot be one (refused as unknown)."""
    if actor.kind != "reader" or actor.reader_id is None:
        raise PermissionDenied("only a signed-in reader can work on a case")
    return case_ref if isinstance(case_ref, str) and 0 < len(case_ref) <= 64 else None


def _check_access(actor: Actor, reader_id: int, study_status: str, status: str, allow_going_back: bool, *,
                  viewing: bool) -> None:
    """The rule of :func:`reader_case` on the case's facts, wherever they were read from."""
    if reader_id != actor.reader_id:
        raise NotFound(NOT_YOURS)
    if study_status != "open":
        raise Conflict(f"the study is {study_status}; reading is not open")
    if viewing and status not in VIEWABLE:
        raise Conflict(HELD_MESSAGE)
    if viewing and status == "completed" and not allow_going_back:
        raise Conflict("this case is finished and cannot be reopened")


# What an autosave needs of its case, as one prepared Core query (the editor saves every few seconds: P8).
_AUTOSAVE_CASE = (
    select(Assignment.id, Assignment.reader_id, Assignment.status, Assignment.study_id,
           Study.status.label("study_status"))
    .join(Study, Study.id == Assignment.study_id)
    .where(Assignment.case_ref == bindparam("case_ref"))
)
_AUTOSAVE_ROW = insert(Autosave.__table__)


def worklist(db: Database, actor: Actor) -> Worklist:
    """The reader's cases in their order; with reading sessions, the next session's opening, and the session
    opened when its washout has run out by the server's clock (``db.now``)."""
    if actor.kind != "reader" or actor.reader_id is None:
        raise PermissionDenied("only a signed-in reader has a worklist")
    with db.read() as session:
        reader = session.execute(_WORKLIST_READER, {"reader_id": actor.reader_id}).first()
        if reader is None:
            raise NotFound("unknown reader")
        rows = _worklist_rows(session, actor.reader_id)
        next_session = None
        if reader.settings.get("sessions"):
            days, now = int(reader.settings["sessions"].get("washout_days", 0)), db.now()
            next_session = next_session_of(rows, days, now)
            if next_session is not None and next_session.washout_over and reader.status == "open":
                next_session = session_schedule(session, actor.reader_id, now)
    if next_session is not None and next_session.due and reader.status == "open":
        # The washout has run out since the reader's last visit: the session opens now (nothing else would open
        # it: no draft arrives to trigger a sync). Idempotent, so two tabs opening it at once do no harm.
        with db.transaction() as session:
            now = db.now()
            sync_reader_rounds(session, actor.reader_id, actor=actor, at=now)
            next_session = session_schedule(session, actor.reader_id, now)
            rows = _worklist_rows(session, actor.reader_id)
    return Worklist(reader.reader_key, reader.status, [WorklistItem(*row[:7]) for row in rows],
                    can_go_back=bool(reader.settings.get("allow_going_back", False)), next_session=next_session)


# The worklist's two queries, built once: every page run of a reader reads the worklist (P8).
_WORKLIST_READER = (select(Reader.reader_key, Study.status, Study.settings).join(Study, Study.id == Reader.study_id)
                    .where(Reader.id == bindparam("reader_id")))
_WORKLIST_ROWS = (
    select(Assignment.case_ref, Assignment.position, Arm.key, Arm.task, Assignment.status, Arm.reading_round,
           Assignment.reading_session, Assignment.completed_at)
    .join(Arm, Assignment.arm_id == Arm.id)
    .where(Assignment.reader_id == bindparam("reader_id"))
    .order_by(Assignment.position)
)


def _worklist_rows(session: Session, reader_id: int) -> list:
    return session.execute(_WORKLIST_ROWS, {"reader_id": reader_id}).all()


def _draft_text(session: Session, draft_id: int | None) -> str | None:
    if draft_id is None:
        return None
    return session.execute(_DRAFT_REPORT, {"draft_id": draft_id}).scalar_one()


def _case_view(session: Session, assignment: Assignment) -> CaseView:
    facts = session.execute(_CASE_FACTS, {"assignment_id": assignment.id}).one()
    study = session.get(Study, assignment.study_id)  # loaded with the case by reader_case: no query
    total = session.execute(_READER_CASE_COUNT, {"reader_id": assignment.reader_id}).scalar_one()
    files = case_image_files(session, assignment, study)
    images = [ImageView(image.ordinal, image.view, image.is_prior) for image in files]
    questions = [
        QuestionView(q.key, q.kind, q.label, list(q.options), q.required, dict(q.scale) if q.scale else None)
        for q in session.execute(_ARM_QUESTIONS, {"arm_id": assignment.arm_id})
    ]
    answers = {key: value for key, value in session.execute(_CASE_ANSWERS, {"assignment_id": assignment.id})}
    view = CaseView(
        case_ref=assignment.case_ref,
        position=assignment.position,
        total=total,
        task=facts.task,
        status=assignment.status,
        timed=facts.timed,
        instructions=facts.instructions,
        indication=facts.indication,
        comparison=facts.comparison,
        images=images, image_files=files,
        questions=questions,
        answers=answers,
        first_shown_at=assignment.first_shown_at,
        submitted_at=assignment.submitted_at,
        idle_threshold_s=float(study.settings.get("idle_threshold_s", 60)),
        # Studies created before the setting existed get the defaults.
        desk={**DESK_DEFAULTS, **(study.settings.get("desk") or {})},
    )
    response = session.execute(_CASE_RESPONSE, {"assignment_id": assignment.id}).first()
    draft = functools.cache(lambda: _draft_text(session, assignment.draft_id))  # read at most once

    if facts.task in ("write", "edit"):
        if response is not None:
            view.editor_text = response.final_text
        else:
            latest = session.execute(_LATEST_AUTOSAVE, {"assignment_id": assignment.id}).scalar()
            view.editor_text = latest if latest is not None else (draft() or "")
        if facts.task == "edit":
            view.draft_text = draft() or ""
            view.annotate_errors = bool(facts.annotate_errors)
            if facts.annotate_errors and response is not None:
                view.error_segments = segments_of(response.shown_text, response.final_text)
                view.error_marks = {
                    row.segment: {"category": row.category, "significant": row.significant}
                    for row in session.scalars(select(ErrorAnnotation).where(
                        ErrorAnnotation.assignment_id == assignment.id).order_by(ErrorAnnotation.segment))
                }
    elif facts.task == "detect":
        view.detection = detection_view(session, assignment, session.get(Arm, assignment.arm_id))
        if view.detection["shows_draft"]:
            view.draft_text = _draft_text(session, assignment.draft_id) or ""
    elif facts.task == "compare":
        view.report_a = _draft_text(session, assignment.a_draft_id)
        view.report_b = _draft_text(session, assignment.b_draft_id)
    elif facts.task == "rate_reasoning":
        item = session.get(MCItem, assignment.mc_item_id)
        draft = session.get(Draft, assignment.draft_id)
        view.mc_question = item.question
        view.mc_options = dict(item.options)
        view.reasoning = draft.reasoning or ""
        view.model_answer = draft.answer if draft.answer is not None else draft.report
    return view


def open_case(db: Database, actor: Actor, case_ref: str, *, new_visit: bool = True) -> CaseView:
    """Open a case page: the first time it becomes in progress; each new visit counts in `sessions`."""
    with db.transaction() as session:
        assignment = reader_case(session, actor, case_ref, for_update=True, viewing=True)
        now = db.now()
        if assignment.status == "ready":
            assignment.status = "in_progress"
        if assignment.opened_at is None:
            assignment.opened_at = now
        if new_visit and assignment.status == "in_progress":
            assignment.sessions += 1
            record_event(
                session, study_id=assignment.study_id, actor=actor, kind="opened",
                assignment_id=assignment.id, payload={"visit": assignment.sessions}, at=now,
            )
        session.flush()
        return _case_view(session, assignment)


def case_view(db: Database, actor: Actor, case_ref: str) -> CaseView:
    """Read-only view of a case (a rerun of the page), with no state change."""
    with db.read() as session:
        assignment = reader_case(session, actor, case_ref, viewing=True)
        return _case_view(session, assignment)


def _beacon_time(now: datetime, age_s: object, not_before: datetime | None) -> tuple[datetime, float]:
    """When something the browser reports happened: the request's arrival less the browser's own age of it.

    The browser measures ``age_s`` with its monotonic clock (0 for a request sent at once; more when it had
    to retry, e.g. while the server restarted). Bounded by MAX_BEACON_AGE_S and by ``not_before``.
    """
    try:
        age = float(age_s) if age_s is not None else 0.0
    except (TypeError, ValueError):
        raise InvalidInput("age_s must be a number of seconds") from None
    if not 0 <= age <= MAX_BEACON_AGE_S or age != age:
        raise InvalidInput(f"age_s = {age_s!r} is not between 0 and {MAX_BEACON_AGE_S:.0f} seconds")
    at = now - timedelta(seconds=age)
    if not_before is not None and at < not_before:
        at = not_before
    return at, age


def mark_image_shown(
    db: Database, actor: Actor, case_ref: str, *, age_s: float | None = None, received_at: datetime | None = None,
) -> datetime:
    """The browser reports the case's first image on screen: the clock starts, once, server side.

    ``age_s`` is how long before the request was sent, by the browser's clock, the image was drawn (it
    retries if the server was unreachable); ``received_at`` is when the request reached the server (the route
    takes it on arrival, before any queueing; default now). The clock starts at the difference, never before
    the case was opened.
    """
    with db.transaction() as session:
        assignment = reader_case(session, actor, case_ref, for_update=True, viewing=True)
        if assignment.status != "in_progress":
            if assignment.first_shown_at is not None:
                return assignment.first_shown_at
            raise Conflict("the case is not open")
        if assignment.first_shown_at is None:
            at, age = _beacon_time(received_at or db.now(), age_s, assignment.opened_at)
            assignment.first_shown_at = at
            record_event(
                session, study_id=assignment.study_id, actor=actor, kind="image_shown",
                assignment_id=assignment.id, at=at, payload={"age_s": round(age, 3)} if age else {},
            )
        return assignment.first_shown_at


PRESS_ID_CHARS = 64


def _press_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= PRESS_ID_CHARS or not value.isascii():
        raise InvalidInput("press_id must be a short ASCII string")
    return value


def _submitted_event(session: Session, assignment: Assignment) -> Event | None:
    return session.scalars(
        select(Event).where(Event.assignment_id == assignment.id, Event.kind == "submitted").order_by(Event.id.desc())
    ).first()


def validate_report_text(text: object) -> str:
    """Check a report's text: a string of printable text within the size limit. Returns it unchanged."""
    if not isinstance(text, str):
        raise InvalidInput("the report must be text")
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidInput(f"the report is {len(text):,} characters long; the limit is {MAX_REPORT_CHARS:,}")
    bad = sorted({c for c in text if unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\r\t"})
    if bad:
        raise InvalidInput(
            "the report contains control characters (" + ", ".join(f"U+{ord(c):04X}" for c in bad[:5]) + ")"
        )
    return text


def autosave(db: Database, actor: Actor, case_ref: str, text: str) -> datetime:
    """Keep a snapshot of the editor; only while the case is in progress (after SUBMIT the text is locked)."""
    text = validate_report_text(text)
    ref = _reader_ref(actor, case_ref)
    with db.core(write=True) as connection:
        case = connection.execute(_AUTOSAVE_CASE, {"case_ref": ref}).first() if ref is not None else None
        if case is None:
            raise NotFound(NOT_YOURS)
        # allow_going_back matters only to viewing, which an autosave is not
        _check_access(actor, case.reader_id, case.study_status, case.status, False, viewing=False)
        if case.status != "in_progress":
            raise AlreadySubmitted("this case is already submitted; its text is locked")
        saved_at = db.now()
        # Core statements on a Core connection, not the ORM: the editor saves every few seconds (P8).
        connection.execute(_AUTOSAVE_ROW, {"assignment_id": case.id, "text": text, "saved_at": saved_at})
        record_event(
            connection, study_id=case.study_id, actor=actor, kind="autosave",
            assignment_id=case.id, payload={"chars": len(text)}, at=saved_at,
        )
        return saved_at


def record_client_event(
    db: Database, actor: Actor, case_ref: str, kind: str, *, duration_s: float | None = None,
    client_at: str | None = None,
) -> None:
    """Log a page-visibility or idle event measured in the browser."""
    if kind not in CLIENT_EVENT_KINDS:
        raise InvalidInput(f"unknown client event '{kind}' (expected {', '.join(CLIENT_EVENT_KINDS)})")
    payload: dict = {}
    if duration_s is not None:
        payload["duration_s"] = _client_seconds(duration_s, kind)
    if client_at is not None:
        payload["client_at"] = str(client_at)[:40]
    with db.transaction() as session:
        assignment = reader_case(session, actor, case_ref)
        record_event(
            session, study_id=assignment.study_id, actor=actor, kind=kind,
            assignment_id=assignment.id, payload=payload,
        )


def _client_seconds(value: object, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number of seconds") from None
    if not 0 <= seconds <= MAX_CLIENT_SECONDS or seconds != seconds:
        raise InvalidInput(f"{name} = {value!r} is not a plausible number of seconds")
    return seconds


@dataclass(frozen=True)
class SubmitResult:
    case_ref: str
    submitted_at: datetime
    duration_s: float | None
    status: str


def submit(
    db: Database,
    actor: Actor,
    case_ref: str,
    text: str | None = None,
    *,
    active_s: float | None = None,
    hidden_s: float | None = None,
    idle_s: float | None = None,
    press_id: str | None = None,
    age_s: float | None = None,
    received_at: datetime | None = None,
) -> SubmitResult:
    """SUBMIT: lock the text, stop the clock, and release the reports other arms wait for.

    The browser sends the press itself, at once, as a request of its own (``/api/reading/{case_ref}/submit``),
    not through the page's next rerun: ``submitted_at`` is when that request reached the server, less
    ``age_s``, the browser's own measure of how long ago the press was (0 unless it had to retry while the
    server restarted), counted from ``received_at``, when the request reached the server (the route takes
    it on arrival, so time spent queueing for a thread or the database adds nothing either; default now).
    A reconnect, a restart or a slow rerun adds nothing to the read's time.

    A second submit of the same case (double click, second tab) raises :class:`AlreadySubmitted`; the first
    submission stands. The same press sent again (a retry whose first answer was lost) is not a second
    submit: it gets the first one's result. The database's one-response-per-assignment constraint backs
    this up when two requests race.
    """
    client = {
        name: (_client_seconds(value, name) if value is not None else None)
        for name, value in (("active_s", active_s), ("hidden_s", hidden_s), ("idle_s", idle_s))
    }
    press_id = _press_id(press_id)
    try:
        with db.transaction() as session:
            assignment = reader_case(session, actor, case_ref, for_update=True)
            if assignment.status in ("submitted", "completed"):
                earlier = _submitted_event(session, assignment)
                if press_id and earlier is not None and earlier.payload.get("press_id") == press_id:
                    response = session.scalars(select(Response).where(Response.assignment_id == assignment.id)).one()
                    return SubmitResult(assignment.case_ref, response.submitted_at, response.duration_s,
                                        assignment.status)
                raise AlreadySubmitted("this case was already submitted (in another tab or window); "
                                       "the first submission stands")
            if assignment.status != "in_progress":
                raise Conflict("open the case before submitting it")
            if assignment.first_shown_at is None:
                raise Conflict("the image has not been shown yet; the clock has not started")
            arm = session.get(Arm, assignment.arm_id)
            shown = ""
            final = ""
            marks = check_complete(session, assignment) if arm.task == "detect" else None
            if arm.task in ("write", "edit"):
                final = validate_report_text(text if text is not None else "")
                if not final.strip():
                    raise InvalidInput("the report is empty; write the findings before submitting")
                shown = (_draft_text(session, assignment.draft_id) or "") if arm.task == "edit" else ""
            now = db.now()
            at, age = _beacon_time(min(received_at or now, now), age_s, assignment.first_shown_at)
            duration = (at - assignment.first_shown_at).total_seconds()
            session.add(
                Response(
                    assignment_id=assignment.id,
                    shown_text=shown,
                    final_text=final,
                    submitted_at=at,
                    duration_s=duration,
                    **client,
                )
            )
            assignment.status = "submitted"
            assignment.submitted_at = at
            payload = {"duration_s": round(duration, 3), **{k: v for k, v in client.items() if v is not None}}
            if press_id:
                payload["press_id"] = press_id
            if age:
                payload["age_s"] = round(age, 3)
            if marks is not None:
                # The marks SUBMIT locked ("present/4", "absent/1"): the audit log holds what was submitted.
                payload["marks"] = {f: ("present" if m["present"] else "absent") + f"/{m['confidence']}"
                                    for f, m in marks.items()}
            record_event(
                session, study_id=assignment.study_id, actor=actor, kind="submitted",
                assignment_id=assignment.id, at=at, payload=payload,
            )
            session.flush()
            if arm.task in ("write", "edit"):
                _release_report(session, actor, assignment, final, now)
            questions = session.scalars(select(Question.id).where(Question.arm_id == arm.id)).all()
            if not questions and not arm.annotate_errors:
                _complete(session, actor, assignment, now)
            return SubmitResult(assignment.case_ref, at, duration, assignment.status)
    except IntegrityError:
        # Another request submitted the same case between our read and our write.
        raise AlreadySubmitted("this case was already submitted (in another tab or window); "
                               "the first submission stands") from None


def mark_finding(db: Database, actor: Actor, case_ref: str, finding: object, *, present: object = None,
                 confidence: object = None) -> None:
    """Save one finding's mark of an open detect read, as the reader makes it (either half may come first).

    SUBMIT locks the marks: a mark sent after it is refused, and the submitted marks stand.
    """
    with db.transaction() as session:
        assignment = reader_case(session, actor, case_ref, for_update=True)
        arm = session.get(Arm, assignment.arm_id)
        if arm.task != "detect":
            raise InvalidInput("this case has no findings to mark")
        if assignment.status in ("submitted", "completed"):
            raise AlreadySubmitted("this case is submitted; its marks are locked")
        if assignment.status != "in_progress":
            raise Conflict("open the case before marking it")
        save_mark(session, assignment, finding, present, confidence, db.now())


def _release_report(session: Session, actor: Actor, assignment: Assignment, final_text: str, now: datetime) -> None:
    """A submitted report becomes a reader draft; the rounds of the readers waiting for it may open."""
    waiting = session.scalars(
        select(Assignment).where(
            (Assignment.source_assignment_id == assignment.id) | (Assignment.source_b_assignment_id == assignment.id)
        )
    ).all()
    if not waiting:
        return
    # As written: never the model-output parser (new_draft normalises it like every draft).
    draft = new_draft(study_id=assignment.study_id, case_id=assignment.case_id, source_kind="reader", text=final_text,
                      author_reader_id=assignment.reader_id, source_assignment_id=assignment.id)
    session.add(draft)
    session.flush()
    for reader_id in sorted({dependent.reader_id for dependent in waiting}):
        sync_reader_rounds(session, reader_id, actor=actor, at=now)


def _complete(session: Session, actor: Actor, assignment: Assignment, now: datetime) -> None:
    assignment.status = "completed"
    assignment.completed_at = now
    record_event(session, study_id=assignment.study_id, actor=actor, kind="completed", assignment_id=assignment.id, at=now)


def validate_answers(questions: list[Question], answers: dict[str, object]) -> dict[str, tuple[Question, str, str]]:
    """Check answers against the arm's questions; returns key -> (question, value, label shown)."""
    by_key = {q.key: q for q in questions}
    problems = []
    unknown = sorted(set(answers) - set(by_key))
    if unknown:
        problems.append(f"unknown question(s): {', '.join(map(str, unknown))}")
    accepted: dict[str, tuple[Question, str, str]] = {}
    for question in questions:
        raw = answers.get(question.key)
        if raw is None or raw == "":
            if question.required:
                problems.append(f"please answer: {question.label}")
            continue
        if question.kind == "vas":
            mark = _scale_mark(raw, question.scale or {})
            if mark is None:
                scale = question.scale or {}
                problems.append(f"'{str(raw)[:40]}' is not a mark from {scale.get('min', 0):g} to "
                                f"{scale.get('max', 100):g} on: {question.label}")
                continue
            accepted[question.key] = (question, mark, mark)
            continue
        value = str(raw)
        labels = {o["value"]: o["label"] for o in question.options}
        if value not in labels:
            problems.append(f"'{value[:40]}' is not an option of: {question.label}")
            continue
        accepted[question.key] = (question, value, labels[value])
    if problems:
        raise InvalidInput("; ".join(problems))
    return accepted


def _scale_mark(raw: object, scale: dict) -> str | None:
    """A visual-analogue answer as its code (``73``, ``72.5``), or None when it is not a mark on the scale: a
    number from min to max on the scale's steps."""
    from study_app.designs.design import score_text

    try:
        mark = float(raw)
    except (TypeError, ValueError):
        return None
    low, high, step = float(scale.get("min", 0)), float(scale.get("max", 100)), float(scale.get("step", 1))
    if mark != mark or not low <= mark <= high:
        return None
    steps = (mark - low) / step
    if abs(steps - round(steps)) > 1e-6:
        return None
    return score_text(round(low + round(steps) * step, 6))


def save_answers(db: Database, actor: Actor, case_ref: str, answers: dict[str, object],
                 errors: dict[object, object] | None = None) -> datetime:
    """Save the feedback after SUBMIT (all at once; required ones enforced) and complete the case.

    ``errors`` are the reader's marks of the draft's edits when the arm annotates errors
    (:func:`study_app.services.error_annotation.validate_error_marks`); they are saved with the answers, in the
    same transaction, or nothing is.
    """
    try:
        with db.transaction() as session:
            assignment = reader_case(session, actor, case_ref, for_update=True)
            if assignment.status == "completed":
                raise AlreadySubmitted("the answers of this case are already saved")
            if assignment.status != "submitted":
                raise Conflict("submit the case before answering its questions")
            arm = session.get(Arm, assignment.arm_id)
            questions = list(
                session.scalars(select(Question).where(Question.arm_id == assignment.arm_id).order_by(Question.ordinal))
            )
            problems = []
            try:
                accepted = validate_answers(questions, answers)
            except InvalidInput as error:
                problems.append(str(error))
            marks = []
            if arm.annotate_errors:
                response = session.scalars(select(Response).where(Response.assignment_id == assignment.id)).one()
                try:
                    marks = validate_error_marks(segments_of(response.shown_text, response.final_text), errors)
                except InvalidInput as error:
                    problems.append(str(error))
            elif errors:
                problems.append("this case asks for no error annotation")
            if problems:
                raise InvalidInput("; ".join(problems))
            now = db.now()
            for question, value, label in accepted.values():
                session.add(
                    Answer(assignment_id=assignment.id, question_id=question.id, label=label, value=value, answered_at=now)
                )
            for mark in marks:
                session.add(ErrorAnnotation(
                    assignment_id=assignment.id, segment=mark.segment, edit_kind=mark.edit_kind,
                    draft_text=mark.draft_text, final_text=mark.final_text, category=mark.category,
                    significant=mark.significant, annotated_at=now))
            payload = {k: v[1] for k, v in accepted.items()}
            if arm.annotate_errors:
                # The marks by edit number ("1": "wrong_severity/significant"): the audit log holds what was saved.
                payload["errors"] = {str(m.segment): m.category + ("" if m.significant is None else
                                                                   "/significant" if m.significant else "/minor")
                                     for m in marks}
            record_event(
                session, study_id=assignment.study_id, actor=actor, kind="answers_saved",
                assignment_id=assignment.id, at=now, payload=payload,
            )
            _complete(session, actor, assignment, now)
            return now
    except IntegrityError:
        raise AlreadySubmitted("the answers of this case are already saved") from None
