"""Launching a study: the preconditions (the one checklist every entry point calls), then freezing and opening it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.draft_review import DraftIssue, checklist_lines, review_drafts
from study_app.services.errors import Conflict
from study_app.services.events import record_event
from study_app.services.invites import readers_without_usable_link
from study_app.services.release import manifest_draft, model_drafts_by_need, sync_reader_rounds
from study_app.services.studies import get_study, StudySummary, summarise
from study_app.store.models import Arm, Assignment, Reader, Study

@dataclass(frozen=True)
class LaunchCheck:
    """What launch requires (``problems``: none may remain) and what it notes (readers who cannot sign in yet, drafts
    with problems a coordinator accepted)."""

    ok: bool
    problems: list[str]
    readers_without_link: list[str]
    draft_issues: list[DraftIssue] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        notes = []
        if self.readers_without_link:
            notes.append(f"{len(self.readers_without_link)} reader(s) have no usable link yet "
                         f"({', '.join(self.readers_without_link)}): issue them with `readerstudy readers invite` "
                         "(before or after launch)")
        accepted = [i for i in self.draft_issues if i.accepted]
        if accepted:
            notes.append(f"{len(accepted)} draft(s) with problems are shown as they are, by recorded decision: "
                         + "; ".join(i.describe() for i in accepted[:5]) + (" ..." if len(accepted) > 5 else ""))
        return notes


def launch_checklist(session: Session, study: Study) -> LaunchCheck:
    """The one statement of what launching needs: every draft the arms show exists, and none of them is cut, not
    parsed, empty or duplicated unless a coordinator recorded why it may be shown (``draft_review``). Every entry
    point (the CLI, the console's Launch page, the rehearsal) and launch itself call it."""
    problems = []
    missing: Counter[str] = Counter()
    shown = model_drafts_by_need(session, study.id)
    for assignment, arm in session.execute(
        select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id).where(Assignment.study_id == study.id)
    ):
        for source in arm.draft_sources:
            if source["kind"] == "model" and (assignment.case_id, assignment.mc_item_id) not in shown:
                missing[arm.key] += 1
            if source["kind"] == "manifest" and manifest_draft(session, assignment.case_id) is None:
                missing[arm.key] += 1
    for arm_key, n in sorted(missing.items()):
        problems.append(f"arm '{arm_key}': {n} assignment(s) have no draft yet (run `readerstudy drafts generate`)")
    issues = review_drafts(session, study.id)
    problems += checklist_lines(issues, study.id)
    return LaunchCheck(ok=not problems, problems=problems,
                       readers_without_link=readers_without_usable_link(session, study.id), draft_issues=issues)


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
