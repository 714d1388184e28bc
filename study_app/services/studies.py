"""A study's record: finding it, its frozen design and manifests, and its summary; what every service reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study_app.designs import StudyDesign, parse_design
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import NotFound
from study_app.store.models import Assignment, Case, Reader, Study

STUDY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class StudySummary:
    study_id: str
    name: str
    status: str
    seed: int
    design_sha256: str
    n_cases: int
    n_readers: int
    n_assignments: int
    by_status: dict[str, int] = field(default_factory=dict)


def get_study(session: Session, study_id: str, *, for_update: bool = False) -> Study:
    """The study, or NotFound listing the known ids. `for_update` locks its row until the transaction ends,
    so two coordinators changing the same study's state one after the other never both succeed."""
    study = session.get(Study, study_id, with_for_update=for_update)
    if study is None:
        known = ", ".join(session.scalars(select(Study.id).order_by(Study.id))) or "none yet"
        raise NotFound(f"no study '{study_id}' (studies: {known})")
    return study


def study_design(study: Study) -> StudyDesign:
    return parse_design(study.design_toml, source=f"study {study.id} design")


def summarise(session: Session, study: Study) -> StudySummary:
    """The study's summary (counts of cases, readers and assignments by status), inside the caller's session."""
    counts = dict(
        session.execute(
            select(Assignment.status, func.count()).where(Assignment.study_id == study.id).group_by(Assignment.status)
        ).all()
    )
    return StudySummary(
        study_id=study.id,
        name=study.name,
        status=study.status,
        seed=study.seed,
        design_sha256=study.design_sha256,
        n_cases=session.scalar(select(func.count()).select_from(Case).where(Case.study_id == study.id)) or 0,
        n_readers=session.scalar(select(func.count()).select_from(Reader).where(Reader.study_id == study.id)) or 0,
        n_assignments=sum(counts.values()),
        by_status=counts,
    )


def list_studies(db: Database, actor: Actor) -> list[StudySummary]:
    require_coordinator(actor, "list studies")
    with db.read() as session:
        return [summarise(session, s) for s in session.scalars(select(Study).order_by(Study.created_at, Study.id))]


def study_summary(db: Database, actor: Actor, study_id: str) -> StudySummary:
    require_coordinator(actor, "see a study")
    with db.read() as session:
        return summarise(session, get_study(session, study_id))


def study_manifests(study: Study) -> list[Path]:
    """Every manifest the study's cohort came from, in import order."""
    return [Path(m["path"]) for m in study.settings.get("manifests", [])] or [Path(study.cohort_manifest)]
