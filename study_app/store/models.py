"""The study store's tables as SQLAlchemy 2 typed models; the database enforces the study's invariants."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STUDY_STATUSES = ("draft", "open", "paused", "closed")
ASSIGNMENT_STATUSES = ("pending", "ready", "in_progress", "submitted", "completed")
TASKS = ("write", "edit", "compare", "rate_reasoning")
DRAFT_SOURCE_KINDS = ("model", "reader", "manifest")
DRAFT_ORIGINS = ("model", "reader")
PARSE_STATUSES = ("ok", "no_box", "unclosed_box", "multiple_boxes")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_case_ref() -> str:
    """A reader's reference to one assignment in URLs, page keys and browser storage: 128 random bits, in hex.

    It carries no order, arm or source (assignment ids are sequential and must never reach a browser). Hex,
    not URL-safe base64: Streamlit refuses element keys containing ``__``, which base64 draws now and then.
    """
    return secrets.token_hex(16)


class UTCDateTime(TypeDecorator):
    """Store naive UTC, hand back aware UTC: SQLite keeps no zone, and mixing the two breaks arithmetic."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (CheckConstraint(_in("status", STUDY_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    design_name: Mapped[str] = mapped_column(String(200))
    design_toml: Mapped[str] = mapped_column(Text)
    design_sha256: Mapped[str] = mapped_column(String(64))
    cohort_manifest: Mapped[str] = mapped_column(Text)
    cohort_root: Mapped[str] = mapped_column(Text)
    cohort_sha256: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    arms: Mapped[list[Arm]] = relationship(back_populates="study", order_by="Arm.ordinal")


class Reader(Base):
    """A study participant; `reader_key` is the pseudonymous id that leaves in exports, name and e-mail never do."""

    __tablename__ = "reader"
    __table_args__ = (UniqueConstraint("study_id", "reader_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"))
    reader_key: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Coordinator(Base):
    __tablename__ = "coordinator"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInThrottle(Base):
    """Failed password sign-ins counted per username and per client address, for backoff and lockout.

    A row exists once something failed; ``locked_at`` stays set until a coordinator or the CLI lifts it.
    """

    __tablename__ = "sign_in_throttle"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        CheckConstraint("kind IN ('user', 'address')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(128))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Invite(Base):
    """A reader's personal link; only the token's hash is kept."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id", ondelete="RESTRICT"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser, reader or coordinator; only the cookie value's hash is kept."""

    __tablename__ = "web_session"
    __table_args__ = (
        CheckConstraint(
            "(reader_id IS NULL) <> (coordinator_id IS NULL)", name="one_principal"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("reader.id", ondelete="RESTRICT"), index=True)
    coordinator_id: Mapped[int | None] = mapped_column(ForeignKey("coordinator.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Case(Base):
    __tablename__ = "case"
    __table_args__ = (UniqueConstraint("study_id", "case_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"))
    case_key: Mapped[str] = mapped_column(String(64))
    manifest_row: Mapped[int] = mapped_column(Integer)
    indication: Mapped[str] = mapped_column(Text, default="")
    comparison: Mapped[str] = mapped_column(Text, default="")
    reference_findings: Mapped[str | None] = mapped_column(Text)

    images: Mapped[list[Image]] = relationship(order_by="Image.ordinal")
    mc_items: Mapped[list[MCItem]] = relationship(order_by="MCItem.ordinal")


class Image(Base):
    __tablename__ = "image"
    __table_args__ = (UniqueConstraint("case_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    relpath: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    view: Mapped[str] = mapped_column(String(16))
    is_prior: Mapped[bool] = mapped_column(default=False)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(8))
    bits_stored: Mapped[int] = mapped_column(Integer)


class MCItem(Base):
    """A multiple-choice question about a case, for reasoning review."""

    __tablename__ = "mc_item"
    __table_args__ = (UniqueConstraint("case_id", "item_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    item_key: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[dict] = mapped_column(JSON)
    answer: Mapped[str | None] = mapped_column(String(16))


class Draft(Base):
    """A report text shown to readers, with everything needed to say how it was made."""

    __tablename__ = "draft"
    __table_args__ = (
        CheckConstraint(_in("source_kind", DRAFT_SOURCE_KINDS), name="source_kind"),
        CheckConstraint(_in("origin", DRAFT_ORIGINS), name="origin"),
        CheckConstraint(
            "parse_status IS NULL OR " + _in("parse_status", PARSE_STATUSES), name="parse_status"
        ),
        # A rerun of generation must never store the same request twice.
        UniqueConstraint("study_id", "request_key", "choice_index"),
        # One reader draft per submitted assignment.
        UniqueConstraint("source_assignment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    mc_item_id: Mapped[int | None] = mapped_column(ForeignKey("mc_item.id", ondelete="RESTRICT"))
    source_kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    author_reader_id: Mapped[int | None] = mapped_column(ForeignKey("reader.id", ondelete="RESTRICT"))
    source_assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment.id", ondelete="RESTRICT", use_alter=True)
    )
    task: Mapped[str | None] = mapped_column(String(16))
    model_id: Mapped[str | None] = mapped_column(String(200))
    model_revision: Mapped[str | None] = mapped_column(String(100))
    backend: Mapped[str | None] = mapped_column(String(32))
    server_version: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str | None] = mapped_column(String(16))
    prompt: Mapped[str | None] = mapped_column(Text)
    sampling: Mapped[dict | None] = mapped_column(JSON)
    seed: Mapped[int | None] = mapped_column(Integer)
    raw_output: Mapped[str | None] = mapped_column(Text)
    reasoning: Mapped[str | None] = mapped_column(Text)
    report: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str | None] = mapped_column(Text)
    parse_status: Mapped[str | None] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_s: Mapped[float | None] = mapped_column(Float)
    input_hash: Mapped[str | None] = mapped_column(String(64))
    request_key: Mapped[str | None] = mapped_column(String(64))
    choice_index: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DraftFailure(Base):
    """A generation request that failed; kept so a batch reports it and a rerun retries it."""

    __tablename__ = "draft_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    task: Mapped[str] = mapped_column(String(16))
    mc_item_id: Mapped[int | None] = mapped_column(ForeignKey("mc_item.id", ondelete="RESTRICT"))
    request_key: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32))
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Arm(Base):
    __tablename__ = "arm"
    __table_args__ = (
        UniqueConstraint("study_id", "key"),
        CheckConstraint(_in("task", TASKS), name="task"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"))
    key: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(64))
    # JSON list of draft sources: [] for write, one for edit/rate_reasoning, two for compare.
    draft_sources: Mapped[list] = mapped_column(JSON, default=list)
    timed: Mapped[bool] = mapped_column(default=True)
    # The reading round in which the arm's cases open (docs/designs.md, "Reading rounds").
    reading_round: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    readers_per_case: Mapped[int] = mapped_column(Integer)
    instructions: Mapped[str] = mapped_column(Text, default="")

    study: Mapped[Study] = relationship(back_populates="arms")
    questions: Mapped[list[Question]] = relationship(order_by="Question.ordinal")


class Question(Base):
    __tablename__ = "question"
    __table_args__ = (UniqueConstraint("arm_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arm_id: Mapped[int] = mapped_column(ForeignKey("arm.id", ondelete="RESTRICT"))
    ordinal: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(Text)
    # [{"value": "none", "label": "No editing needed"}, ...]; Likert values are the scores.
    options: Mapped[list] = mapped_column(JSON)
    required: Mapped[bool] = mapped_column(default=True)


class Assignment(Base):
    """One reader reading one case in one arm: the unit of the study."""

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("reader_id", "case_id", "arm_id"),
        UniqueConstraint("reader_id", "position"),
        CheckConstraint(_in("status", ASSIGNMENT_STATUSES), name="status"),
        Index("ix_assignment_study_status", "study_id", "status"),
        Index("ix_assignment_case_ref", "case_ref", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # What the reader's browser knows the assignment by; the id never leaves the server (see new_case_ref).
    case_ref: Mapped[str] = mapped_column(String(32), default=new_case_ref)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arm.id", ondelete="RESTRICT"))
    mc_item_id: Mapped[int | None] = mapped_column(ForeignKey("mc_item.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # Which submitted assignment supplies the draft, for drafts from another arm (bound at allocation).
    source_assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id", ondelete="RESTRICT"))
    # For compare: the second source's supplying assignment, when it is another arm.
    source_b_assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id", ondelete="RESTRICT"))
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("draft.id", ondelete="RESTRICT"))
    a_draft_id: Mapped[int | None] = mapped_column(ForeignKey("draft.id", ondelete="RESTRICT"))
    b_draft_id: Mapped[int | None] = mapped_column(ForeignKey("draft.id", ondelete="RESTRICT"))
    # For compare: which of the arm's two draft sources stands as A (0 or 1), fixed at allocation.
    a_source_index: Mapped[int | None] = mapped_column(Integer)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sessions: Mapped[int] = mapped_column(Integer, default=0)

    arm: Mapped[Arm] = relationship(foreign_keys=[arm_id])
    case: Mapped[Case] = relationship(foreign_keys=[case_id])
    reader: Mapped[Reader] = relationship(foreign_keys=[reader_id])


class Response(Base):
    """The submitted text of an assignment; exactly one per assignment, written once at SUBMIT."""

    __tablename__ = "response"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignment.id", ondelete="RESTRICT"), unique=True
    )
    shown_text: Mapped[str] = mapped_column(Text, default="")
    final_text: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    active_s: Mapped[float | None] = mapped_column(Float)
    hidden_s: Mapped[float | None] = mapped_column(Float)
    idle_s: Mapped[float | None] = mapped_column(Float)


class Answer(Base):
    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("assignment_id", "question_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="RESTRICT"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("question.id", ondelete="RESTRICT"))
    label: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Autosave(Base):
    """Snapshots of the editor text while a case is open, so a crash loses seconds, not a report."""

    __tablename__ = "autosave"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="RESTRICT"), index=True)
    text: Mapped[str] = mapped_column(Text)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServerKey(Base):
    """A secret the server keeps across restarts and shares with its replicas (e.g. Streamlit's cookie secret)."""

    __tablename__ = "server_key"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """Append-only audit log; triggers in the migration refuse UPDATE and DELETE."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str | None] = mapped_column(ForeignKey("study.id", ondelete="RESTRICT"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("reader.id", ondelete="RESTRICT"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
