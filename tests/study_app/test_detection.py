"""The detect task (issue #15, AI-assisted detection): the design's [detection] table and ai key, the marks a read
saves and SUBMIT locks, and the export's two tables."""

from __future__ import annotations

import pytest

from study_app.designs import DesignError, load_design, parse_design, shipped_design_path
from cohorts.findings import CHEXPERT_FINDINGS
from study_app.designs.design import arm_condition

DESIGN = """
[study]
name = "Tiny detection"
[roles.reader]
[questions.helpful]
kind = "likert"
label = "The AI helped."
[[arms]]
key = "unaided"
task = "detect"
role = "reader"
readers_per_case = "all"
[[arms]]
key = "aided"
task = "detect"
role = "reader"
ai = "labels"
readers_per_case = "all"
same_cases_as = "unaided"
questions = ["helpful"]
instructions = "The AI's labels are shown."
[detection]
findings = ["Cardiomegaly", "Edema", "Pneumothorax"]
confidence = { min = 1, max = 5 }
"""


def test_the_shipped_design_crosses_unaided_and_aided_detection_with_a_washout():
    design = load_design(shipped_design_path("ai_detection"))
    assert {a.key: (a.task, a.ai_shown) for a in design.arms} == {
        "resident_unaided": ("detect", "none"), "resident_aided": ("detect", "labels"),
        "attending_unaided": ("detect", "none"), "attending_aided": ("detect", "labels")}
    assert design.detection.findings == CHEXPERT_FINDINGS
    assert (design.detection.confidence_min, design.detection.confidence_max) == (1, 5)
    assert design.sessions.washout_days == 28
    assert {arm_condition(a) for a in design.arms} == {"detect_none", "detect_labels"}
    primary = design.analysis_plan.primary
    assert (primary.endpoint, primary.role, primary.reference, primary.comparison) == (
        "detection_auc", "attending", "detect_none", "detect_labels")


def test_a_design_without_the_table_gets_the_chexpert_findings_on_a_five_point_scale():
    design = parse_design(DESIGN.split("[detection]")[0])
    assert design.detection.findings == CHEXPERT_FINDINGS
    assert design.detection.to_json() == {
        "findings": list(CHEXPERT_FINDINGS),
        "confidence": {"min": 1, "max": 5, "min_label": "surely absent", "max_label": "surely present"},
        "model_threshold": 0.5, "reader_threshold": None}
    # Unaided and aided arms may differ in instructions and questions: the reader is told which is which, and no
    # draft source hides behind them.
    assert parse_design(DESIGN).arm("aided").instructions == "The AI's labels are shown."


def test_a_detect_arm_showing_the_draft_takes_the_models_draft():
    design = parse_design(DESIGN.replace('ai = "labels"', 'ai = "labels_and_draft"\ndraft = "model"'))
    assert [s.kind for s in design.arm("aided").draft_sources] == ["model"]
    assert arm_condition(design.arm("aided")) == "detect_labels_and_draft"


@pytest.mark.parametrize("old, new, message", [
    ('ai = "labels"', 'ai = "everything"',
     "arms[2] (aided).ai: 'everything' is not one of none, labels, draft, labels_and_draft"),
    ('ai = "labels"', 'ai = "draft"',
     "arms[2] (aided): a 'detect' arm with ai = \"draft\" shows the model's draft: give draft = \"model\""),
    ('ai = "labels"', 'ai = "labels"\ndraft = "model"',
     "arms[2] (aided): a 'detect' arm with ai = \"labels\" shows no draft: leave out 'draft'"),
    ('ai = "labels"', 'ai = "draft"\ndraft = "arm:unaided"',
     "arms[2] (aided).draft: a detect arm shows the AI's draft; its draft must be 'model'"),
    ('task = "detect"\nrole = "reader"\nreaders_per_case = "all"\n[[arms]]',
     'task = "write"\nrole = "reader"\nai = "labels"\nreaders_per_case = "all"\n[[arms]]',
     "arms[1] (unaided).ai: only a 'detect' arm shows the AI's output beside its marks; this is a 'write' arm"),
    ('findings = ["Cardiomegaly", "Edema", "Pneumothorax"]', 'findings = ["Edema", "edema "]',
     "detection.findings: 'edema' is listed twice (as 'Edema')"),
    ('findings = ["Cardiomegaly", "Edema", "Pneumothorax"]', 'findings = []',
     "detection.findings: list at least one finding"),
    ('findings = ["Cardiomegaly", "Edema", "Pneumothorax"]', 'findings = "Edema"',
     "detection.findings: expected a list of keys"),
    ('confidence = { min = 1, max = 5 }', 'confidence = { min = 1, max = 2 }',
     "detection.confidence: expected whole numbers 0 <= min < max <= 100 with at least three points"),
    ('confidence = { min = 1, max = 5 }', 'confidence = { min = 0, max = 1000 }', "got 0-1000"),
    ('confidence = { min = 1, max = 5 }', 'confidence = { min = 1, max = 5, step = 2 }',
     "detection.confidence: unknown key"),
    ('confidence = { min = 1, max = 5 }', 'confidence = { min = 1, max = 5 }\nmodel_threshold = 1.5',
     "detection.model_threshold: expected a probability between 0 and 1 (exclusive), got 1.5"),
    ('confidence = { min = 1, max = 5 }', 'confidence = { min = 1, max = 5 }\nreader_threshold = 9',
     "detection.reader_threshold: expected a confidence above 1 and at most 5, got 9"),
])
def test_the_parser_refuses_what_a_detection_design_cannot_mean(old, new, message):
    assert old in DESIGN
    with pytest.raises(DesignError) as error:
        parse_design(DESIGN.replace(old, new, 1))
    assert message in str(error.value)


def test_a_detection_table_without_a_detect_arm_is_refused():
    design = DESIGN.replace('task = "detect"', 'task = "write"').replace('ai = "labels"\n', "")
    with pytest.raises(DesignError, match=r"detection: the design has no 'detect' arm for this table to configure"):
        parse_design(design)


# --- The marks of a read, on the shipped design and the demo cohort (whose cases carry reference and model labels).

from sqlalchemy import func, select  # noqa: E402

from study_app.demo import write_demo_readers  # noqa: E402
from study_app.services import reading  # noqa: E402
from study_app.services.actors import SYSTEM, reader_actor  # noqa: E402
from study_app.services.creation import create_study  # noqa: E402
from study_app.services.errors import AlreadySubmitted, InvalidInput  # noqa: E402
from study_app.services.export import build_tables, export_meta  # noqa: E402
from study_app.services.launch import launch_study  # noqa: E402
from study_app.store.models import Assignment, CaseLabel, Event, FindingMark, Reader  # noqa: E402


@pytest.fixture
def detection(sqlite_db, demo_cohort_dir, tmp_path):
    """The shipped ai_detection design on the demo cohort, launched."""
    db = sqlite_db
    create_study(db, SYSTEM, study_id="det", design_path=shipped_design_path("ai_detection"),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=5)
    launch_study(db, SYSTEM, "det")
    return db


def _actor(db, key):
    with db.read() as s:
        return reader_actor(s.scalars(select(Reader).where(Reader.reader_key == key)).one().id, key)


def _opened(db, actor, arm_key):
    item = next(i for i in reading.worklist(db, actor).items if i.arm_key == arm_key and i.status == "ready")
    view = reading.open_case(db, actor, item.case_ref)
    reading.mark_image_shown(db, actor, item.case_ref)
    return item.case_ref, view


def _mark_all(db, actor, case_ref, findings, present_of=lambda f: f == "Cardiomegaly"):
    for finding in findings:
        present = present_of(finding)
        reading.mark_finding(db, actor, case_ref, finding, present=present, confidence=4 if present else 2)


def test_the_cohorts_labels_are_stored_for_every_case_and_finding(detection):
    with detection.read() as s:
        n_cases = s.scalar(select(func.count(func.distinct(CaseLabel.case_id))))
        rows = s.scalars(select(CaseLabel)).all()
    assert n_cases == 12 and len(rows) == 12 * 14
    # (The demo gives a reference as null, "not known", now and then: that case sits out that finding's analysis.)
    assert all(r.reference in (0, 1, None) and 0 <= r.model_probability <= 1 for r in rows)
    assert sum(r.reference is None for r in rows) < len(rows) / 10


def test_the_aided_page_shows_the_models_labels_and_the_unaided_page_none(detection):
    actor = _actor(detection, "att1")
    _, aided = _opened(detection, actor, "attending_aided")
    _, unaided = _opened(detection, actor, "attending_unaided")
    assert aided.detection["findings"] == list(CHEXPERT_FINDINGS) == unaided.detection["findings"]
    assert unaided.detection["ai_labels"] is None and not unaided.detection["shows_draft"]
    labels = aided.detection["ai_labels"]
    assert set(labels) == set(CHEXPERT_FINDINGS)
    assert all(label["present"] == (label["probability"] >= 0.5) for label in labels.values())
    assert aided.detection["scale"] == {"min": 1, "max": 5, "min_label": "surely absent",
                                        "max_label": "surely present"}


def test_submit_needs_every_finding_marked_and_then_locks_the_marks(detection):
    actor = _actor(detection, "res1")
    case_ref, view = _opened(detection, actor, "resident_unaided")
    findings = view.detection["findings"]
    _mark_all(detection, actor, case_ref, findings[:-2])
    reading.mark_finding(detection, actor, case_ref, findings[-2], present=False)  # no confidence yet
    with pytest.raises(InvalidInput, match=r"not submitted: mark every finding present or absent, with a confidence "
                                           r"\(Fracture, Support Devices still to mark\)"):
        reading.submit(detection, actor, case_ref)
    with detection.read() as s:
        assert s.scalar(select(Assignment.status).where(Assignment.case_ref == case_ref)) == "in_progress"
    reading.mark_finding(detection, actor, case_ref, findings[-2], present=False, confidence=1)
    reading.mark_finding(detection, actor, case_ref, findings[-1], present=True, confidence=5)
    result = reading.submit(detection, actor, case_ref)
    assert result.status == "completed"  # the unaided arm asks no question
    with pytest.raises(AlreadySubmitted, match="its marks are locked"):
        reading.mark_finding(detection, actor, case_ref, findings[0], present=True, confidence=5)
    with detection.read() as s:
        assignment_id = s.scalar(select(Assignment.id).where(Assignment.case_ref == case_ref))
        marks = {m.finding: (m.present, m.confidence) for m in
                 s.scalars(select(FindingMark).where(FindingMark.assignment_id == assignment_id))}
        event = s.scalars(select(Event).where(Event.assignment_id == assignment_id, Event.kind == "submitted")).one()
    assert marks["Cardiomegaly"] == (True, 4) and marks["Fracture"] == (False, 1) and len(marks) == 14
    assert event.payload["marks"]["Support Devices"] == "present/5"


@pytest.mark.parametrize("finding, present, confidence, message", [
    ("Cardiomegaly", True, 1, "Cardiomegaly: marked present with confidence 1 of 5, which says it is more likely "
                              "absent; change one of the two"),
    ("Edema", False, 5, "Edema: marked absent with confidence 5 of 5, which says it is more likely present"),
    ("Edema", None, 6, "Edema: the confidence must be from 1 to 5, not 6"),
    ("Edema", None, 2.5, "Edema: the confidence must be a whole number from 1 to 5"),
    ("Edema", "yes", None, "Edema: present must be yes or no"),
    ("Oedema", True, 4, "'Oedema' is not one of this study's findings"),
])
def test_a_bad_mark_is_refused_with_the_finding_named_and_the_saved_mark_stands(detection, finding, present,
                                                                               confidence, message):
    actor = _actor(detection, "att2")
    case_ref, _ = _opened(detection, actor, "attending_unaided")
    reading.mark_finding(detection, actor, case_ref, "Edema", present=False, confidence=2)
    with pytest.raises(InvalidInput) as error:
        reading.mark_finding(detection, actor, case_ref, finding, present=present, confidence=confidence)
    assert message in str(error.value)
    assert reading.case_view(detection, actor, case_ref).detection["marks"] == {
        "Edema": {"present": False, "confidence": 2}}


def test_a_mark_needs_an_open_detect_case(detection):
    actor = _actor(detection, "att3")
    item = next(i for i in reading.worklist(detection, actor).items if i.status == "ready")
    with pytest.raises(Exception, match="open the case before marking it"):
        reading.mark_finding(detection, actor, item.case_ref, "Edema", present=False, confidence=1)


def test_the_export_has_every_submitted_mark_and_every_label_and_the_meta_the_scale(detection):
    actor = _actor(detection, "att4")
    case_ref, view = _opened(detection, actor, "attending_aided")
    _mark_all(detection, actor, case_ref, view.detection["findings"])
    reading.submit(detection, actor, case_ref)
    other, _ = _opened(detection, actor, "attending_unaided")
    reading.mark_finding(detection, actor, other, "Edema", present=True, confidence=5)  # open: not exported
    frames = build_tables(detection, SYSTEM, "det")
    marks, labels, assignments = frames["detection_marks"], frames["case_labels"], frames["assignments"]
    with detection.read() as s:
        assignment_id = s.scalar(select(Assignment.id).where(Assignment.case_ref == case_ref))
    assert list(marks.columns) == ["assignment_id", "finding", "present", "confidence", "marked_at"]
    assert marks["assignment_id"].tolist() == [assignment_id] * 14
    assert marks["finding"].tolist() == list(CHEXPERT_FINDINGS)  # in the design's order
    assert marks.loc[marks["finding"] == "Cardiomegaly", ["present", "confidence"]].values.tolist() == [[True, 4]]
    assert list(labels.columns) == ["case_id", "finding", "reference", "model_probability", "model_present"]
    assert len(labels) == 12 * 14
    assert (labels["model_present"] == (labels["model_probability"] >= 0.5)).all()
    row = assignments.set_index("assignment_id").loc[assignment_id]
    assert (row["task"], row["ai_shown"]) == ("detect", "labels")
    meta = export_meta(detection, SYSTEM, "det", frames)
    assert meta["detection"]["findings"] == list(CHEXPERT_FINDINGS)
    assert meta["detection"]["confidence"]["max"] == 5


def test_study_creation_names_every_label_problem_of_the_cohort_and_creates_nothing(sqlite_db, cohort_copy, tmp_path):
    import csv

    manifest = cohort_copy / "manifest.csv"
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    rows[1]["reference_labels"] = rows[1]["reference_labels"].replace('"Edema"', '"Oedema"')
    rows[2]["model_labels"] = ""
    with manifest.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InvalidInput) as error:
        create_study(sqlite_db, SYSTEM, study_id="det", design_path=shipped_design_path("ai_detection"),
                     manifest_path=manifest, readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=5)
    message = str(error.value)
    assert "row 2, column reference_labels" in message and "'Oedema'" in message and "'Edema'" in message
    assert "row 3, column model_labels" in message
    with sqlite_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Assignment)) == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet", "sqlite"])
def test_the_detection_tables_round_trip_through_every_export_format(detection, tmp_path, fmt):
    import sqlite3

    import pandas as pd

    from study_app.services.export import SQLITE_FILE, write_export

    actor = _actor(detection, "att1")
    case_ref, view = _opened(detection, actor, "attending_unaided")
    _mark_all(detection, actor, case_ref, view.detection["findings"])
    reading.submit(detection, actor, case_ref)
    frames = build_tables(detection, SYSTEM, "det")
    out = write_export(detection, SYSTEM, "det", tmp_path / "export", fmt=fmt)
    for name in ("detection_marks", "case_labels"):
        if fmt == "sqlite":
            with sqlite3.connect(out / SQLITE_FILE) as connection:
                back = pd.read_sql_query(f"SELECT * FROM {name}", connection)
        elif fmt == "parquet":
            back = pd.read_parquet(out / f"{name}.parquet")
        else:
            back = pd.read_csv(out / f"{name}.csv")
        assert len(back) == len(frames[name]) > 0
        assert list(back.columns) == list(frames[name].columns)
        assert back["finding"].tolist() == frames[name]["finding"].tolist()


def test_the_console_and_the_refusal_offer_the_chexone_design_first():
    from study_app.designs.design import shipped_design_names
    from study_app.services.console import shipped_designs

    assert shipped_designs() == shipped_design_names()
    assert shipped_design_names()[:2] == ["chexone", "ai_detection"]
    assert set(shipped_design_names()) >= {"crossed", "crossover_washout", "draft_errors", "two_site"}
