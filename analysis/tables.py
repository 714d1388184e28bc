"""Load and validate the tidy export tables (data-dictionary.md) that every analysis starts from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TABLE_NAMES = ("assignments", "answers", "drafts", "cases", "readers", "events")
OPTIONAL_TABLES = ("events",)

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
}

#: Statuses whose reads count. ``submitted`` reads have a locked text and a
#: server-side duration; only their feedback answers may still be missing, and
#: answers are used wherever they exist. ``pending``/``ready``/``in_progress``
#: reads have no measurement and never count.
COUNTED_STATUSES = ("submitted", "completed")

TASKS = ("write", "edit", "compare", "rate_reasoning")
DRAFT_SOURCES = ("model", "reader")
PREFERRED_SOURCES = ("model", "reader", "equivalent")
SENTINELS = ("NA", "N/A", "NaN", "nan", "None", "null", "NULL", "-999", "-1")


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
    meta : dict
        Content of ``export_meta.json`` (schema_version, study id, seed, ...).
    """

    assignments: pd.DataFrame
    answers: pd.DataFrame
    drafts: pd.DataFrame
    cases: pd.DataFrame
    readers: pd.DataFrame
    events: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    def counted_reads(self) -> pd.DataFrame:
        """Assignments whose status is in :data:`COUNTED_STATUSES`, with a ``condition`` column.

        ``condition`` is ``task`` for write/compare/rate_reasoning and
        ``edit_<draft_source>`` for edits, so comparisons are found by columns,
        never by arm names.
        """
        a = self.assignments
        reads = a.loc[a["status"].isin(COUNTED_STATUSES)].copy()
        reads["condition"] = np.where(
            reads["task"].eq("edit"), "edit_" + reads["draft_source"].astype("string").fillna("unknown"),
            reads["task"].astype("string"))
        reads["condition"] = reads["condition"].astype(str)
        return reads


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
    """Read an export folder (``assignments.csv`` or ``.parquet``, ... and ``export_meta.json``).

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder written by ``readerstudy export``.

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
    if not folder.is_dir():
        raise AnalysisInputError(f"export folder not found: {folder}")
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
        durations; answers to unknown assignments.
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
    _check_vocabulary(a, "draft_source", DRAFT_SOURCES)
    _check_vocabulary(a, "a_source", DRAFT_SOURCES)
    _check_vocabulary(a, "b_source", DRAFT_SOURCES)
    _check_vocabulary(a, "preferred_source", PREFERRED_SOURCES)
    _check_vocabulary(a, "preferred", ("A", "B", "equivalent"))
    a["duration_s"] = _numeric(a["duration_s"], "assignments.duration_s")
    if (a["duration_s"] < 0).any():
        raise AnalysisInputError("assignments.duration_s has negative durations")
    for col in ("edit_chars", "edit_words", "active_s"):
        if col in a.columns:
            a[col] = _numeric(a[col], f"assignments.{col}")
    if "unchanged" in a.columns:
        a["unchanged"] = _boolean(a["unchanged"], "assignments.unchanged")
    for col in ("shown_text", "final_text"):
        a[col] = a[col].astype("string")

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
    ans["value"] = ans["value"].astype("string")
    readers = tables["readers"]
    readers["reader_id"] = readers["reader_id"].astype(str)
    tables["cases"]["case_id"] = tables["cases"]["case_id"].astype(str)
    return StudyTables(meta=dict(meta), **{n: tables.get(n) for n in TABLE_NAMES})


def _check_vocabulary(frame: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> None:
    values = frame[column].dropna().astype(str)
    bad = sorted(set(values.unique()) - set(allowed))
    if bad:
        raise AnalysisInputError(
            f"assignments.{column} has value(s) outside the data dictionary: {', '.join(bad[:5])} "
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
