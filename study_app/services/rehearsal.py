"""A dress rehearsal of a study before launch: a copy of the database, launched, read by seeded simulated readers
through the real reading services, exported, analysed and reported, so a coordinator sees the whole pipeline and
the planned analysis on fake data before any reader does.

Nothing touches the study itself: everything happens in a private SQLite copy (``blinding.snapshot_database``).
The simulated readers take minutes per case on a simulated clock (``store.models.simulated_clock``), so times are
plausible and the rehearsal takes seconds. Where the copy cannot launch as it stands (model drafts missing, drafts
with problems), the rehearsal says so, as the real launch would, and then fills the gap in the copy only: made-up
placeholder drafts, and problems accepted "for the rehearsal".
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from study_app.services.actors import Actor, reader_actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput
from study_app.store.models import Reader, simulated_clock, utcnow

SCRATCH_DB = "rehearsal.sqlite"
# Median seconds a simulated read takes, by task; readers and reads vary around it. Simulated readers are as blind
# as real ones: an edit takes as long whatever the draft's source (the rehearsal plants no effect of the source).
MEDIAN_SECONDS = {"write": 150.0, "edit": 95.0, "compare": 60.0, "rate_reasoning": 45.0, "detect": 70.0}
READER_SD, READ_SD = 0.25, 0.35  # log-scale spread of a reader's pace and of one read
UNCHANGED_SHARE = 0.3  # edits submitted as shown
PLACEHOLDER_DRAFT = ("Rehearsal placeholder draft (no model output yet): the lungs are clear. No pleural effusion "
                     "or pneumothorax. The cardiomediastinal silhouette is within normal limits.")
EDITS = ("No pleural effusion.", "Mild bibasilar atelectasis.", "No pneumothorax.", "Heart size is normal.")
REHEARSAL_REASON = "accepted for the dress rehearsal only (the real launch refuses it)"


@dataclass
class RehearsalReport:
    """What the rehearsal did and found. ``launch_problems`` are what the real launch would refuse now."""

    study_id: str
    out_dir: str
    scratch_db: str
    seed: int
    launch_problems: list[str] = field(default_factory=list)
    placeholder_drafts: int = 0
    accepted_problem_drafts: int = 0
    n_readers: int = 0
    n_reads: int = 0
    n_assignments: int = 0
    simulated_hours: float = 0.0
    washouts_skipped: int = 0  # times the simulated clock skipped to the end of a washout (reading sessions)
    export_dir: str | None = None
    report_path: str | None = None
    primary: str | None = None
    analysis_error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(vars(self))

    def lines(self) -> list[str]:
        """The summary a coordinator reads (the CLI prints it, the console shows it)."""
        out = [f"dress rehearsal of {self.study_id} (seed {self.seed}) in {self.out_dir}: a copy of the database, "
               "launched and read by simulated readers; the study itself is untouched"]
        if self.launch_problems:
            out.append("the real launch would refuse the study now:")
            out += [f"  {p}" for p in self.launch_problems]
        if self.placeholder_drafts:
            out.append(f"{self.placeholder_drafts} missing draft(s) were made up for the rehearsal (placeholder text)")
        if self.accepted_problem_drafts:
            out.append(f"{self.accepted_problem_drafts} draft(s) with problems were accepted for the rehearsal only")
        out.append(f"{self.n_reads} of {self.n_assignments} assignments read by {self.n_readers} simulated readers "
                   f"over {self.simulated_hours:.1f} simulated hours")
        if self.washouts_skipped:
            out.append(f"the simulated clock skipped to the end of a washout {self.washouts_skipped} time(s) "
                       "(reading sessions)")
        out += [f"note: {n}" for n in self.notes]
        if self.export_dir:
            out.append(f"export: {self.export_dir}")
        if self.analysis_error:
            out.append(f"the analysis could not run: {self.analysis_error}")
        if self.primary:
            out.append(f"primary endpoint on the fake data: {self.primary}")
        if self.report_path:
            out.append(f"report: {self.report_path}")
        return out


class SimulatedClock:
    """A clock that moves only when told to (``advance``), from the real time the rehearsal started."""

    def __init__(self, start: datetime):
        self.start = self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def elapsed_hours(self) -> float:
        return (self.now - self.start).total_seconds() / 3600


def rehearse_study(db: Database, actor: Actor, study_id: str, out_dir: str | Path, *, seed: int | None = None,
                   n_boot: int = 200) -> RehearsalReport:
    """Copy a draft study into a scratch database, launch it, have seeded simulated readers read every case through
    the reading services, then export, analyse and report it into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``rehearsal.sqlite`` (the scratch copy, with every read), ``export/`` and ``report/``.
    seed : int, optional
        Seed of the simulated readers (default: the study's own).
    n_boot : int
        Bootstrap resamples of the analysis (a rehearsal shows the pipeline; 200 is plenty).

    Raises
    ------
    Conflict
        The study is launched (a rehearsal is for a study before launch).
    """
    from study_app.services.blinding import snapshot_database
    from study_app.services.studies import get_study

    require_coordinator(actor, "rehearse a study")
    with db.read() as session:
        study = get_study(session, study_id)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is {study.status}: a dress rehearsal is for a study before launch")
        seed = study.seed if seed is None else seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scratch = snapshot_database(db, actor, out / SCRATCH_DB)
    report = RehearsalReport(study_id=study_id, out_dir=str(out), scratch_db=str(out / SCRATCH_DB), seed=seed)
    try:
        clock = SimulatedClock(utcnow())
        with simulated_clock(clock):
            _prepare_launch(scratch, actor, study_id, report)
            from study_app.services.launch import launch_study

            launch_study(scratch, actor, study_id)
            _read_everything(scratch, study_id, random.Random(f"{seed}:rehearsal"), clock, report)
        report.simulated_hours = round(clock.elapsed_hours, 1)
        _export_and_analyse(scratch, actor, study_id, out, n_boot, report)
    finally:
        scratch.dispose()
    (out / "rehearsal.json").write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    return report


def _prepare_launch(db: Database, actor: Actor, study_id: str, report: RehearsalReport) -> None:
    """Say what the real launch would refuse, then make the copy launchable: placeholders for missing drafts,
    problems accepted for the rehearsal only."""
    from study_app.services.draft_review import accept_draft_problems, review_drafts
    from study_app.services.launch import launch_checklist
    from study_app.services.studies import get_study

    with db.read() as session:
        report.launch_problems = launch_checklist(session, get_study(session, study_id)).problems
    report.placeholder_drafts = _placeholder_drafts(db, study_id)
    with db.read() as session:
        cases = sorted({i.case_key for i in review_drafts(session, study_id) if not i.accepted})
    if cases:
        report.accepted_problem_drafts = len(accept_draft_problems(db, actor, study_id, cases,
                                                                   reason=REHEARSAL_REASON))


def _placeholder_drafts(db: Database, study_id: str) -> int:
    """Made-up drafts for every model draft (and manifest reader draft) the study still lacks, in the copy only."""
    from study_app.services.draft_records import new_draft
    from study_app.services.release import manifest_draft, model_drafts_by_need
    from study_app.store.models import Arm, Assignment, MCItem

    made = 0
    with db.transaction() as session:
        shown = model_drafts_by_need(session, study_id)
        arms = {a.id: a for a in session.scalars(select(Arm).where(Arm.study_id == study_id))}
        needs, manifest_cases = set(), set()
        for case_id, mc_item_id, arm_id in session.execute(
                select(Assignment.case_id, Assignment.mc_item_id, Assignment.arm_id)
                .where(Assignment.study_id == study_id).distinct()):
            kinds = {s["kind"] for s in arms[arm_id].draft_sources}
            if "model" in kinds and (case_id, mc_item_id) not in shown:
                needs.add((case_id, mc_item_id))
            if "manifest" in kinds and manifest_draft(session, case_id) is None:
                manifest_cases.add(case_id)
        for case_id, mc_item_id in sorted(needs, key=lambda k: (k[0], k[1] or 0)):
            item = session.get(MCItem, mc_item_id) if mc_item_id is not None else None
            answer = sorted(item.options)[0] if item is not None else None
            session.add(new_draft(
                study_id=study_id, case_id=case_id, source_kind="model", mc_item_id=mc_item_id,
                task="mc" if item is not None else "findings", text=answer or PLACEHOLDER_DRAFT,
                raw_output=f"Rehearsal placeholder reasoning.\n\\boxed{{{answer or PLACEHOLDER_DRAFT}}}",
                reasoning="Rehearsal placeholder reasoning." if item is not None else None, answer=answer,
                model_id="rehearsal-placeholder", backend="rehearsal", mode="reasoning", parse_status="ok",
                finish_reason="stop"))
            made += 1
        for case_id in sorted(manifest_cases):
            session.add(new_draft(study_id=study_id, case_id=case_id, source_kind="manifest", text=PLACEHOLDER_DRAFT))
            made += 1
    return made


def _read_everything(db: Database, study_id: str, rng: random.Random, clock: SimulatedClock,
                     report: RehearsalReport) -> None:
    """Every simulated reader reads their next open case in turn, through the reading services, until no reader
    has one: a round that waits on other readers' reports opens as they submit them, as in the real study."""
    from study_app.services import reading

    with db.read() as session:
        readers = [reader_actor(r.id, r.reader_key) for r in
                   session.scalars(select(Reader).where(Reader.study_id == study_id).order_by(Reader.id))]
    pace = {r.reader_id: math.exp(rng.gauss(0.0, READER_SD)) for r in readers}
    report.n_readers = len(readers)
    progressed = True
    while progressed:
        progressed = False
        waits = []
        for actor in readers:
            worklist = reading.worklist(db, actor)
            item = worklist.next_item()
            if item is None:
                upcoming = worklist.next_session
                if upcoming is not None and upcoming.opens_at is not None and not upcoming.washout_over:
                    waits.append(upcoming.opens_at)
                continue
            _read_one(db, actor, item.case_ref, rng, clock, pace[actor.reader_id])
            report.n_reads += 1
            progressed = True
        if not progressed and waits:
            # Every reader left waits for a washout (reading sessions): the simulated clock skips to the first
            # opening, as the readers would come back on that day.
            clock.advance(max((min(waits) - clock()).total_seconds(), 0.0) + 60.0)
            report.washouts_skipped += 1
            progressed = True
    with db.read() as session:
        from sqlalchemy import func

        from study_app.store.models import Assignment

        report.n_assignments = session.scalar(select(func.count()).select_from(Assignment)
                                              .where(Assignment.study_id == study_id)) or 0
        held = session.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.study_id == study_id, Assignment.status != "completed")) or 0
    if held:
        report.notes.append(f"{held} assignment(s) were not read: their reading round never opened")


def _read_one(db: Database, actor: Actor, case_ref: str, rng: random.Random, clock: SimulatedClock,
              pace: float) -> None:
    from study_app.services import reading

    view = reading.open_case(db, actor, case_ref)
    clock.advance(rng.uniform(1.0, 4.0))  # the page loads, the image is drawn
    reading.mark_image_shown(db, actor, case_ref)
    seconds = MEDIAN_SECONDS.get(view.task, 90.0) * pace * math.exp(rng.gauss(0.0, READ_SD))
    text, unchanged = None, False
    if view.task in ("write", "edit"):
        shown = view.editor_text or ""
        if view.task == "write" or not shown.strip():
            text = rng.choice(["The lungs are clear. No pleural effusion or pneumothorax.",
                               "Right lower lobe opacity, possibly pneumonia. No effusion.",
                               "Cardiomegaly without pulmonary edema."])
        elif rng.random() < UNCHANGED_SHARE:
            text, unchanged = shown, True
        else:
            sentences = [s for s in shown.split(". ") if s.strip()]
            kept = ". ".join(sentences[:-1]) if len(sentences) > 1 and rng.random() < 0.5 else shown
            text = (kept.rstrip(". ") + ". " + rng.choice(EDITS)).strip()
        clock.advance(seconds / 2)
        reading.autosave(db, actor, case_ref, text[: len(text) // 2])
        clock.advance(seconds / 2)
    elif view.task == "detect":
        for finding in view.detection["findings"]:
            clock.advance(seconds / len(view.detection["findings"]))
            present, confidence = _finding_mark(view.detection["scale"], rng)
            reading.mark_finding(db, actor, case_ref, finding, present=present, confidence=confidence)
    else:
        clock.advance(seconds)
    result = reading.submit(db, actor, case_ref, text, active_s=round(seconds * 0.9, 1), hidden_s=0.0,
                            idle_s=round(seconds * 0.1, 1))
    if result.status == "submitted":
        clock.advance(rng.uniform(5.0, 20.0))  # the questions after SUBMIT are not timed
        marks = None
        if view.annotate_errors:  # the edits to mark exist once the text is submitted
            marks = {s["segment"]: _error_mark(rng) for s in reading.case_view(db, actor, case_ref).error_segments}
        reading.save_answers(db, actor, case_ref, {q.key: _answer(q, rng, unchanged) for q in view.questions
                                                   if q.required or rng.random() < 0.8}, marks)
    clock.advance(rng.uniform(5.0, 30.0))  # to the next case


def _finding_mark(scale: dict, rng: random.Random) -> tuple[bool, int]:
    """A simulated reader's mark of one finding: present or absent at random, with a confidence on its side of the
    scale's middle (the rehearsal plants no effect: its readers know nothing of the images)."""
    present = rng.random() < 0.3
    middle = (scale["min"] + scale["max"]) / 2
    side = [p for p in range(scale["min"], scale["max"] + 1) if (p >= middle if present else p <= middle)]
    return present, rng.choice(side)


def _error_mark(rng: random.Random) -> dict:
    """A simulated reader's mark of one edit: a ReXVal category (or not an error) and a significance, at random."""
    from analysis.draft_errors import ANNOTATION_CHOICES

    return {"category": rng.choice(list(ANNOTATION_CHOICES)), "significant": rng.random() < 0.4}


def _answer(question, rng: random.Random, unchanged: bool) -> str:
    """A plausible answer: edit reasons that match the edit, ratings near the middle of their scale."""
    values = [o["value"] for o in question.options]
    if question.kind == "vas":
        scale = question.scale or {}
        low, high, step = float(scale.get("min", 0)), float(scale.get("max", 100)), float(scale.get("step", 1))
        mark = min(high, max(low, rng.gauss((low + high) / 2 + (high - low) / 10, (high - low) / 6)))
        mark = low + round((mark - low) / step) * step
        return str(int(mark)) if float(mark).is_integer() else str(mark)
    if question.key == "edit_reason" and "none" in values:
        return "none" if unchanged else rng.choice([v for v in values if v != "none"] or values)
    if question.kind == "likert":
        # Around the middle of the scale, a little towards agreement (the first points shown, for CheXOne's).
        position = min(len(values) - 1, max(0, int(round(rng.gauss((len(values) - 1) / 2, len(values) / 5)))))
        return values[position]
    return rng.choice(values)


def _export_and_analyse(db: Database, actor: Actor, study_id: str, out: Path, n_boot: int,
                        report: RehearsalReport) -> None:
    """The export of the rehearsed study, and the planned analysis and report on it."""
    from study_app.services.export import write_export

    export_dir = write_export(db, actor, study_id, out / "export")
    report.export_dir = str(export_dir)
    try:
        from analysis import AnalysisInputError, load_tables, run_analysis, write_report
        from analysis.report import format_p
    except ImportError as error:  # pragma: no cover - the analysis package ships with the platform
        report.analysis_error = f"the analysis package is not available ({error})"
        return
    try:
        result = run_analysis(load_tables(export_dir), n_boot=n_boot, require_all_arms=False)
    except (AnalysisInputError, ValueError) as error:
        report.analysis_error = str(error)
        return
    report.report_path = str(write_report(result, out / "report"))
    primary = next((e for e in result.results["endpoints"] if e["family"] == "primary"), None)
    if primary is not None:
        report.primary = (f"{primary['name']}: no result ({primary['error']})" if primary.get("error") else
                          f"{primary['name']}: {primary['estimate']:.3f} (95% CI {primary['ci_low']:.3f} to "
                          f"{primary['ci_high']:.3f}), p {format_p(primary['p_val'])}")


def read_rehearsal(out_dir: str | Path) -> dict:
    """The summary a finished rehearsal left in its folder (``rehearsal.json``)."""
    path = Path(out_dir) / "rehearsal.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInput(f"no rehearsal summary in {out_dir} ({error})") from None

