"""Creating a study: design + cohort + readers -> every assignment, in one transaction; adding cases and readers
before launch, allocated again from the seed."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cohorts.findings import check_labels, model_probabilities, reference_standard
from cohorts.manifest import Cohort, ManifestError, load_manifest
from study_app.allocation import Allocation, AllocationError, CaseSlot, ReaderSlot, allocate, seeded_rng
from study_app.designs import DesignError, StudyDesign, load_design
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.draft_records import new_draft
from study_app.services.errors import Conflict, InvalidInput
from study_app.services.events import record_event
from study_app.services.release import sync_reader_rounds
from study_app.services.roster import RosterEntry, load_roster
from study_app.services.studies import get_study, study_design, STUDY_ID, StudySummary, summarise
from study_app.store.models import Arm, Assignment, Case, CaseLabel, Image, MCItem, Question, Reader, Study

def create_study(
    db: Database,
    actor: Actor,
    *,
    study_id: str,
    design_path: str | Path,
    manifest_path: str | Path,
    readers_path: str | Path,
    seed: int | None = None,
    name: str | None = None,
) -> StudySummary:
    """Validate the design, the cohort and the reader list, allocate, and store it all at once.

    ``seed`` is the allocation seed; None draws one at random (it is stored, printed and exported, and the
    analysis uses it too, so every random choice of the study reproduces from it).

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
    check_cohort_for_design(design, cohort)
    roster = load_roster(readers_path, roles=design.roles)
    if seed is None:
        seed = secrets.randbelow(2**31)
    if not 0 <= seed < 2**31:
        raise InvalidInput(f"seed {seed} must be between 0 and 2147483647")
    try:
        allocation = allocate(
            design,
            [CaseSlot(c.case_id, bool(c.mc_items), c.site) for c in cohort.cases],
            [ReaderSlot(r.reader_key, r.role, r.site) for r in roster],
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
                "desk": design.desk.to_json(),
                # The reading sessions' schedule (washout), read by the release of rounds; absent: one session.
                **({"sessions": design.sessions.to_json()} if design.sessions is not None else {}),
                # The detect arms' findings and confidence scale ([detection]); absent: no detect arm.
                **({"detection": design.detection.to_json()} if design.detection is not None else {}),
            },
        )
        session.add(study)
        session.flush()
        cases = _store_cohort(session, study, cohort)
        readers = store_readers(session, study, roster)
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
        return summarise(session, study)


def check_cohort_for_design(design: StudyDesign, cohort: Cohort) -> None:
    """What a design asks of its cohort beyond a valid manifest: a detection study needs every case's reference
    standard for each of its findings, and, when an arm shows the model's labels, the model's probability for
    each. Every problem is named by row and column; raises InvalidInput."""
    if design.detection is None:
        return
    shows_labels = any(a.task == "detect" and "labels" in a.ai_shown for a in design.arms)
    problems = check_labels(cohort, design.detection.findings, need_reference=True, need_model=shows_labels)
    if problems:
        where = cohort.manifest_path
        raise InvalidInput(f"{where}: " + f"\n{where}: ".join(str(p) for p in problems))


def _store_cohort(session: Session, study: Study, cohort: Cohort) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    detection = study.settings.get("detection")
    for record in cohort.cases:
        case = Case(
            study_id=study.id,
            case_key=record.case_id,
            manifest_row=record.row,
            indication=record.indication or "",
            comparison=record.comparison or "",
            reference_findings=record.reference_findings,
            site=record.site,
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
        if detection:
            _store_labels(session, case, record, detection["findings"])
        cases[record.case_id] = case
    session.flush()
    return cases


def _store_labels(session: Session, case: Case, record, findings: list[str]) -> None:
    """One row per finding of the study's list: the reference standard and the model's probability as the
    manifest gives them (``check_cohort_for_design`` has checked the names)."""
    reference = reference_standard(record, tuple(findings))
    model = model_probabilities(record, tuple(findings))
    for finding in findings:
        session.add(CaseLabel(case_id=case.id, finding=finding, reference=reference.get(finding),
                              model_probability=model.get(finding)))


def store_readers(session: Session, study: Study, roster: list[RosterEntry]) -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    for entry in roster:
        reader = Reader(
            study_id=study.id,
            reader_key=entry.reader_key,
            role=entry.role,
            label=entry.label,
            name=entry.name,
            email=entry.email,
            site=entry.site,
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
            annotate_errors=spec.annotate_errors,
            ai_shown=spec.ai_shown,
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
                    scale=question.scale,
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
    for key, readers_per_case in allocation.readers_per_case.items():
        arms[key].readers_per_case = readers_per_case  # "all" is the role's readers at this allocation
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
            reading_session=planned.reading_session,
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
    for record in cohort.cases:
        for draft in record.drafts:
            if draft.source != "reader" or not draft.text:
                continue
            author = readers.get(draft.author_label or "")
            session.add(new_draft(study_id=study.id, case_id=cases[record.case_id].id, source_kind="manifest",
                                  text=draft.text, author_reader_id=author.id if author else None))
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
        check_cohort_for_design(study_design(study), cohort)
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
        return summarise(session, study)


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
            [CaseSlot(c.case_key, c.id in with_mc, c.site) for c in cases],
            [ReaderSlot(r.reader_key, r.role, r.site) for r in readers],
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
