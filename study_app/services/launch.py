"""Launching a study: the preconditions (the one checklist every entry point calls), then freezing and opening it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict
from study_app.services.events import record_event
from study_app.services.invites import readers_without_usable_link
from study_app.services.release import manifest_draft, model_draft, sync_reader_rounds
from study_app.services.studies import get_study, StudySummary, summarise
from study_app.store.models import Arm, Assignment, Reader, Study

@dataclass(frozen=True)
class LaunchCheck:
    """What launch requires (``problems``: none may remain) and what it notes (readers who cannot sign in yet)."""

    ok: bool
    problems: list[str]
    readers_without_link: list[str]

    @property
    def notes(self) -> list[str]:
        if not self.readers_without_link:
            return []
        return [f"{len(self.readers_without_link)} reader(s) have no usable link yet ({', '.join(self.readers_without_link)}): "
                "issue them with `readerstudy readers invite` (before or after launch)"]


def launch_checklist(session: Session, study: Study) -> LaunchCheck:
    """The one statement of what launching needs: every draft the arms show exists. Every entry point (the
    CLI, the console's Launch page) and launch itself call it."""
    problems = []
    missing: Counter[str] = Counter()
    for assignment, arm in session.execute(
        select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id).where(Assignment.study_id == study.id)
    ):
        for source in arm.draft_sources:
            if source["kind"] == "model" and model_draft(session, assignment) is None:
                missing[arm.key] += 1
            if source["kind"] == "manifest" and manifest_draft(session, assignment.case_id) is None:
                missing[arm.key] += 1
    for arm_key, n in sorted(missing.items()):
        problems.append(f"arm '{arm_key}': {n} assignment(s) have no draft yet (run `readerstudy drafts generate`)")
    return LaunchCheck(ok=not problems, problems=problems,
                       readers_without_link=readers_without_usable_link(session, study.id))


def launch_study(db: Database, actor: Actor, study_id: str) -> StudySummary:
    """Freeze the study: bind every model and manifest draft to its assignments and open it to readers."""
    require_coordinator(actor, "launch a study")
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is already {study.status}; it can be launched once")
        check = launch_checklist(session, study)
        if not check.ok:
            raise Conflict("the study cannot be launched yet:\n" + "\n".join(check.problems))
        study.launched_at = db.now()
        for reader_id in session.scalars(select(Reader.id).where(Reader.study_id == study.id).order_by(Reader.id)):
            sync_reader_rounds(session, reader_id, actor=actor, at=study.launched_at)
        study.status = "open"
        record_event(session, study_id=study.id, actor=actor, kind="launched", payload={})
        session.flush()
        return summarise(session, study)


def launch_notes(db: Database, actor: Actor, study_id: str) -> list[str]:
    """The checklist's notes for a study (readers without a link), for the CLI to print after a launch."""
    require_coordinator(actor, "check a study before launch")
    with db.read() as session:
        return launch_checklist(session, get_study(session, study_id)).notes
