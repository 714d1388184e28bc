"""Drafts checked before launch: which drafts readers would see are cut, not parsed, empty or duplicated, and the
coordinator's recorded decision (an override, per case, with a reason) to show one all the same.

The launch checklist (``launch.launch_checklist``) refuses while any of these drafts has a problem no override
covers; ``drafts generate`` and ``drafts status`` report them first; a regeneration with a larger token budget
(``drafting.regenerate_drafts``) replaces a draft, and the new one is checked afresh.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput
from study_app.services.events import record_event
from study_app.services.release import manifest_draft, model_drafts_by_need
from study_app.services.studies import get_study
from study_app.store.models import Arm, Assignment, Case, Draft, DraftOverride, MCItem, utcnow

MIN_REASON_CHARS = 3
# Problems listed in the launch checklist before "and N more" (the console and `drafts status` list them all).
LISTED_IN_CHECKLIST = 20


@dataclass(frozen=True)
class DraftIssue:
    """One draft readers would see, with its problems, and the override that accepts them (if any)."""

    draft_id: int
    case_key: str
    task: str  # "findings", "mc" (a reasoning item's answer) or "manifest" (a reader draft from the manifest)
    item_key: str | None
    problems: tuple[str, ...]  # codes of model_runtime.quality.DRAFT_PROBLEMS
    details: tuple[str, ...]
    accepted_reason: str | None = None
    accepted_by: str | None = None

    @property
    def accepted(self) -> bool:
        return self.accepted_reason is not None

    @property
    def what(self) -> str:
        return f"{self.case_key} {self.task}{' ' + self.item_key if self.item_key else ''}"

    def describe(self) -> str:
        line = f"{self.what}: {'; '.join(self.details)}"
        if self.accepted:
            line += f" (accepted by {self.accepted_by}: {self.accepted_reason})"
        return line


def _normalised(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def review_drafts(session: Session, study_id: str) -> list[DraftIssue]:
    """Every draft the study's readers would see that has a problem, in case order (inside a transaction).

    The drafts are those launch binds: the model draft of each case (and reasoning item) a model-drafted arm
    reads, and the manifest's reader draft of each case a manifest-drafted arm reads. Reports of other arms are
    written during the study and cannot be checked now.
    """
    from model_runtime.quality import output_problems

    arms = {a.id: a for a in session.scalars(select(Arm).where(Arm.study_id == study_id))}
    model_arms = {i for i, a in arms.items() if any(s["kind"] == "model" for s in a.draft_sources)}
    manifest_arms = {i for i, a in arms.items() if any(s["kind"] == "manifest" for s in a.draft_sources)}
    needs: set[tuple[int, int | None]] = set()
    manifest_cases: set[int] = set()
    for case_id, mc_item_id, arm_id in session.execute(
        select(Assignment.case_id, Assignment.mc_item_id, Assignment.arm_id).where(Assignment.study_id == study_id)
        .distinct()
    ):
        if arm_id in model_arms:
            needs.add((case_id, mc_item_id))
        if arm_id in manifest_arms:
            manifest_cases.add(case_id)
    shown = model_drafts_by_need(session, study_id)
    drafts: list[tuple[str, Draft]] = [("mc" if key[1] is not None else "findings", shown[key])
                                       for key in sorted(needs, key=lambda k: (k[0], k[1] or 0)) if key in shown]
    drafts += [("manifest", d) for d in (manifest_draft(session, c) for c in sorted(manifest_cases)) if d is not None]
    if not drafts:
        return []
    case_keys = dict(session.execute(select(Case.id, Case.case_key).where(Case.study_id == study_id)).all())
    items = {i.id: i for i in session.scalars(select(MCItem).where(MCItem.case_id.in_(case_keys)))}
    overrides = {o.draft_id: o for o in session.scalars(select(DraftOverride).where(DraftOverride.study_id == study_id))}

    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for task, draft in drafts:
        if task == "manifest":
            if not (draft.report or "").strip():
                found[draft.id].append(("empty", "the reader draft is empty"))
            continue
        item = items.get(draft.mc_item_id)
        for problem in output_problems(task=task, mode=draft.mode, parse_status=draft.parse_status,
                                       finish_reason=draft.finish_reason, report=draft.report, answer=draft.answer,
                                       options=dict(item.options) if item is not None else None):
            found[draft.id].append((problem.code, problem.detail))
    # Two stored drafts for one case (a second `drafts generate` with other settings stores a second one): readers
    # would be shown the first, whichever the coordinator meant. Identical drafts of different cases are not a
    # problem: a model writes the same normal report for many normal films.
    stored: dict[tuple[int, int | None], list[Draft]] = defaultdict(list)
    for draft in session.scalars(select(Draft).where(
            Draft.study_id == study_id, Draft.source_kind == "model", Draft.origin == "model",
            Draft.choice_index == 0, Draft.superseded_at.is_(None)).order_by(Draft.id)):
        if draft.mc_item_id is not None or draft.task == "findings":
            stored[(draft.case_id, draft.mc_item_id)].append(draft)
    for task, draft in drafts:
        if task == "manifest":
            model = shown.get((draft.case_id, None))
            if model is not None and _normalised(model.report) and _normalised(model.report) == _normalised(draft.report):
                found[draft.id].append(("duplicated", "the reader draft is the same text as the model draft of "
                                                      "this case (a comparison would show one text twice)"))
            continue
        copies = stored.get((draft.case_id, draft.mc_item_id), [])
        if len(copies) > 1:
            budgets = ", ".join(str((d.sampling or {}).get("max_tokens", "?")) for d in copies)
            found[draft.id].append(("duplicated", f"{len(copies)} drafts are stored for it (max_tokens {budgets}); "
                                                  "readers would see the first: regenerate the case to keep one"))

    issues = []
    for task, draft in drafts:
        if draft.id not in found:
            continue
        codes = tuple(dict.fromkeys(code for code, _ in found[draft.id]))
        override = overrides.get(draft.id)
        covered = override is not None and set(codes) <= set(override.problems)
        item = items.get(draft.mc_item_id)
        issues.append(DraftIssue(
            draft_id=draft.id, case_key=case_keys[draft.case_id], task=task,
            item_key=item.item_key if item is not None else None, problems=codes,
            details=tuple(detail for _, detail in found[draft.id]),
            accepted_reason=override.reason if covered else None, accepted_by=override.actor if covered else None,
        ))
    return sorted(issues, key=lambda i: (i.case_key, i.task, i.item_key or ""))


def draft_issues(db: Database, actor: Actor, study_id: str) -> list[DraftIssue]:
    """The study's drafts with problems (see :func:`review_drafts`), accepted ones included and marked."""
    require_coordinator(actor, "see the drafts")
    with db.read() as session:
        get_study(session, study_id)
        return review_drafts(session, study_id)


def checklist_lines(issues: list[DraftIssue], study_id: str) -> list[str]:
    """What the launch checklist says about drafts with problems no override covers (empty when none)."""
    open_issues = [i for i in issues if not i.accepted]
    if not open_issues:
        return []
    counts = defaultdict(int)
    for issue in open_issues:
        for code in issue.problems:
            counts[code] += 1
    lines = [
        f"{len(open_issues)} draft(s) readers would see have problems ("
        + ", ".join(f"{n} {code}" for code, n in sorted(counts.items())) + "): regenerate them "
        f"(`readerstudy drafts regenerate {study_id} --problems --max-tokens 2048`) or accept a case's with a "
        f"reason (`readerstudy drafts accept {study_id} --case CASE --reason ...`)"
    ]
    lines += [f"  {issue.describe()}" for issue in open_issues[:LISTED_IN_CHECKLIST]]
    if len(open_issues) > LISTED_IN_CHECKLIST:
        lines.append(f"  ... and {len(open_issues) - LISTED_IN_CHECKLIST} more (`readerstudy drafts status {study_id}`)")
    return lines


def accept_draft_problems(db: Database, actor: Actor, study_id: str, case_keys: list[str], *,
                          reason: str) -> list[DraftIssue]:
    """Record that the drafts with problems of these cases may be shown to readers as they are, and why.

    One override per draft, covering the problems it has now (a new problem after a regeneration needs a new
    decision); the decision and its reason go to the audit log. Only before launch.

    Raises
    ------
    InvalidInput
        No reason, or a case without a draft that has a problem.
    Conflict
        The study is launched.
    """
    require_coordinator(actor, "accept drafts with problems")
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_CHARS:
        raise InvalidInput("say why these drafts may be shown as they are (a few words for the audit log)")
    if not case_keys:
        raise InvalidInput("name the case(s) whose drafts to accept (--case)")
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is {study.status}: its drafts were frozen at launch")
        issues = review_drafts(session, study_id)
        by_case = defaultdict(list)
        for issue in issues:
            by_case[issue.case_key].append(issue)
        unknown = [c for c in case_keys if c not in by_case]
        if unknown:
            raise InvalidInput(f"no draft with a problem for case(s) {', '.join(unknown)} "
                               f"(see `readerstudy drafts status {study_id}`)")
        now = utcnow()
        accepted = []
        for case_key in dict.fromkeys(case_keys):
            for issue in by_case[case_key]:
                override = session.scalars(select(DraftOverride).where(DraftOverride.draft_id == issue.draft_id)).first()
                if override is None:
                    override = DraftOverride(study_id=study_id, draft_id=issue.draft_id)
                    session.add(override)
                override.problems, override.reason, override.actor, override.at = (
                    list(issue.problems), reason, actor.audit_name(), now)
                record_event(session, study_id=study_id, actor=actor, kind="draft_problems_accepted", at=now,
                             payload={"case": issue.case_key, "task": issue.task, "item": issue.item_key,
                                      "draft_id": issue.draft_id, "problems": list(issue.problems), "reason": reason})
                accepted.append(issue.draft_id)
        session.flush()
        return [i for i in review_drafts(session, study_id) if i.draft_id in accepted]
