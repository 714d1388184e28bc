"""The export against the data dictionary (parsed from shared/design/data-dictionary.md), and its reproducibility."""

import json
import re

import pandas as pd
import pytest
from sqlalchemy import select

from study_app.services import reading
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.errors import InvalidInput
from study_app.services.export import DICTIONARY_TABLES, TABLES, build_tables, write_export
from study_app.store.models import Reader
from tests.case_refs import assignment_id_of
from pathlib import Path

SHARED_DESIGN = Path(__file__).resolve().parents[3] / "shared" / "design"

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def dictionary_columns() -> dict[str, list[str]]:
    """Column names per table, as the data dictionary states them (tables and inline lists)."""
    text = (SHARED_DESIGN / "data-dictionary.md").read_text()
    columns: dict[str, list[str]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        name = block.split()[0]
        found: list[str] = []
        for line in block.splitlines():
            if line.startswith("| ") and not line.startswith("| column") and not line.startswith("|---"):
                found += [c.strip() for c in line.split("|")[1].split(",")]
        for inline in re.findall(r"`([^`]+)`", block):
            if "," in inline and "=" not in inline:
                found += [re.sub(r"\s*\(.*?\)", "", c).strip() for c in inline.split(",")]
        columns[name] = [c for c in found if re.fullmatch(r"[a-z_]+", c)]
    return columns


def test_dictionary_parser_sees_every_table():
    columns = dictionary_columns()
    assert set(DICTIONARY_TABLES) <= set(columns) and set(DICTIONARY_TABLES) <= set(TABLES)
    assert "duration_s" in columns["assignments"] and "input_hash" in columns["drafts"]


def test_every_dictionary_column_is_exported(demo_study):
    db, _ = demo_study
    frames = build_tables(db, SYSTEM, "demo")
    for table, wanted in dictionary_columns().items():
        if table not in frames:
            continue
        missing = [c for c in wanted if c not in frames[table].columns]
        assert not missing, f"{table} lacks {missing}"


def test_no_contact_details_leave_in_the_export(demo_study, tmp_path):
    db, _ = demo_study
    with db.transaction() as s:
        reader = s.scalars(select(Reader).where(Reader.reader_key == "res1")).one()
        reader.name, reader.email = "Dr Jane Secret", "jane@hospital.example"
    out = write_export(db, SYSTEM, "demo", tmp_path / "x")
    blob = "".join(p.read_text() for p in out.iterdir())
    assert "Jane Secret" not in blob and "jane@hospital" not in blob


def complete_some_reads(db):
    with db.read() as s:
        res1 = s.scalars(select(Reader).where(Reader.reader_key == "res1")).one()
    actor = reader_actor(res1.id, "res1")
    items = reading.worklist(db, actor).items
    edit = next(i for i in items if i.task == "edit")
    reading.open_case(db, actor, edit.case_ref)
    reading.mark_image_shown(db, actor, edit.case_ref)
    reading.submit(db, actor, edit.case_ref, "Heart size normal.  Lungs clear.", active_s=3.0, hidden_s=0.5, idle_s=0.0)
    reading.save_answers(db, actor, edit.case_ref, {"edit_reason": "content", "indication_applicability": "0",
                                                         "writing_efficiency": "-5", "interpretation_efficiency": "5"})
    return assignment_id_of(db, edit.case_ref)


def test_export_round_trip_values_and_formats(demo_study, tmp_path):
    db, _ = demo_study
    edited = complete_some_reads(db)
    out = write_export(db, SYSTEM, "demo", tmp_path / "csv")
    meta = json.loads((out / "export_meta.json").read_text())
    assert meta["schema_version"] and meta["study_id"] == "demo" and meta["seed"] == 20240601
    assert len(meta["design_sha256"]) == 64 and meta["package_version"] and ISO_MS.match(meta["exported_at"])
    # The pre-specified plan frozen in the design, with its hash, and what validates the answers.
    from analysis.plan import plan_from_meta

    plan = plan_from_meta(meta)
    assert meta["analysis_plan_source"] == "design" and plan.primary.name == "resident_drafting_time"
    assert meta["analysis_plan_sha256"] == plan.sha256
    assert meta["questions"]["writing_efficiency"] == {
        "kind": "likert", "values": ["10", "5", "0", "-5", "-10"], "min": -10.0, "max": 10.0, "neutral": 0.0,
        "labels": {"10": "Strongly agree", "5": "Agree", "0": "Neutral", "-5": "Disagree", "-10": "Strongly disagree"}}
    assert meta["questions"]["edit_reason"]["values"] == ["none", "content", "style", "both"]
    assignments = pd.read_csv(out / "assignments.csv")
    row = assignments.set_index("assignment_id").loc[edited]
    assert row.status == "completed" and row.task == "edit" and row.draft_source == "model"
    assert row.final_text == "Heart size normal.  Lungs clear."
    assert ISO_MS.match(row.first_shown_at) and ISO_MS.match(row.submitted_at)
    assert row.duration_s >= 0 and row.active_s == 3.0 and row.sessions == 1
    assert row.edit_chars > 0 and row.unchanged == False  # noqa: E712
    # Missing is empty, never a sentinel string.
    raw = (out / "assignments.csv").read_text()
    assert "None" not in raw and "nan" not in raw.lower().replace("nanoseconds", "")
    answers = pd.read_csv(out / "answers.csv")
    mine = answers[answers.assignment_id == edited].set_index("question_key")
    assert mine.loc["edit_reason", "value"] == "content"
    assert str(mine.loc["writing_efficiency", "value"]) == "-5" and mine.loc["writing_efficiency", "label"] == "Disagree"
    events = pd.read_csv(out / "events.csv")
    assert {"opened", "image_shown", "submitted", "answers_saved", "completed"} <= set(events.kind)
    json.loads(events.payload.iloc[0])
    cases = pd.read_csv(out / "cases.csv")
    assert len(cases) == 12 and cases.views.str.contains("PA|AP").all()
    # A cohort and roster without sites: the site columns are there, empty (one site).
    assert cases.site.isna().all() and pd.read_csv(out / "readers.csv").site.isna().all()
    parquet = write_export(db, SYSTEM, "demo", tmp_path / "pq", fmt="parquet")
    for table in TABLES:
        frame = pd.read_parquet(parquet / f"{table}.parquet")
        assert list(frame.columns) == list(pd.read_csv(out / f"{table}.csv", nrows=0).columns)
    with pytest.raises(InvalidInput, match="unknown export format 'xlsx'"):
        write_export(db, SYSTEM, "demo", tmp_path / "x", fmt="xlsx")


def test_same_seed_reproduces_the_allocation_byte_for_byte(demo_cohort_dir, tmp_path):
    import shutil

    from study_app.demo import build_demo_study
    from study_app.services.database import open_database

    exports = []
    for run in ("a", "b"):
        cohort = tmp_path / f"cohort-{run}"
        shutil.copytree(demo_cohort_dir, cohort)
        db = open_database(f"sqlite:///{tmp_path / run}.sqlite")
        build_demo_study(db, cohort_dir=cohort)
        out = write_export(db, SYSTEM, "demo", tmp_path / f"export-{run}")
        db.dispose()
        exports.append(out)
    allocation_columns = ["assignment_id", "reader_id", "case_id", "arm", "task", "position", "status", "a_source",
                          "b_source"]
    a, b = (pd.read_csv(e / "assignments.csv")[allocation_columns].to_csv(index=False) for e in exports)
    assert a == b
    assert (exports[0] / "readers.csv").read_bytes() == (exports[1] / "readers.csv").read_bytes()
    assert (exports[0] / "cases.csv").read_bytes() == (exports[1] / "cases.csv").read_bytes()


def test_the_export_measures_edits_with_the_analysis_definition(demo_study):
    """One definition of the edit metrics (analysis.stats.text.edit_distances): a re-indented line is no edit."""
    from analysis.stats.text import edit_distances

    db, _ = demo_study
    with db.read() as s:
        res1 = s.scalars(select(Reader).where(Reader.reader_key == "res1")).one()
    actor = reader_actor(res1.id, "res1")
    edit = next(i for i in reading.worklist(db, actor).items if i.task == "edit")
    view = reading.open_case(db, actor, edit.case_ref)
    reading.mark_image_shown(db, actor, edit.case_ref)
    reading.submit(db, actor, edit.case_ref, "  " + view.editor_text)
    row = build_tables(db, SYSTEM, "demo")["assignments"].set_index("assignment_id").loc[
        assignment_id_of(db, edit.case_ref)]
    assert (row.edit_chars, row.edit_words, bool(row.unchanged)) == edit_distances(view.editor_text, "  " + view.editor_text)
    assert (row.edit_chars, row.edit_words, bool(row.unchanged)) == (0, 0, True)


def test_reference_findings_reach_the_text_metrics_from_the_manifest_through_the_export(demo_study, tmp_path):
    """The manifest's reference_findings column is exported in cases.csv and is what the analysis scores the
    submitted text against; the draft-to-final distances are the export's own edit_chars and edit_words."""
    from analysis import load_tables
    from analysis.stats import bleu, rouge_l
    from analysis.text_metrics import text_metrics_table

    db, _ = demo_study
    edited = complete_some_reads(db)
    out = write_export(db, SYSTEM, "demo", tmp_path / "csv")
    tables = load_tables(out)
    case_id = tables.assignments.set_index("assignment_id").loc[str(edited), "case_id"]
    reference = tables.cases.set_index("case_id").loc[case_id, "reference_findings"]
    assert isinstance(reference, str) and reference.strip()
    table = text_metrics_table(tables.counted_reads(), tables.cases)
    mine = table.loc[table["assignment_id"].eq(str(edited))].set_index("pair")
    assert set(mine.index) == {"draft_final", "draft_reference", "final_reference"}
    final = mine.loc["final_reference"]
    assert final.reference_text == reference and final.hypothesis_text == "Heart size normal.  Lungs clear."
    assert final.bleu == bleu("Heart size normal.  Lungs clear.", reference)
    assert final.rouge_l == rouge_l("Heart size normal.  Lungs clear.", reference)
    exported = pd.read_csv(out / "assignments.csv").set_index("assignment_id").loc[edited]
    draft = mine.loc["draft_final"]
    assert (draft.edit_chars, draft.edit_words) == (exported.edit_chars, exported.edit_words)


def test_sqlite_export_has_keys_indexes_full_text_and_analyses_like_the_csv(sqlite_demo_study, tmp_path):
    import sqlite_utils

    from analysis import load_tables, run_analysis

    db, _ = sqlite_demo_study
    complete_some_reads(db)
    csv_dir = write_export(db, SYSTEM, "demo", tmp_path / "csv")
    sqlite_dir = write_export(db, SYSTEM, "demo", tmp_path / "sqlite", fmt="sqlite")
    exported = sqlite_utils.Database(sqlite_dir / "study.sqlite")
    assert set(TABLES) | {"export_meta", "assignments_fts", "drafts_fts"} <= set(exported.table_names())
    assert exported["assignments"].pks == ["assignment_id"] and exported["answers"].pks == ["assignment_id", "question_key"]
    references = {(fk.column, fk.other_table) for fk in exported["assignments"].foreign_keys}
    assert references == {("reader_id", "readers"), ("case_id", "cases"), ("draft_id", "drafts")}
    assert exported.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {"reader_id", "case_id"} <= {c for index in exported["assignments"].indexes for c in index.columns}
    assert exported["assignments"].columns_dict["duration_s"] is float
    assert [r["final_text"] for r in exported["assignments"].search("Lungs")] == ["Heart size normal.  Lungs clear."]
    # The analysis reads the file and gives the numbers it gives from the CSV export.
    from_csv = run_analysis(load_tables(csv_dir), n_boot=200, require_all_arms=False).results
    from_sqlite = run_analysis(load_tables(sqlite_dir / "study.sqlite"), n_boot=200, require_all_arms=False).results
    # Provenance says when each export and each analysis ran; everything else is the same, figure for figure.
    csv_provenance, sqlite_provenance = from_csv.pop("provenance"), from_sqlite.pop("provenance")
    assert csv_provenance["design_sha256"] == sqlite_provenance["design_sha256"] is not None
    assert json.dumps(from_sqlite, sort_keys=True, default=str) == json.dumps(from_csv, sort_keys=True, default=str)
