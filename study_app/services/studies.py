"""Creating, describing and launching studies: design + cohort + readers -> every assignment, in one transaction."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from cohorts.manifest import Cohort, ManifestError, load_manifest
from study_app.allocation import Allocation, AllocationError, CaseSlot, ReaderSlot, allocate, seeded_rng
from study_app.designs import DesignError, StudyDesign, draft_origin, load_design, parse_design
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput, NotFound
from study_app.services.events import record_event
from study_app.services.release import manifest_draft, model_draft, sync_reader_rounds
from study_app.services.roster import RosterEntry, load_roster
from study_app.store.models import (
    Arm,
    Assignment,
    Case,
    Draft,
    Image,
    MCItem,
    Question,
    Reader,
    Study,
    utcnow,
)

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


def _summary(session: Session, study: Study) -> StudySummary:
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
        return [_summary(session, s) for s in session.scalars(select(Study).order_by(Study.created_at, Study.id))]


def study_summary(db: Database, actor: Actor, study_id: str) -> StudySummary:
    require_coordinator(actor, "see a study")
    with db.read() as session:
        return _summary(session, get_study(session, study_id))


def create_study(
    db: Database,
    actor: Actor,
    *,
    study_id: str,
    design_path: str | Path,
    manifest_path: str | Path,
    readers_path: str | Path,
    seed: int,
    name: str | None = None,
) -> StudySummary:
    """Validate the design, the cohort and the reader list, allocate, and store it all at once.

    Nothing is written unless everything is valid and the design can be satisfied: a bad
    manifest, design or reader list, or an unsatisfiable constraint, raises with every problem
    named, and the database is untouched.
    """
    require_coordinator(actor, "create a study")
    if not STUDY_ID.match(study_id):
        raise InvalidInput(
            f"study id '{study_id}' must be lower-case letters, digits, '-' or '_' (at most 32), starting with a "
            "letter or digit"
        )
    try:
        design = load_design(design_path)
    except DesignError as error:
        raise InvalidInput(str(error)) from None
    try:
        cohort = load_manifest(manifest_path)
    except ManifestError as error:
        raise InvalidInput(str(error)) from None
    roster = load_roster(readers_path, roles=design.roles)
    if not 0 <= seed < 2**31:
        raise InvalidInput(f"seed {seed} must be between 0 and 2147483647")
    try:
        allocation = allocate(
            design,
            [CaseSlot(c.case_id, bool(c.mc_items)) for c in cohort.cases],
            [ReaderSlot(r.reader_key, r.role) for r in roster],
            seed,
        )
    except AllocationError as error:
        raise InvalidInput(f"the design cannot be satisfied: {error}") from None

    with db.transaction() as session:
        if session.get(Study, study_id) is not None:
            raise Conflict(f"a study '{study_id}' already exists; choose another id")
        study = Study(
            id=study_id,
            name=name or design.name,
            seed=seed,
            status="draft",
            design_name=design.name,
            design_toml=design.source_text,
            design_sha256=design.sha256,
            cohort_manifest=str(cohort.manifest_path),
            cohort_root=str(cohort.root),
            cohort_sha256=cohort.manifest_sha256,
            settings={
                "manifests": [{"path": str(cohort.manifest_path), "sha256": cohort.manifest_sha256}],
                "idle_threshold_s": design.idle_threshold_s,
                "invite_valid_days": design.invite_valid_days,
                "allow_going_back": design.allow_going_back,
            },
        )
        session.add(study)
        session.flush()
        cases = _store_cohort(session, study, cohort)
        readers = _store_readers(session, study, roster)
        arms = _store_arms(session, study, design)
        _store_allocation(session, study, design, allocation, cases, readers, arms)
        _store_manifest_drafts(session, study, cohort, cases, readers)
        record_event(
            session,
            study_id=study.id,
            actor=actor,
            kind="study_created",
            payload={
                "seed": seed,
                "design_sha256": design.sha256,
                "cohort_sha256": cohort.manifest_sha256,
                "n_cases": len(cases),
                "n_readers": len(readers),
                "n_assignments": len(allocation.assignments),
            },
        )
        session.flush()
        return _summary(session, study)


def _store_cohort(session: Session, study: Study, cohort: Cohort) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for record in cohort.cases:
        case = Case(
            study_id=study.id,
            case_key=record.case_id,
            manifest_row=record.row,
            indication=record.indication or "",
            comparison=record.comparison or "",
            reference_findings=record.reference_findings,
        )
        session.add(case)
        session.flush()
        for ordinal, image in enumerate([*record.images, *record.priors]):
            session.add(
                Image(
                    case_id=case.id,
                    ordinal=ordinal,
                    path=str(image.path),
                    relpath=image.relpath,
                    sha256=image.sha256,
                    view=image.view,
                    is_prior=image.is_prior,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                    bits_stored=image.bits_stored,
                )
            )
        for ordinal, item in enumerate(record.mc_items):
            session.add(
                MCItem(
                    case_id=case.id,
                    ordinal=ordinal,
                    item_key=item.item_id,
                    question=item.question,
                    options=dict(item.options),
                    answer=item.answer,
                )
            )
        cases[record.case_id] = case
    session.flush()
    return cases


def _store_readers(session: Session, study: Study, roster: list[RosterEntry]) -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    for entry in roster:
        reader = Reader(
            study_id=study.id,
            reader_key=entry.reader_key,
            role=entry.role,
            label=entry.label,
            name=entry.name,
            email=entry.email,
        )
        session.add(reader)
        readers[entry.reader_key] = reader
    session.flush()
    return readers


def _store_arms(session: Session, study: Study, design: StudyDesign) -> dict[str, Arm]:
    arms: dict[str, Arm] = {}
    for ordinal, spec in enumerate(design.arms):
        arm = Arm(
            study_id=study.id,
            key=spec.key,
            ordinal=ordinal,
            task=spec.task,
            role=spec.role,
            draft_sources=[s.to_json() for s in spec.draft_sources],
            timed=spec.timed,
            reading_round=spec.reading_round,
            readers_per_case=spec.readers_per_case,
            instructions=spec.instructions,
        )
        session.add(arm)
        session.flush()
        for q_ordinal, key in enumerate(spec.questions):
            question = design.questions[key]
            session.add(
                Question(
                    arm_id=arm.id,
                    ordinal=q_ordinal,
                    key=key,
                    kind=question.kind,
                    label=question.label,
                    options=[{"value": o.value, "label": o.label} for o in question.options],
                    required=question.required,
                )
            )
        arms[spec.key] = arm
    session.flush()
    return arms


def _store_allocation(
    session: Session,
    study: Study,
    design: StudyDesign,
    allocation: Allocation,
    cases: dict[str, Case],
    readers: dict[str, Reader],
    arms: dict[str, Arm],
) -> None:
    rows: dict[int, Assignment] = {}
    # Inserted in a seeded random order, not arm by arm: assignment ids are sequential, and their order must
    # not say which arm a row belongs to (not even in an export, nor to anyone who sees an id by mistake).
    insertion = list(allocation.assignments)
    seeded_rng(study.seed, "insertion").shuffle(insertion)
    for planned in insertion:
        spec = design.arm(planned.arm_key)
        case = cases[planned.case_key]
        assignment = Assignment(
            study_id=study.id,
            reader_id=readers[planned.reader_key].id,
            case_id=case.id,
            arm_id=arms[planned.arm_key].id,
            mc_item_id=case.mc_items[0].id if spec.task == "rate_reasoning" else None,
            position=planned.position,
            # Held until the reader's round opens (sync_reader_rounds, below and at launch).
            status="pending",
            a_source_index=planned.a_source_index,
            sessions=0,
        )
        session.add(assignment)
        rows[planned.index] = assignment
    session.flush()
    for planned in allocation.assignments:
        if planned.source_index is not None:
            rows[planned.index].source_assignment_id = rows[planned.source_index].id
        if planned.source_b_index is not None:
            rows[planned.index].source_b_assignment_id = rows[planned.source_b_index].id
    session.flush()
    # A round that needs no draft (writing from scratch) is ready from the start; the study opens at launch.
    for reader in readers.values():
        sync_reader_rounds(session, reader.id, bind=False)


def _store_manifest_drafts(
    session: Session, study: Study, cohort: Cohort, cases: dict[str, Case], readers: dict[str, Reader]
) -> None:
    """Reader drafts from the manifest are stored as written (normalised like every draft); model outputs go
    through drafting and the model-output parser."""
    from model_runtime.parsing import normalise_report_text

    for record in cohort.cases:
        for draft in record.drafts:
            if draft.source != "reader" or not draft.text:
                continue
            author = readers.get(draft.author_label or "")
            session.add(
                Draft(
                    study_id=study.id,
                    case_id=cases[record.case_id].id,
                    source_kind="manifest",
                    origin="reader",
                    author_reader_id=author.id if author else None,
                    raw_output=draft.text,
                    report=normalise_report_text(draft.text),
                )
            )
    session.flush()


def import_cohort(db: Database, actor: Actor, study_id: str, manifest_path: str | Path) -> StudySummary:
    """Add a manifest's cases to a study that is not launched yet, and allocate again over the whole cohort.

    All or nothing: a manifest with any problem, a case id the study already has, or a design that
    the larger cohort cannot satisfy changes nothing. The allocation is regenerated from the study
    seed, so it equals what `study create` would give with every manifest at once.
    """
    require_coordinator(actor, "import a cohort")
    try:
        cohort = load_manifest(manifest_path)
    except ManifestError as error:
        raise InvalidInput(str(error)) from None
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is {study.status}: its cohort was frozen at launch")
        existing = {c.case_key: c.manifest_row for c in session.scalars(select(Case).where(Case.study_id == study_id))}
        clashes = [f"row {c.row}, column case_id: '{c.case_id}' is already in the study" for c in cohort.cases
                   if c.case_id in existing]
        if clashes:
            raise InvalidInput(f"{cohort.manifest_path}: " + f"\n{cohort.manifest_path}: ".join(clashes))
        new_cases = _store_cohort(session, study, cohort)
        allocation = reallocate(session, study)
        readers = list(session.scalars(select(Reader).where(Reader.study_id == study_id)))
        _store_manifest_drafts(session, study, cohort, new_cases, {r.reader_key: r for r in readers})
        study.settings = {
            **study.settings,
            "manifests": [*study.settings.get("manifests", []),
                          {"path": str(cohort.manifest_path), "sha256": cohort.manifest_sha256}],
        }
        record_event(session, study_id=study_id, actor=actor, kind="cohort_imported",
                     payload={"manifest": str(cohort.manifest_path), "sha256": cohort.manifest_sha256,
                              "n_cases": len(new_cases), "n_assignments": len(allocation.assignments)})
        session.flush()
        return _summary(session, study)


def reallocate(session: Session, study: Study) -> Allocation:
    """Replace a draft study's allocation with the one its seed gives for its current cases and readers."""
    if study.status != "draft":
        raise Conflict(f"study '{study.id}' is {study.status}: its allocation was frozen at launch")
    design = study_design(study)
    readers = list(session.scalars(select(Reader).where(Reader.study_id == study.id).order_by(Reader.id)))
    cases = list(session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.id)))
    with_mc = set(session.scalars(select(MCItem.case_id).where(MCItem.case_id.in_([c.id for c in cases]))))
    try:
        allocation = allocate(
            design,
            [CaseSlot(c.case_key, c.id in with_mc) for c in cases],
            [ReaderSlot(r.reader_key, r.role) for r in readers],
            study.seed,
        )
    except AllocationError as error:
        raise InvalidInput(f"the design cannot be satisfied: {error}") from None
    # Assignments refer to each other (drafts from another arm); unlink before the allocation is replaced.
    session.execute(
        update(Assignment).where(Assignment.study_id == study.id)
        .values(source_assignment_id=None, source_b_assignment_id=None)
    )
    session.execute(delete(Assignment).where(Assignment.study_id == study.id))
    arms = {a.key: a for a in session.scalars(select(Arm).where(Arm.study_id == study.id))}
    _store_allocation(session, study, design, allocation, {c.case_key: c for c in cases},
                      {r.reader_key: r for r in readers}, arms)
    return allocation


def study_manifests(study: Study) -> list[Path]:
    """Every manifest the study's cohort came from, in import order."""
    return [Path(m["path"]) for m in study.settings.get("manifests", [])] or [Path(study.cohort_manifest)]


# --- describe -----------------------------------------------------------------------------------


@dataclass
class StudyBalance:
    """The allocation's balance, as `study describe` prints it."""

    summary: StudySummary
    reads_per_case: pd.DataFrame  # index case, columns arms: number of readers
    reads_per_reader: pd.DataFrame  # index reader, columns arms: number of cases
    ab_balance: pd.DataFrame  # per compare arm and reader: model / reader as A, overall and per worklist half
    overlap: pd.DataFrame  # reader x reader: cases both read (any arm)
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # per arm: its reading round and what it waits on
    reader_rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # per reader and round: open or waiting


def _opens_when(arm: Arm, by_key: dict[str, Arm]) -> str:
    waits = sorted({s["arm"] for s in arm.draft_sources if s["kind"] == "arm"})
    peers = sorted(k for k, other in by_key.items() if other.key != arm.key and other.role == arm.role
                   and other.task == arm.task and other.reading_round == arm.reading_round
                   and any(s["kind"] == "arm" for s in other.draft_sources))
    if waits:
        return "per reader, when every report it needs from " + ", ".join(waits) + " is submitted"
    if peers:
        return "with " + ", ".join(peers) + " (same role and task: one round)"
    return "at launch" if not arm.draft_sources or arm.reading_round == 1 else "with its round"


def describe_study(db: Database, actor: Actor, study_id: str) -> StudyBalance:
    require_coordinator(actor, "describe a study")
    from study_app.services.release import reader_rounds

    with db.read() as session:
        study = get_study(session, study_id)
        rows = session.execute(
            select(Reader.reader_key, Reader.role, Case.case_key, Arm.key, Arm.task, Arm.draft_sources,
                   Assignment.a_source_index, Assignment.position)
            .join(Reader, Assignment.reader_id == Reader.id)
            .join(Case, Assignment.case_id == Case.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.study_id == study_id)
            .order_by(Arm.ordinal, Case.id, Reader.id)
        ).all()
        arm_keys = [a.key for a in study.arms]
        by_key = {a.key: a for a in study.arms}
        rounds = pd.DataFrame(
            [{"round": a.reading_round, "arm": a.key, "role": a.role, "task": a.task,
              "drafts": ", ".join(f"arm:{s['arm']}" if s["kind"] == "arm" else s["kind"] for s in a.draft_sources)
              or "none", "opens": _opens_when(a, by_key)} for a in study.arms],
            columns=["round", "arm", "role", "task", "drafts", "opens"],
        ).sort_values(["round", "role", "arm"], kind="stable")
        readers = list(session.scalars(select(Reader).where(Reader.study_id == study_id).order_by(Reader.id)))
        reader_round_rows = [
            {"reader": r.reader_key, "round": status.reading_round, "cases": status.n_cases, "open": status.n_open,
             "drafts_missing": status.n_drafts_missing, "waits_on": ", ".join(status.waits_on_arms)}
            for r in readers for status in reader_rounds(session, r.id)
        ]
        reader_keys = [r.reader_key for r in readers]
        summary = _summary(session, study)
    frame = pd.DataFrame(rows, columns=["reader", "role", "case", "arm", "task", "sources", "a_source_index",
                                        "position"])
    per_case = pd.crosstab(frame["case"], frame["arm"]).reindex(columns=arm_keys, fill_value=0)
    per_reader = pd.crosstab(frame["reader"], frame["arm"]).reindex(index=reader_keys, columns=arm_keys, fill_value=0)
    length = frame.groupby("reader").size()
    ab_rows = []
    for (arm, reader), group in frame[frame["task"] == "compare"].groupby(["arm", "reader"], sort=False):
        sources = group["sources"].iloc[0]
        origins = [draft_origin(s["kind"]) for s in sources]
        model_a = group["a_source_index"].map(lambda i: origins[int(i)] == "model")
        first_half = group["position"] <= length[reader] / 2
        ab_rows.append({
            "arm": arm, "reader": reader,
            "model_as_a": int(model_a.sum()), "reader_as_a": int((~model_a).sum()),
            "model_as_a_first_half": int(model_a[first_half].sum()), "first_half": int(first_half.sum()),
            "model_as_a_second_half": int(model_a[~first_half].sum()), "second_half": int((~first_half).sum()),
        })
    ab = pd.DataFrame(ab_rows, columns=["arm", "reader", "model_as_a", "reader_as_a", "model_as_a_first_half",
                                        "first_half", "model_as_a_second_half", "second_half"])
    cases_of: dict[str, set[str]] = defaultdict(set)
    for reader, case in zip(frame["reader"], frame["case"]):
        cases_of[reader].add(case)
    overlap = pd.DataFrame(
        [[len(cases_of[a] & cases_of[b]) for b in reader_keys] for a in reader_keys],
        index=reader_keys,
        columns=reader_keys,
    )
    reader_rounds_frame = pd.DataFrame(reader_round_rows,
                                       columns=["reader", "round", "cases", "open", "drafts_missing", "waits_on"])
    return StudyBalance(summary, per_case, per_reader, ab, overlap, rounds.reset_index(drop=True), reader_rounds_frame)


# --- launch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchCheck:
    ok: bool
    problems: list[str]


def launch_checklist(session: Session, study: Study) -> LaunchCheck:
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
    return LaunchCheck(ok=not problems, problems=problems)


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
        study.launched_at = utcnow()
        for reader_id in session.scalars(select(Reader.id).where(Reader.study_id == study.id).order_by(Reader.id)):
            sync_reader_rounds(session, reader_id, actor=actor, at=study.launched_at)
        study.status = "open"
        record_event(session, study_id=study.id, actor=actor, kind="launched", payload={})
        session.flush()
        return _summary(session, study)
