"""Builds the tidy tables of the data dictionary from the store, and writes them with export_meta.json.

The column names and vocabularies are a contract with `analysis` (shared/design/data-dictionary.md):
columns may be added, never renamed or dropped without a bump of SCHEMA_VERSION.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from analysis.draft_errors import DRAFT_ERROR_COLUMNS, draft_error_counts
from analysis.stats.text import edit_distances
from study_app.designs import draft_origin
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.detection import model_says_present
from study_app.services.errors import InvalidInput
from study_app.services.studies import get_study
from study_app.store.models import (
    Answer,
    Arm,
    Assignment,
    Case,
    CaseLabel,
    Draft,
    ErrorAnnotation,
    Event,
    FindingMark,
    Image,
    MCItem,
    Question,
    Reader,
    Response,
)

SCHEMA_VERSION = "1.0"
# The data dictionary's six tables, then what this project adds to them (docs/export.md): issue #15's error
# annotation of drafts and its detection task. Every export writes them all.
DICTIONARY_TABLES = ("assignments", "answers", "drafts", "cases", "readers", "events")
TABLES = (*DICTIONARY_TABLES, "draft_errors", "draft_error_counts", "detection_marks", "case_labels")
FORMATS = ("csv", "parquet", "sqlite")
SQLITE_FILE = "study.sqlite"
# The SQLite export's keys, for Datasette and for joins: primary keys, references, and the join keys indexed.
SQLITE_PRIMARY_KEYS = {"assignments": "assignment_id", "answers": ("assignment_id", "question_key"),
                       "drafts": "draft_id", "cases": "case_id", "readers": "reader_id", "events": "event_id",
                       "draft_errors": ("assignment_id", "segment"),
                       "draft_error_counts": ("assignment_id", "category", "significant"),
                       "detection_marks": ("assignment_id", "finding"), "case_labels": ("case_id", "finding")}
SQLITE_FOREIGN_KEYS = {
    "assignments": [("reader_id", "readers", "reader_id"), ("case_id", "cases", "case_id"),
                    ("draft_id", "drafts", "draft_id")],
    "answers": [("assignment_id", "assignments", "assignment_id")],
    "drafts": [("case_id", "cases", "case_id")],
    "events": [("assignment_id", "assignments", "assignment_id")],
    "draft_errors": [("assignment_id", "assignments", "assignment_id"), ("draft_id", "drafts", "draft_id")],
    "draft_error_counts": [("assignment_id", "assignments", "assignment_id")],
    "detection_marks": [("assignment_id", "assignments", "assignment_id")],
    "case_labels": [("case_id", "cases", "case_id")],
}
SQLITE_FULL_TEXT = {"assignments": ["shown_text", "final_text"], "drafts": ["report", "reasoning"]}

ASSIGNMENT_COLUMNS = [
    "study_id", "assignment_id", "reader_id", "reader_role", "case_id", "arm", "task", "position", "status",
    "draft_id", "draft_source", "draft_author_id", "a_draft_id", "b_draft_id", "a_source", "b_source",
    "preferred", "preferred_source", "opened_at", "first_shown_at", "submitted_at", "completed_at",
    "duration_s", "active_s", "hidden_s", "idle_s", "sessions", "shown_text", "final_text",
    "edit_chars", "edit_words", "unchanged",
    # Additions to the dictionary's columns (allowed by the contract): the reading session (1 without [sessions]);
    # whether the read annotated the errors of its draft (draft_errors; null for a read not yet finished).
    "reading_session", "errors_annotated",
    # (issue #15, detection) what a detect arm shows of the AI: none, labels, draft, labels_and_draft; else empty.
    "ai_shown",
]
# Issue #15's detection task: each submitted detect read's mark per finding, and each case's reference standard and
# the model's output per finding (docs/export.md).
DETECTION_MARK_COLUMNS = ["assignment_id", "finding", "present", "confidence", "marked_at"]
CASE_LABEL_COLUMNS = ["case_id", "finding", "reference", "model_probability", "model_present"]
ANSWER_COLUMNS = ["assignment_id", "question_key", "label", "value", "answered_at"]
DRAFT_COLUMNS = [
    "draft_id", "case_id", "source_kind", "author_reader_id", "model_id", "model_revision", "backend", "mode",
    "prompt", "sampling", "seed", "raw_output", "reasoning", "report", "parse_status", "finish_reason",
    "prompt_tokens", "completion_tokens", "latency_s", "input_hash", "created_at",
    # Additions to the dictionary's columns (allowed by the contract):
    "origin", "task", "mc_item", "server_version", "choice_index", "superseded_at",
]
CASE_COLUMNS = ["case_id", "n_images", "views", "has_prior", "indication", "comparison", "reference_findings",
                # Addition (issue #15): the case's site in a multi-site study, else empty.
                "site"]
READER_COLUMNS = ["reader_id", "role", "label",
                  # Addition (issue #15): the reader's site in a multi-site study, else empty.
                  "site"]
EVENT_COLUMNS = ["event_id", "at", "reader_id", "assignment_id", "kind", "payload"]
INT_COLUMNS = {
    "assignments": ["assignment_id", "position", "draft_id", "a_draft_id", "b_draft_id", "sessions",
                    "edit_chars", "edit_words", "reading_session"],
    "answers": ["assignment_id"],
    "drafts": ["draft_id", "seed", "prompt_tokens", "completion_tokens", "choice_index"],
    "cases": ["n_images"],
    "readers": [],
    "events": ["event_id", "assignment_id"],
    "draft_errors": ["assignment_id", "draft_id", "segment"],
    "draft_error_counts": ["assignment_id", "draft_id", "n_errors"],
    "detection_marks": ["assignment_id", "confidence"],
    "case_labels": ["reference"],
}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, as the data dictionary fixes."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def build_tables(db: Database, actor: Actor, study_id: str) -> dict[str, pd.DataFrame]:
    """The six tidy tables of a study as DataFrames, rows in a stable order."""
    require_coordinator(actor, "export a study")
    with db.read() as session:
        get_study(session, study_id)  # NotFound, naming the known studies
        readers = {r.id: r for r in session.scalars(select(Reader).where(Reader.study_id == study_id))}
        cases = {c.id: c for c in session.scalars(select(Case).where(Case.study_id == study_id))}
        arms = {a.id: a for a in session.scalars(select(Arm).where(Arm.study_id == study_id))}
        drafts = {d.id: d for d in session.scalars(select(Draft).where(Draft.study_id == study_id).order_by(Draft.id))}
        assignments = list(
            session.scalars(select(Assignment).where(Assignment.study_id == study_id).order_by(Assignment.id))
        )
        assignment_ids = {a.id for a in assignments}
        responses = {
            r.assignment_id: r
            for r in session.scalars(
                select(Response).join(Assignment, Response.assignment_id == Assignment.id)
                .where(Assignment.study_id == study_id)
            )
        }
        answer_rows = session.execute(
            select(Answer, Question.key)
            .join(Question, Answer.question_id == Question.id)
            .join(Assignment, Answer.assignment_id == Assignment.id)
            .where(Assignment.study_id == study_id)
            .order_by(Answer.assignment_id, Question.ordinal)
        ).all()
        images = list(
            session.scalars(
                select(Image).join(Case, Image.case_id == Case.id).where(Case.study_id == study_id).order_by(Image.case_id, Image.ordinal)
            )
        )
        events = list(session.scalars(select(Event).where(Event.study_id == study_id).order_by(Event.id)))
        annotations = list(session.scalars(
            select(ErrorAnnotation).join(Assignment, ErrorAnnotation.assignment_id == Assignment.id)
            .where(Assignment.study_id == study_id).order_by(ErrorAnnotation.assignment_id, ErrorAnnotation.segment)))
        marks = list(session.scalars(
            select(FindingMark).join(Assignment, FindingMark.assignment_id == Assignment.id)
            .where(Assignment.study_id == study_id, Assignment.status.in_(("submitted", "completed")))
            .order_by(FindingMark.assignment_id, FindingMark.id)))
        labels = list(session.scalars(
            select(CaseLabel).join(Case, CaseLabel.case_id == Case.id).where(Case.study_id == study_id)
            .order_by(CaseLabel.case_id, CaseLabel.id)))
        detection = get_study(session, study_id).settings.get("detection")
        mc_keys = {
            item.id: item.item_key
            for item in session.scalars(select(MCItem).join(Case, MCItem.case_id == Case.id).where(Case.study_id == study_id))
        }

    def reader_key(reader_id: int | None) -> str | None:
        return readers[reader_id].reader_key if reader_id is not None else None

    def origin(draft_id: int | None) -> str | None:
        return drafts[draft_id].origin if draft_id is not None else None

    preference = {
        row.Answer.assignment_id: row.Answer.value for row in answer_rows if row.key == "preference"
    }
    assignment_records = []
    for a in assignments:
        arm = arms[a.arm_id]
        response = responses.get(a.id)
        draft = drafts.get(a.draft_id) if a.draft_id else None
        record = {
            "study_id": study_id,
            "assignment_id": a.id,
            "reader_id": reader_key(a.reader_id),
            "reader_role": readers[a.reader_id].role,
            "case_id": cases[a.case_id].case_key,
            "arm": arm.key,
            "task": arm.task,
            "position": a.position,
            "status": a.status,
            "draft_id": a.draft_id,
            "draft_source": origin(a.draft_id),
            "draft_author_id": reader_key(draft.author_reader_id) if draft else None,
            "a_draft_id": a.a_draft_id,
            "b_draft_id": a.b_draft_id,
            "a_source": origin(a.a_draft_id),
            "b_source": origin(a.b_draft_id),
            "preferred": None,
            "preferred_source": None,
            "opened_at": iso(a.opened_at),
            "first_shown_at": iso(a.first_shown_at),
            "submitted_at": iso(a.submitted_at),
            "completed_at": iso(a.completed_at),
            "duration_s": response.duration_s if response else None,
            "active_s": response.active_s if response else None,
            "hidden_s": response.hidden_s if response else None,
            "idle_s": response.idle_s if response else None,
            "sessions": a.sessions,
            "shown_text": response.shown_text if response else None,
            "final_text": response.final_text if response else None,
            "edit_chars": None,
            "edit_words": None,
            "unchanged": None,
            "reading_session": a.reading_session,
            # Marks are saved with the answers: an annotating arm's read has them once it is completed.
            "errors_annotated": (a.status == "completed") if arm.annotate_errors else None,
            "ai_shown": arm.ai_shown if arm.task == "detect" else None,
        }
        if arm.task == "compare" and arm.draft_sources and a.a_source_index is not None:
            # Known from the allocation even before the drafts are bound.
            origins = [draft_origin(s["kind"]) for s in arm.draft_sources]
            record["a_source"] = origins[a.a_source_index]
            record["b_source"] = origins[1 - a.a_source_index]
        if a.id in preference:
            choice = preference[a.id]
            record["preferred"] = choice
            record["preferred_source"] = {"A": record["a_source"], "B": record["b_source"]}.get(choice, "equivalent")
        if response is not None and arm.task in ("write", "edit"):
            chars, words, unchanged = edit_distances(response.shown_text, response.final_text)
            record.update(edit_chars=chars, edit_words=words, unchanged=unchanged)
        assignment_records.append(record)

    answer_records = [
        {
            "assignment_id": row.Answer.assignment_id,
            "question_key": row.key,
            "label": row.Answer.label,
            "value": row.Answer.value,
            "answered_at": iso(row.Answer.answered_at),
        }
        for row in answer_rows
    ]
    draft_records = [
        {
            "draft_id": d.id,
            "case_id": cases[d.case_id].case_key,
            "source_kind": d.source_kind,
            "author_reader_id": reader_key(d.author_reader_id),
            "model_id": d.model_id,
            "model_revision": d.model_revision,
            "backend": d.backend,
            "mode": d.mode,
            "prompt": d.prompt,
            "sampling": json.dumps(d.sampling, sort_keys=True) if d.sampling is not None else None,
            "seed": d.seed,
            "raw_output": d.raw_output,
            "reasoning": d.reasoning,
            "report": d.report,
            "parse_status": d.parse_status,
            "finish_reason": d.finish_reason,
            "prompt_tokens": d.prompt_tokens,
            "completion_tokens": d.completion_tokens,
            "latency_s": d.latency_s,
            "input_hash": d.input_hash,
            "created_at": iso(d.created_at),
            "origin": d.origin,
            "task": d.task,
            "mc_item": mc_keys.get(d.mc_item_id),
            "server_version": d.server_version,
            "choice_index": d.choice_index,
            "superseded_at": iso(d.superseded_at),
        }
        for d in drafts.values()
    ]
    case_records = []
    for case in sorted(cases.values(), key=lambda c: c.id):
        current = [i for i in images if i.case_id == case.id and not i.is_prior]
        case_records.append(
            {
                "case_id": case.case_key,
                "n_images": len(current),
                "views": ";".join(i.view for i in current),
                "has_prior": any(i.case_id == case.id and i.is_prior for i in images),
                "indication": case.indication or None,
                "comparison": case.comparison or None,
                "reference_findings": case.reference_findings,
                "site": case.site,
            }
        )
    reader_records = [
        {"reader_id": r.reader_key, "role": r.role, "label": r.label, "site": r.site} for r in sorted(readers.values(), key=lambda r: r.id)
    ]
    event_records = [
        {
            "event_id": e.id,
            "at": iso(e.at),
            "reader_id": reader_key(e.reader_id),
            "assignment_id": e.assignment_id if e.assignment_id in assignment_ids else None,
            "kind": e.kind,
            "payload": json.dumps(e.payload, sort_keys=True),
        }
        for e in events
    ]
    draft_of = {a.id: a.draft_id for a in assignments}
    error_records = [
        {"assignment_id": e.assignment_id, "draft_id": draft_of[e.assignment_id], "segment": e.segment,
         "edit_kind": e.edit_kind, "draft_text": e.draft_text, "final_text": e.final_text, "category": e.category,
         "significant": e.significant, "annotated_at": iso(e.annotated_at)}
        for e in annotations
    ]
    # The findings in the design's order (the page's), marks of a read together.
    order = {f: i for i, f in enumerate(detection["findings"])} if detection else {}
    mark_records = [
        {"assignment_id": m.assignment_id, "finding": m.finding, "present": m.present, "confidence": m.confidence,
         "marked_at": iso(m.marked_at)}
        for m in sorted(marks, key=lambda m: (m.assignment_id, order.get(m.finding, len(order))))
    ]
    threshold = detection["model_threshold"] if detection else None
    label_records = [
        {"case_id": cases[label.case_id].case_key, "finding": label.finding, "reference": label.reference,
         "model_probability": label.model_probability,
         "model_present": model_says_present(label.model_probability, threshold)}
        for label in sorted(labels, key=lambda row: (row.case_id, order.get(row.finding, len(order))))
    ]
    assignment_frame = pd.DataFrame(assignment_records, columns=ASSIGNMENT_COLUMNS)
    error_frame = pd.DataFrame(error_records, columns=DRAFT_ERROR_COLUMNS)
    frames = {
        "assignments": assignment_frame,
        "answers": pd.DataFrame(answer_records, columns=ANSWER_COLUMNS),
        "drafts": pd.DataFrame(draft_records, columns=DRAFT_COLUMNS),
        "cases": pd.DataFrame(case_records, columns=CASE_COLUMNS),
        "readers": pd.DataFrame(reader_records, columns=READER_COLUMNS),
        "events": pd.DataFrame(event_records, columns=EVENT_COLUMNS),
        "draft_errors": error_frame,
        # The per-read counts by category and significance, by the analysis's own definition.
        "draft_error_counts": draft_error_counts(assignment_frame, error_frame),
        "detection_marks": pd.DataFrame(mark_records, columns=DETECTION_MARK_COLUMNS),
        "case_labels": pd.DataFrame(label_records, columns=CASE_LABEL_COLUMNS),
    }
    for name, frame in frames.items():
        for column in INT_COLUMNS[name]:
            frames[name][column] = frame[column].astype("Int64")
        for column in ("duration_s", "active_s", "hidden_s", "idle_s", "latency_s", "model_probability"):
            if column in frame:
                frames[name][column] = frame[column].astype("Float64")
        for column in ("unchanged", "has_prior", "errors_annotated", "significant", "present", "model_present"):
            if column in frame:
                frames[name][column] = frame[column].astype("boolean")
    return frames


def export_meta(db: Database, actor: Actor, study_id: str, frames: dict[str, pd.DataFrame]) -> dict:
    """export_meta.json: identity and provenance of the export, plus what the analysis needs to
    validate answers (each question's kind and allowed values) and the pre-specified analysis
    plan frozen in the design (or the shipped default, marked as such), with its SHA-256."""
    from analysis.plan import default_plan

    from study_app.services.studies import study_design

    with db.read() as session:
        study = get_study(session, study_id)
        design = study_design(study)
        plan = design.analysis_plan or default_plan()
        meta = {
            "schema_version": SCHEMA_VERSION,
            "study_id": study.id,
            "study_name": study.name,
            "seed": study.seed,
            "design_name": study.design_name,
            "design_sha256": study.design_sha256,
            "cohort_sha256": study.cohort_sha256,
            "status": study.status,
            "exported_at": iso(datetime.now(timezone.utc)),
            "package_version": package_version(),
            "tables": {name: len(frame) for name, frame in frames.items()},
            # Each question's scoring (kind, codes, labels; a numeric scale's ends and neutral point), so the
            # analysis scores every question of any design by its own scale.
            "questions": {key: q.scoring() for key, q in design.questions.items()},
            "analysis_plan": plan.to_dict(),
            "analysis_plan_sha256": plan.sha256,
            "analysis_plan_source": plan.source,
            # The reading sessions' schedule (crossover arms per role, washout_days, ...) or null: the analysis
            # reads a crossover's period effect from it (docs/analysis.md, "Crossover designs").
            "sessions": design.sessions.to_json() if design.sessions is not None else None,
            # The [sites] table (mode, balance) or null: sites are then only recorded, if the cohort has any.
            "sites": design.sites.to_json() if design.sites is not None else None,
            # The [detection] table (findings, confidence scale, thresholds) or null: no detect arm.
            "detection": design.detection.to_json() if design.detection is not None else None,
        }
    return meta


def package_version() -> str:
    try:
        return version("readerstudy")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def write_export(db: Database, actor: Actor, study_id: str, out_dir: str | Path, *, fmt: str = "csv") -> Path:
    """Write every table of the data dictionary and export_meta.json into `out_dir`."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format '{fmt}' (expected {' or '.join(FORMATS)})")
    frames = build_tables(db, actor, study_id)
    meta = export_meta(db, actor, study_id, frames)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "sqlite":
        write_sqlite(frames, meta, out / SQLITE_FILE)
    for name, frame in frames.items():
        if fmt == "csv":
            frame.to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
        elif fmt == "parquet":
            frame.to_parquet(out / f"{name}.parquet", index=False)
    meta["format"] = fmt
    (out / "export_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def write_sqlite(frames: dict[str, pd.DataFrame], meta: dict, path: Path) -> Path:
    """The data-dictionary tables as one SQLite file that Datasette opens directly and the analysis reads.

    Columns keep their types (integers, reals, text, booleans as 0/1); each table has its primary key, its
    references to the others (``assignments.reader_id`` -> ``readers``, ...), an index on every join key, and
    full-text search on the report texts (``assignments_fts``, ``drafts_fts``). ``export_meta`` holds
    export_meta.json as key/value rows (values JSON). Written with sqlite-utils, to a new file.
    """
    import sqlite_utils

    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    db = sqlite_utils.Database(partial)
    for name in TABLES:  # the references are added once every table holds its rows
        frame = frames[name].astype(object).where(frames[name].notna(), None)
        rows = frame.to_dict(orient="records")
        table = db[name]
        table.create({c: _sqlite_type(frames[name][c]) for c in frame.columns}, pk=SQLITE_PRIMARY_KEYS[name],
                     not_null=set(SQLITE_PRIMARY_KEYS[name]) if isinstance(SQLITE_PRIMARY_KEYS[name], tuple)
                     else {SQLITE_PRIMARY_KEYS[name]})
        if rows:
            table.insert_all(rows)
    db.add_foreign_keys([(name, column, other, other_column) for name, keys in SQLITE_FOREIGN_KEYS.items()
                         for column, other, other_column in keys])
    for name, keys in SQLITE_FOREIGN_KEYS.items():
        for column, _, _ in keys:
            db[name].create_index([column], if_not_exists=True)
    db["answers"].create_index(["question_key"], if_not_exists=True)
    for name, columns in SQLITE_FULL_TEXT.items():
        db[name].enable_fts(columns, create_triggers=False)
    db["export_meta"].insert_all([{"key": k, "value": json.dumps(v, sort_keys=True)} for k, v in meta.items()],
                                 pk="key")
    db.close()
    partial.replace(path)
    return path


def _sqlite_type(series: pd.Series):
    if pd.api.types.is_bool_dtype(series):
        return int
    if pd.api.types.is_integer_dtype(series):
        return int
    if pd.api.types.is_float_dtype(series):
        return float
    return str
