"""Load and validate the tidy export tables (data-dictionary.md) that every analysis starts from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TABLE_NAMES = ("assignments", "answers", "drafts", "cases", "readers", "events", "draft_errors", "detection_marks",
               "case_labels")
# draft_errors: the error annotation of drafts (issue #15), present in every export of this version, absent from
# older ones and from studies whose designs ask for none. detection_marks and case_labels (issue #15's detect task):
# only a study with detect arms has them.
OPTIONAL_TABLES = ("events", "draft_errors", "detection_marks", "case_labels")

# The columns each statistic needs. The contract lists more; extra or absent
# non-essential columns are tolerated so an older export still analyses, but a
# column a statistic reads must be there (edit metrics are recomputed instead).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "assignments": (
        "assignment_id", "reader_id", "reader_role", "case_id", "arm", "task", "status",
        "draft_id", "draft_source", "a_source", "b_source", "preferred", "preferred_source",
        "duration_s", "shown_text", "final_text",
    ),
    "answers": ("assignment_id", "question_key", "value"),
    "drafts": ("draft_id", "case_id", "source_kind"),
    "cases": ("case_id",),
    "readers": ("reader_id", "role"),
    "events": ("event_id", "at", "reader_id", "assignment_id", "kind"),
    "draft_errors": ("assignment_id", "segment", "category", "significant"),
    "detection_marks": ("assignment_id", "finding", "present", "confidence"),
    "case_labels": ("case_id", "finding", "reference", "model_probability", "model_present"),
}

#: Statuses whose reads count. ``submitted`` reads have a locked text and a
#: server-side duration; only their feedback answers may still be missing, and
#: answers are used wherever they exist. ``pending``/``ready``/``in_progress``
#: reads have no measurement and never count.
COUNTED_STATUSES = ("submitted", "completed")

TASKS = ("write", "edit", "compare", "rate_reasoning", "detect")
#: What a detect arm shows of the model (``assignments.ai_shown``): nothing, its per-finding labels, its draft report,
#: or both.
AI_SHOWN = ("none", "labels", "draft", "labels_and_draft")
#: The 14 CheXpert observations (Irvin et al. 2019), the findings of a detect arm when the design names none.
CHEXPERT_FINDINGS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
                     "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                     "Fracture", "Support Devices")
STATUSES = ("pending", "ready", "in_progress", "submitted", "completed")
DRAFT_SOURCES = ("model", "reader")
PREFERRED_SOURCES = ("model", "reader", "equivalent")
SENTINELS = ("NA", "N/A", "NaN", "nan", "None", "null", "NULL", "-999", "-1")
LIKERT_VALUES = ("10", "5", "0", "-5", "-10")
#: Allowed answer values of the CheXOne questions, used when export_meta.json does not
#: carry the design's questions (older exports, simulated studies).
DEFAULT_QUESTIONS = {
    "edit_reason": {"kind": "choice", "values": ["none", "content", "style", "both"]},
    "preference": {"kind": "choice", "values": ["A", "B", "equivalent"]},
    **{key: {"kind": "likert", "values": list(LIKERT_VALUES), "min": -10.0, "max": 10.0, "neutral": 0.0} for key in (
        "indication_applicability", "writing_efficiency", "interpretation_efficiency", "factuality",
        "causal_support")},
}
#: Question kinds whose answers are scores (averaged, compared, tested against the scale's neutral point).
NUMERIC_KINDS = ("likert", "vas")
#: Choice questions the analysis treats on their own (the edit reason's shares and McNemar; the preference).
DEDICATED_CHOICES = ("edit_reason", "preference")


@dataclass(frozen=True)
class ItemScale:
    """How one question is scored, as ``export_meta.json`` ``questions`` records it.

    Attributes
    ----------
    key, kind : str
        The question key and its kind: ``choice``, ``likert`` (a point of a scale of any length; the code is the
        point's score) or ``vas`` (a visual-analogue mark, a number from ``low`` to ``high``).
    values : tuple of str
        The codes an answer may have (empty for ``vas``).
    labels : dict
        Code -> the label the reader saw.
    low, high, neutral : float or None
        For the numeric kinds: the scale's lowest and highest score and its neutral point (the null of a
        single-condition test; the middle of the scale unless the design says otherwise).
    """

    key: str
    kind: str
    values: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    neutral: float | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS

    def describe(self) -> str:
        """``5-point Likert, -10 to 10, neutral 0`` / ``visual-analogue 0 to 100`` / ``choice of 4``."""
        if self.kind == "likert":
            return f"{len(self.values)}-point Likert, {self.low:g} to {self.high:g}, neutral {self.neutral:g}"
        if self.kind == "vas":
            return f"visual-analogue {self.low:g} to {self.high:g}, neutral {self.neutral:g}"
        return f"choice of {len(self.values)}"


def question_scales(meta: dict) -> dict[str, ItemScale]:
    """Every question's scoring, from ``export_meta.json`` ``questions`` (the CheXOne questions for an export
    without them). A Likert question without ``min``/``max`` (exports before issue #14) is scored on its codes."""
    scales = {}
    for key, spec in (meta.get("questions") or DEFAULT_QUESTIONS).items():
        kind = str(spec.get("kind", "choice"))
        values = tuple(str(v) for v in spec.get("values", []))
        low, high, neutral = spec.get("min"), spec.get("max"), spec.get("neutral")
        if kind == "likert" and values and low is None:
            scores = [float(v) for v in values]
            low, high = min(scores), max(scores)
        if kind in NUMERIC_KINDS and low is not None and neutral is None:
            neutral = (float(low) + float(high)) / 2
        scales[str(key)] = ItemScale(
            key=str(key), kind=kind, values=values, labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
            low=None if low is None else float(low), high=None if high is None else float(high),
            neutral=None if neutral is None else float(neutral))
    return scales


@dataclass(frozen=True)
class DetectionDesign:
    """The detect task's settings, as ``export_meta.json`` ``detection`` records them.

    Attributes
    ----------
    findings : tuple of str
        The study-wide findings, in the design's order.
    confidence_min, confidence_max : float
        The ends of the confidence scale (higher = more likely present).
    min_label, max_label : str
        What the reader saw at the scale's ends.
    model_threshold : float
        The model calls a finding present when its probability is at least this.
    reader_threshold : float or None
        A read counts positive for sensitivity and specificity when its confidence is at least this; None: the
        reader's own presence mark.
    """

    findings: tuple[str, ...]
    confidence_min: float
    confidence_max: float
    min_label: str = ""
    max_label: str = ""
    model_threshold: float = 0.5
    reader_threshold: float | None = None

    @classmethod
    def from_meta(cls, meta: dict) -> "DetectionDesign | None":
        """The design of ``meta['detection']``, or None when the export has none (a study without detect arms)."""
        spec = meta.get("detection")
        if not spec:
            return None
        scale = spec.get("confidence") or {}
        try:
            low, high = float(scale.get("min", 1)), float(scale.get("max", 5))
            model = float(spec.get("model_threshold", 0.5))
            reader = spec.get("reader_threshold")
            reader = None if reader is None else float(reader)
        except (TypeError, ValueError) as exc:
            raise AnalysisInputError(f"export_meta.json detection: a scale end or threshold is not a number ({exc})") from None
        findings = tuple(str(f) for f in (spec.get("findings") or CHEXPERT_FINDINGS))
        if not low < high:
            raise AnalysisInputError(f"export_meta.json detection.confidence: min {low:g} is not below max {high:g}")
        if len(set(findings)) != len(findings):
            raise AnalysisInputError("export_meta.json detection.findings names a finding twice")
        return cls(findings=findings, confidence_min=low, confidence_max=high,
                   min_label=str(scale.get("min_label") or ""), max_label=str(scale.get("max_label") or ""),
                   model_threshold=model, reader_threshold=reader)


# Columns that identify a read: an empty one would silently drop or merge reads.
KEY_COLUMNS = {"assignments": ("assignment_id", "reader_id", "reader_role", "case_id", "arm", "task", "status"),
               "answers": ("assignment_id", "question_key"), "readers": ("reader_id", "role"),
               "cases": ("case_id",), "detection_marks": ("assignment_id", "finding"),
               "case_labels": ("case_id", "finding")}


class AnalysisInputError(ValueError):
    """Raised when the export cannot be analysed as it stands (missing tables or
    columns, duplicated reads or answers, unknown codes, arms with no reads)."""


@dataclass
class StudyTables:
    """The tidy tables of one study export.

    Attributes
    ----------
    assignments, answers, drafts, cases, readers : pandas.DataFrame
        Tables exactly as in ``data-dictionary.md``.
    events : pandas.DataFrame or None
        The audit log, when exported.
    draft_errors : pandas.DataFrame or None
        The error annotation of drafts (one row per annotated edit), when exported.
    detection_marks : pandas.DataFrame or None
        A detect read's mark of each finding (``present`` boolean, ``confidence`` float), when the study has
        detect arms.
    case_labels : pandas.DataFrame or None
        Each case's reference (``reference`` 1/0, missing when unknown) and the model's ``model_probability`` and
        ``model_present`` for each finding, when the study has detect arms.
    meta : dict
        Content of ``export_meta.json`` (schema_version, study id, seed, ...).
    exclusions : dict
        Documented exclusions found by the validation, ``{reason: [assignment_id, ...]}``;
        ``zero_duration``: counted reads with ``duration_s == 0``, left out of every
        time analysis (a read cannot take no time) and counted in the report.
    """

    assignments: pd.DataFrame
    answers: pd.DataFrame
    drafts: pd.DataFrame
    cases: pd.DataFrame
    readers: pd.DataFrame
    events: pd.DataFrame | None = None
    draft_errors: pd.DataFrame | None = None
    detection_marks: pd.DataFrame | None = None
    case_labels: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    exclusions: dict = field(default_factory=dict)

    @property
    def scales(self) -> dict[str, ItemScale]:
        """Each question's scoring (:func:`question_scales` of the export's metadata)."""
        return question_scales(self.meta)

    @property
    def detection(self) -> DetectionDesign | None:
        """The detect task's findings, scale and thresholds (None for a study without detect arms)."""
        return DetectionDesign.from_meta(self.meta)

    def counted_reads(self) -> pd.DataFrame:
        """Assignments whose status is in :data:`COUNTED_STATUSES`, with a ``condition`` column.

        ``condition`` is ``task`` for write/compare/rate_reasoning,
        ``edit_<draft_source>`` for edits and ``detect_<ai_shown>`` for detection reads, so comparisons are
        found by columns, never by arm names.
        """
        a = self.assignments
        reads = a.loc[a["status"].isin(COUNTED_STATUSES)].copy()
        shown = reads["ai_shown"] if "ai_shown" in reads.columns else pd.Series(pd.NA, index=reads.index)
        reads["condition"] = np.where(
            reads["task"].eq("edit"), "edit_" + reads["draft_source"].astype("string").fillna("unknown"),
            np.where(reads["task"].eq("detect"), "detect_" + shown.astype("string").fillna("unknown"),
                     reads["task"].astype("string")))
        reads["condition"] = reads["condition"].astype(str)
        # Multi-site studies: the read's case's site (``site``, the analysis's stratum) and its reader's
        # (``reader_site``); missing when the export has no sites (a study without sites is one site).
        reads["site"] = reads["case_id"].map(_site_map(self.cases, "case_id"))
        reads["reader_site"] = reads["reader_id"].map(_site_map(self.readers, "reader_id"))
        return reads


def _site_map(frame: pd.DataFrame, key: str) -> dict:
    if frame is None or "site" not in frame.columns:
        return {}
    sites = frame.loc[frame["site"].notna(), [key, "site"]]
    return dict(zip(sites[key].astype(str), sites["site"].astype(str)))


def _read_table(folder: Path, name: str) -> pd.DataFrame | None:
    for suffix in (".parquet", ".csv"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            if suffix == ".parquet":
                return pd.read_parquet(path)
            # keep_default_na=False then na_values=[""]: only an empty cell is missing,
            # so a reader who literally typed "NA" in a report keeps their text.
            return pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False)
    return None


def load_tables(folder: str | Path) -> StudyTables:
    """Read an export folder (``assignments.csv`` or ``.parquet``, ... and ``export_meta.json``), or the SQLite
    file of ``readerstudy export --format sqlite`` (``study.sqlite``, or the folder holding it).

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder written by ``readerstudy export``, or its ``study.sqlite``.

    Returns
    -------
    StudyTables
        Validated tables (see :func:`tables_from_frames`).

    Raises
    ------
    AnalysisInputError
        When the folder, a required table, a required column or the metadata is
        missing, or when reads or answers are duplicated.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".sqlite":
        return _load_sqlite(folder)
    if not folder.is_dir():
        raise AnalysisInputError(f"export folder not found: {folder}")
    if (folder / "study.sqlite").is_file() and not any((folder / f"assignments{s}").exists() for s in (".csv", ".parquet")):
        return _load_sqlite(folder / "study.sqlite")
    frames = {}
    for name in TABLE_NAMES:
        frame = _read_table(folder, name)
        if frame is not None:
            frames[name] = frame
    meta_path = folder / "export_meta.json"
    if not meta_path.exists():
        raise AnalysisInputError(f"{meta_path} is missing: an export always carries export_meta.json")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise AnalysisInputError(f"{meta_path} is not valid JSON: {exc}") from exc
    return tables_from_frames(frames, meta)


def _load_sqlite(path: Path) -> StudyTables:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            frames = {name: pd.read_sql_query(f'SELECT * FROM "{name}"', connection)
                      for name in TABLE_NAMES if name in names}
            if "export_meta" not in names:
                raise AnalysisInputError(f"{path} has no export_meta table: it is not a readerstudy export")
            meta = {key: json.loads(value) for key, value in connection.execute("SELECT key, value FROM export_meta")}
    except sqlite3.DatabaseError as exc:
        raise AnalysisInputError(f"{path} is not a readable SQLite export: {exc}") from exc
    for frame in frames.values():  # SQLite keeps booleans as 0/1
        for column in ("unchanged", "has_prior", "errors_annotated", "significant", "present", "model_present"):
            if column in frame:
                frame[column] = frame[column].map({1: True, 0: False}).astype("boolean")
    return tables_from_frames(frames, meta)


def tables_from_frames(frames: dict[str, pd.DataFrame], meta: dict) -> StudyTables:
    """Validate in-memory tables exactly like :func:`load_tables`.

    Parameters
    ----------
    frames : dict of str to pandas.DataFrame
        Keys ``assignments``, ``answers``, ``drafts``, ``cases``, ``readers`` and
        optionally ``events``.
    meta : dict
        The export metadata.

    Returns
    -------
    StudyTables

    Raises
    ------
    AnalysisInputError
        Missing table or column; duplicated ``assignment_id`` or reader x case x
        arm; duplicated answer (assignment x question); unknown task, draft source
        or preferred source; sentinel strings where a duration should be; negative
        durations; answers to unknown assignments. Also (each message names the table,
        the 1-based data row and the column): an empty key column (assignment_id,
        reader_id, reader_role, case_id, arm, task, status; answers' assignment_id and
        question_key; readers' reader_id and role), a reader_id missing from readers or
        a reader_role disagreeing with readers.role, a submitted edit without
        draft_source, a preferred_source contradicting the A/B letter and
        a_source/b_source, a comparison of two drafts of the same source, an answer
        outside its question's scale or options (from ``meta['questions']``, else the
        CheXOne questions), a preference answer disagreeing with
        assignments.preferred.
    """
    if not isinstance(meta, dict):
        raise AnalysisInputError("meta must be the export_meta.json content (a dict)")
    missing_tables = [n for n in TABLE_NAMES if n not in OPTIONAL_TABLES and frames.get(n) is None]
    if missing_tables:
        raise AnalysisInputError(f"missing table(s): {', '.join(missing_tables)}")
    tables = {}
    for name in TABLE_NAMES:
        frame = frames.get(name)
        if frame is None:
            continue
        absent = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
        if absent:
            raise AnalysisInputError(f"table {name!r} lacks column(s): {', '.join(absent)}")
        tables[name] = frame.copy()

    for name, cols in KEY_COLUMNS.items():
        if name in tables:
            _check_keys(tables[name], name, cols)
    a = tables["assignments"]
    for col in ("assignment_id", "reader_id", "case_id"):
        a[col] = a[col].astype(str)
    dup = a["assignment_id"].duplicated(keep=False)
    if dup.any():
        ids = ", ".join(sorted(a.loc[dup, "assignment_id"].unique())[:5])
        raise AnalysisInputError(f"duplicated assignment_id in assignments: {ids}")
    dup = a.duplicated(["reader_id", "case_id", "arm"], keep=False)
    if dup.any():
        first = a.loc[dup].iloc[0]
        raise AnalysisInputError(
            f"duplicated read: reader {first['reader_id']} has case {first['case_id']} in arm "
            f"{first['arm']} {int(dup.sum())} times; a reader x case x arm is read once")
    _check_vocabulary(a, "task", TASKS)
    _check_vocabulary(a, "status", STATUSES)
    _check_vocabulary(a, "draft_source", DRAFT_SOURCES)
    _check_vocabulary(a, "a_source", DRAFT_SOURCES)
    _check_vocabulary(a, "b_source", DRAFT_SOURCES)
    _check_vocabulary(a, "preferred_source", PREFERRED_SOURCES)
    _check_vocabulary(a, "preferred", ("A", "B", "equivalent"))
    if "ai_shown" in a.columns:
        _check_vocabulary(a, "ai_shown", AI_SHOWN)
    detect = a["task"].eq("detect")
    unshown = detect & (a["ai_shown"].isna() if "ai_shown" in a.columns else True)
    if np.asarray(unshown).any():
        raise AnalysisInputError(f"{_where(a, pd.Series(unshown, index=a.index), 'assignments')}: a detect read "
                                 "without ai_shown; its condition (what the model showed) cannot be known")
    a["duration_s"] = _numeric(a["duration_s"], "assignments.duration_s")
    bad = a["duration_s"].notna() & ~np.isfinite(a["duration_s"].fillna(0))
    if bad.any():
        raise AnalysisInputError(f"{_where(a, bad, 'assignments')}: duration_s is not finite")
    negative = a["duration_s"] < 0
    if negative.any():
        raise AnalysisInputError(
            f"{_where(a, negative, 'assignments')}: duration_s is negative ({a.loc[negative, 'duration_s'].iloc[0]:g}); "
            "a duration is submitted_at - first_shown_at and cannot be negative")
    for col in ("edit_chars", "edit_words", "active_s"):
        if col in a.columns:
            a[col] = _numeric(a[col], f"assignments.{col}")
    if "unchanged" in a.columns:
        a["unchanged"] = _boolean(a["unchanged"], "assignments.unchanged")
    for col in ("shown_text", "final_text"):
        a[col] = a[col].astype("string")

    readers = tables["readers"]
    readers["reader_id"] = readers["reader_id"].astype(str)
    _check_roles(a, readers)
    counted = a["status"].isin(COUNTED_STATUSES)
    no_source = counted & a["task"].eq("edit") & a["draft_source"].isna()
    if no_source.any():
        raise AnalysisInputError(
            f"{_where(a, no_source, 'assignments')}: an edit without draft_source; the condition "
            "(edit of a model or of a reader draft) cannot be known")
    _check_compare(a)

    ans = tables["answers"]
    ans["assignment_id"] = ans["assignment_id"].astype(str)
    dup = ans.duplicated(["assignment_id", "question_key"], keep=False)
    if dup.any():
        first = ans.loc[dup].iloc[0]
        raise AnalysisInputError(
            f"duplicated answer: assignment {first['assignment_id']} answers "
            f"{first['question_key']!r} more than once")
    unknown = ~ans["assignment_id"].isin(a["assignment_id"])
    if unknown.any():
        raise AnalysisInputError(
            f"{int(unknown.sum())} answer(s) refer to unknown assignment_id, e.g. "
            f"{ans.loc[unknown, 'assignment_id'].iloc[0]}")
    ans["value"] = ans["value"].astype("string").str.strip()
    _check_answers(ans, a, meta.get("questions") or DEFAULT_QUESTIONS)
    tables["cases"]["case_id"] = tables["cases"]["case_id"].astype(str)
    if "errors_annotated" in a.columns:
        a["errors_annotated"] = _boolean(a["errors_annotated"], "assignments.errors_annotated")
    if tables.get("draft_errors") is not None:
        _check_draft_errors(tables["draft_errors"], a)
    _check_detection(tables, a, meta)
    zero = counted & a["duration_s"].eq(0)
    exclusions = {"zero_duration": a.loc[zero, "assignment_id"].tolist()}
    return StudyTables(meta=dict(meta), exclusions=exclusions, **{n: tables.get(n) for n in TABLE_NAMES})


def _check_draft_errors(errors: pd.DataFrame, a: pd.DataFrame) -> None:
    """The error annotation: known reads, one row per read and edit, ReXVal codes, a significance for an error."""
    from analysis.draft_errors import ANNOTATION_CHOICES, NOT_AN_ERROR

    errors["assignment_id"] = errors["assignment_id"].astype(str)
    unknown = ~errors["assignment_id"].isin(a["assignment_id"])
    if unknown.any():
        raise AnalysisInputError(f"{_where(errors, unknown, 'draft_errors')}: unknown assignment_id "
                                 f"{errors.loc[unknown, 'assignment_id'].iloc[0]}")
    dup = errors.duplicated(["assignment_id", "segment"], keep=False)
    if dup.any():
        raise AnalysisInputError(f"{_where(errors, dup, 'draft_errors')}: an edit (assignment_id, segment) is "
                                 "annotated more than once")
    _check_vocabulary(errors, "category", tuple(ANNOTATION_CHOICES), "draft_errors")
    errors["significant"] = _boolean(errors["significant"], "draft_errors.significant")
    missing = errors["significant"].isna() & errors["category"].ne(NOT_AN_ERROR)
    if missing.any():
        raise AnalysisInputError(f"{_where(errors, missing, 'draft_errors')}: an error without its clinical "
                                 "significance")


def _check_detection(tables: dict, a: pd.DataFrame, meta: dict) -> None:
    """The detect task's tables: known reads and cases, the design's findings, one mark per read and finding and
    one label per case and finding, marks on the design's scale, references 0/1, model probabilities in 0..1
    agreeing with the model's calls."""
    marks, labels = tables.get("detection_marks"), tables.get("case_labels")
    if marks is None and labels is None:
        return
    design = DetectionDesign.from_meta(meta)
    if design is None and all(t is None or t.empty for t in (marks, labels)):
        # Every export writes both tables; a study without detect arms writes them empty: as good as absent.
        tables["detection_marks"] = tables["case_labels"] = None
        return
    if design is None:
        present = "detection_marks" if marks is not None and not marks.empty else "case_labels"
        raise AnalysisInputError(f"{present} is exported but export_meta.json has no detection block (findings, "
                                 "confidence scale, thresholds): the marks cannot be read without it")
    findings = set(design.findings)
    if marks is not None:
        marks["assignment_id"] = marks["assignment_id"].astype(str)
        marks["finding"] = marks["finding"].astype(str)
        unknown = ~marks["assignment_id"].isin(a["assignment_id"])
        if unknown.any():
            raise AnalysisInputError(f"{_where(marks, unknown, 'detection_marks')}: unknown assignment_id "
                                     f"{marks.loc[unknown, 'assignment_id'].iloc[0]} (column assignment_id)")
        task = marks["assignment_id"].map(a.set_index("assignment_id")["task"])
        other = task.ne("detect")
        if other.any():
            raise AnalysisInputError(f"{_where(marks, other, 'detection_marks')}: column assignment_id names a "
                                     f"{task[other].iloc[0]} read; only detect reads mark findings")
        _check_findings(marks, "detection_marks", findings)
        dup = marks.duplicated(["assignment_id", "finding"], keep=False)
        if dup.any():
            raise AnalysisInputError(f"{_where(marks, dup, 'detection_marks')}: finding "
                                     f"{marks.loc[dup, 'finding'].iloc[0]!r} is marked more than once in one read")
        marks["present"] = _boolean_at(marks, "present", "detection_marks")
        empty = marks["present"].isna()
        if empty.any():
            raise AnalysisInputError(f"{_where(marks, empty, 'detection_marks')}: column present is empty; a mark "
                                     "says yes or no")
        marks["confidence"] = _numeric_at(marks, "confidence", "detection_marks")
        low, high = design.confidence_min, design.confidence_max
        empty = marks["confidence"].isna()
        if empty.any():
            raise AnalysisInputError(f"{_where(marks, empty, 'detection_marks')}: column confidence is empty; a mark "
                                     f"has a confidence on the design's scale ({low:g} to {high:g})")
        off = ~marks["confidence"].between(low, high)
        if off.any():
            raise AnalysisInputError(
                f"{_where(marks, off, 'detection_marks')}: column confidence "
                f"{marks.loc[off, 'confidence'].iloc[0]:g} is outside the design's scale ({low:g} to {high:g})")
    if labels is not None:
        labels["case_id"] = labels["case_id"].astype(str)
        labels["finding"] = labels["finding"].astype(str)
        unknown = ~labels["case_id"].isin(tables["cases"]["case_id"])
        if unknown.any():
            raise AnalysisInputError(f"{_where(labels, unknown, 'case_labels')}: column case_id "
                                     f"{labels.loc[unknown, 'case_id'].iloc[0]} is not in cases")
        _check_findings(labels, "case_labels", findings)
        dup = labels.duplicated(["case_id", "finding"], keep=False)
        if dup.any():
            raise AnalysisInputError(f"{_where(labels, dup, 'case_labels')}: finding "
                                     f"{labels.loc[dup, 'finding'].iloc[0]!r} is labelled more than once for one case")
        labels["reference"] = _boolean_at(labels, "reference", "case_labels").astype("Int64")
        labels["model_probability"] = _numeric_at(labels, "model_probability", "case_labels")
        off = labels["model_probability"].notna() & ~labels["model_probability"].between(0, 1)
        if off.any():
            raise AnalysisInputError(f"{_where(labels, off, 'case_labels')}: column model_probability "
                                     f"{labels.loc[off, 'model_probability'].iloc[0]:g} is not a probability (0 to 1)")
        labels["model_present"] = _boolean_at(labels, "model_present", "case_labels")
        called = labels["model_probability"] >= design.model_threshold
        clash = labels["model_probability"].notna() & (labels["model_present"].isna()
                                                       | labels["model_present"].ne(called))
        if clash.any():
            i = int(np.flatnonzero(clash.to_numpy())[0])
            raise AnalysisInputError(
                f"{_where(labels, clash, 'case_labels')}: column model_present "
                f"{'empty' if pd.isna(labels['model_present'].iloc[i]) else str(bool(labels['model_present'].iloc[i])).lower()} "
                f"disagrees with model_probability {labels['model_probability'].iloc[i]:g} at the design's model "
                f"threshold {design.model_threshold:g}")
        orphan = labels["model_probability"].isna() & labels["model_present"].notna()
        if orphan.any():
            raise AnalysisInputError(f"{_where(labels, orphan, 'case_labels')}: column model_present without "
                                     "model_probability (the call is the probability at the threshold)")


def _boolean_at(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    """:func:`_boolean`, naming the first row whose value is not true/false/1/0."""
    try:
        return _boolean(frame[column], f"{table}.{column}")
    except AnalysisInputError:
        text = frame[column].astype("string").str.strip().str.lower()
        bad = text.notna() & ~text.isin(["true", "false", "1", "0", "1.0", "0.0"])
        raise AnalysisInputError(f"{_where(frame, bad, table)}: column {column} {frame.loc[bad, column].iloc[0]!r} "
                                 "is not true/false (1/0; missing must be empty)") from None


def _numeric_at(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    """:func:`_numeric`, naming the first row whose value is not a number."""
    try:
        return _numeric(frame[column], f"{table}.{column}")
    except AnalysisInputError:
        text = frame[column].astype("string").str.strip()
        bad = text.notna() & pd.to_numeric(text, errors="coerce").isna()
        raise AnalysisInputError(f"{_where(frame, bad, table)}: column {column} {frame.loc[bad, column].iloc[0]!r} "
                                 "is not a number (missing must be empty)") from None


def _check_findings(frame: pd.DataFrame, table: str, findings: set) -> None:
    unknown = ~frame["finding"].isin(findings)
    if unknown.any():
        raise AnalysisInputError(
            f"{_where(frame, unknown, table)}: column finding {frame.loc[unknown, 'finding'].iloc[0]!r} is not one "
            "of the design's findings (export_meta.json detection.findings)")


def _where(frame: pd.DataFrame, mask: pd.Series, table: str) -> str:
    """Name the first offending row (1-based data row, header not counted) and how many there are."""
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    first = positions[0]
    ident = ""
    for col in ("assignment_id", "reader_id", "case_id"):
        if col in frame.columns and pd.notna(frame[col].iloc[first]):
            ident = f" ({col} {frame[col].iloc[first]})"
            break
    more = f" and {positions.size - 1} more row(s)" if positions.size > 1 else ""
    return f"{table} row {first + 1}{ident}{more}"


def _check_keys(frame: pd.DataFrame, table: str, columns: tuple[str, ...]) -> None:
    for col in columns:
        if col not in frame.columns:
            continue
        empty = frame[col].isna() | frame[col].astype("string").str.strip().eq("")
        if empty.any():
            raise AnalysisInputError(
                f"{_where(frame, empty, table)}: column {col} is empty; every read needs it "
                "(an empty key would drop or merge reads silently)")


def _check_roles(a: pd.DataFrame, readers: pd.DataFrame) -> None:
    dup = readers["reader_id"].duplicated(keep=False)
    if dup.any():
        raise AnalysisInputError(f"{_where(readers, dup, 'readers')}: reader_id listed twice in readers")
    role = a["reader_id"].map(readers.set_index("reader_id")["role"].astype(str))
    unknown = role.isna()
    if unknown.any():
        raise AnalysisInputError(f"{_where(a, unknown, 'assignments')}: reader_id is not in readers")
    mismatch = role.ne(a["reader_role"].astype(str))
    if mismatch.any():
        i = int(np.flatnonzero(mismatch.to_numpy())[0])
        raise AnalysisInputError(
            f"{_where(a, mismatch, 'assignments')}: reader_role {a['reader_role'].iloc[i]!r} disagrees with "
            f"readers.role {role.iloc[i]!r} for reader {a['reader_id'].iloc[i]}")


def _check_compare(a: pd.DataFrame) -> None:
    cmp_ = a["task"].eq("compare")
    both = cmp_ & a["a_source"].notna() & a["b_source"].notna()
    same = both & a["a_source"].eq(a["b_source"])
    if same.any():
        raise AnalysisInputError(f"{_where(a, same, 'assignments')}: a comparison shows two {a.loc[same, 'a_source'].iloc[0]} "
                                 "drafts (a_source == b_source); it needs one model and one reader draft")
    letter = a["preferred"]
    expected = pd.Series(np.where(letter.eq("A"), a["a_source"], np.where(letter.eq("B"), a["b_source"],
                                  np.where(letter.eq("equivalent"), "equivalent", None))), index=a.index)
    stated = a["preferred_source"]
    contradiction = letter.notna() & (stated.isna() | expected.isna() | stated.astype("string").ne(expected.astype("string")))
    if contradiction.any():
        i = int(np.flatnonzero(contradiction.to_numpy())[0])
        raise AnalysisInputError(
            f"{_where(a, contradiction, 'assignments')}: preferred {letter.iloc[i]!r} with a_source "
            f"{a['a_source'].iloc[i]!r}, b_source {a['b_source'].iloc[i]!r} means preferred_source "
            f"{expected.iloc[i]!r}, but the row says {stated.iloc[i]!r}")
    orphan = letter.isna() & stated.notna()
    if orphan.any():
        raise AnalysisInputError(f"{_where(a, orphan, 'assignments')}: preferred_source without preferred (A/B)")


def _check_answers(ans: pd.DataFrame, a: pd.DataFrame, questions: dict) -> None:
    for key, spec in questions.items():
        allowed = {str(v) for v in spec.get("values", [])}
        rows = ans["question_key"].eq(key) & ans["value"].notna()
        if spec.get("kind") == "vas":
            # A mark on a visual-analogue scale: any number between its ends.
            low, high = float(spec.get("min", 0)), float(spec.get("max", 100))
            mark = pd.to_numeric(ans.loc[rows, "value"], errors="coerce")
            bad = rows & ~(mark.between(low, high)).reindex(ans.index, fill_value=True)
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise AnalysisInputError(
                    f"{_where(ans, bad, 'answers')}: value {ans['value'].iloc[i]!r} for {key!r} is outside the "
                    f"question's visual-analogue scale ({low:g} to {high:g})")
            continue
        if not allowed:
            continue
        if spec.get("kind") == "likert":
            # "5.0" and "+5" are the score 5; anything else off the scale's points is refused.
            score = pd.to_numeric(ans.loc[rows, "value"], errors="coerce")
            by_score = {float(v): v for v in allowed}
            ok = score.isin(list(by_score))
            # Back to the scale's own code ("5", "2.5"), whatever way it was written.
            ans.loc[rows & ok.reindex(ans.index, fill_value=False), "value"] = \
                score[ok].map(by_score).to_numpy()
        else:
            ok = ans.loc[rows, "value"].isin(allowed)
        bad = rows & ~ok.reindex(ans.index, fill_value=True)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnalysisInputError(
                f"{_where(ans, bad, 'answers')}: value {ans['value'].iloc[i]!r} for {key!r} is outside the "
                f"question's {'scale' if spec.get('kind') == 'likert' else 'options'} "
                f"({', '.join(sorted(allowed, key=lambda v: (len(v), v)))})")
    pref = ans.loc[ans["question_key"].eq("preference") & ans["value"].notna(), ["assignment_id", "value"]]
    if not pref.empty:
        letters = a.set_index("assignment_id")["preferred"]
        recorded = pref["assignment_id"].map(letters)
        clash = recorded.notna() & recorded.astype("string").ne(pref["value"])
        if clash.any():
            first = pref.loc[clash].iloc[0]
            raise AnalysisInputError(
                f"answers: assignment {first['assignment_id']} answered preference {first['value']!r} but "
                f"assignments.preferred is {letters[first['assignment_id']]!r}")


def _check_vocabulary(frame: pd.DataFrame, column: str, allowed: tuple[str, ...], table: str = "assignments") -> None:
    values = frame[column].dropna().astype(str)
    bad = sorted(set(values.unique()) - set(allowed))
    if bad:
        raise AnalysisInputError(
            f"{table}.{column} has value(s) outside the data dictionary: {', '.join(bad[:5])} "
            f"(allowed: {', '.join(allowed)}; missing must be empty)")


def _numeric(series: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float)
    text = series.astype("string").str.strip()
    sentinel = text.isin(SENTINELS)
    if sentinel.any():
        raise AnalysisInputError(
            f"{name} holds sentinel value(s) such as {text[sentinel].iloc[0]!r}: missing must be empty")
    converted = pd.to_numeric(text, errors="coerce")
    bad = converted.isna() & text.notna() & text.ne("")
    if bad.any():
        raise AnalysisInputError(f"{name} holds non-numeric value(s) such as {text[bad].iloc[0]!r}")
    return converted.astype(float)


def _boolean(series: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    text = series.astype("string").str.strip().str.lower()
    mapped = text.map(mapping, na_action="ignore")
    bad = mapped.isna() & text.notna()
    if bad.any():
        raise AnalysisInputError(f"{name} holds non-boolean value(s) such as {text[bad].iloc[0]!r}")
    return mapped.astype("boolean")
