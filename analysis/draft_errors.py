"""Errors of report drafts as readers annotate them (the ReXVal taxonomy): the categories, per-draft counts, and
the comparison of model and reader drafts on them."""

from __future__ import annotations

import pandas as pd

#: The six ReXVal error categories (Yu et al. 2023, Patterns 4(9):100802), as the export codes them, with the
#: label a reader sees. ``not_an_error`` marks an edit of wording or style.
ERROR_CATEGORIES = {
    "false_finding": "False prediction of finding",
    "omitted_finding": "Omission of finding",
    "wrong_location": "Incorrect location or position of finding",
    "wrong_severity": "Incorrect severity of finding",
    "false_comparison": "Mention of comparison that is not present",
    "omitted_comparison": "Omission of comparison describing a change",
}
NOT_AN_ERROR = "not_an_error"
NOT_AN_ERROR_LABEL = "Not an error (wording or style)"
ANNOTATION_CHOICES = {**ERROR_CATEGORIES, NOT_AN_ERROR: NOT_AN_ERROR_LABEL}
SIGNIFICANCE_LABELS = {True: "Clinically significant", False: "Not clinically significant"}
#: The columns of the export's ``draft_errors`` table (docs/export.md).
DRAFT_ERROR_COLUMNS = ["assignment_id", "draft_id", "segment", "edit_kind", "draft_text", "final_text", "category",
                       "significant", "annotated_at"]
#: The columns of ``draft_error_counts``: one row per annotated read, category and significance (zeros included).
COUNT_COLUMNS = ["assignment_id", "draft_id", "category", "significant", "n_errors"]


def _annotated_reads(assignments: pd.DataFrame) -> pd.DataFrame:
    if "errors_annotated" not in assignments.columns:
        return assignments.iloc[0:0]
    flag = assignments["errors_annotated"].astype("boolean").fillna(False).astype(bool)
    return assignments.loc[flag]


def draft_error_counts(assignments: pd.DataFrame, draft_errors: pd.DataFrame | None) -> pd.DataFrame:
    """The errors each annotated read found in its draft, by category and clinical significance.

    Parameters
    ----------
    assignments : pandas.DataFrame
        The export's ``assignments`` (``assignment_id``, ``draft_id``, ``errors_annotated``); only reads with
        ``errors_annotated`` true count, so a draft left unchanged counts zero errors rather than going missing.
    draft_errors : pandas.DataFrame or None
        The export's ``draft_errors``: one row per annotated edit (:data:`DRAFT_ERROR_COLUMNS`).

    Returns
    -------
    pandas.DataFrame
        :data:`COUNT_COLUMNS`: one row per annotated read x category (the six of :data:`ERROR_CATEGORIES`) x
        significance (True, False), ``n_errors`` the number of its edits so marked (0 included). Edits marked
        ``not_an_error`` count in none. The one definition: the export writes it as ``draft_error_counts`` and
        the analysis counts with it.

    Examples
    --------
    >>> a = pd.DataFrame({"assignment_id": [1], "draft_id": [7], "errors_annotated": [True]})
    >>> e = pd.DataFrame({"assignment_id": [1], "category": ["wrong_severity"], "significant": [True]})
    >>> draft_error_counts(a, e).query("n_errors > 0")[["category", "significant", "n_errors"]].values.tolist()
    [['wrong_severity', True, 1]]
    """
    reads = _annotated_reads(assignments)[["assignment_id", "draft_id"]]
    grid = pd.MultiIndex.from_product([list(ERROR_CATEGORIES), [True, False]], names=["category", "significant"])
    full = reads.merge(grid.to_frame(index=False), how="cross")
    if draft_errors is None or draft_errors.empty:
        full["n_errors"] = 0
    else:
        errors = draft_errors.loc[draft_errors["category"].isin(list(ERROR_CATEGORIES))].copy()
        errors["significant"] = errors["significant"].astype("boolean").astype(bool)
        n = errors.groupby(["assignment_id", "category", "significant"]).size().rename("n_errors").reset_index()
        n["assignment_id"] = n["assignment_id"].astype(full["assignment_id"].dtype)
        full = full.merge(n, on=["assignment_id", "category", "significant"], how="left")
        full["n_errors"] = full["n_errors"].fillna(0).astype(int)
    return full[COUNT_COLUMNS].reset_index(drop=True)


def errors_per_read(assignments: pd.DataFrame, draft_errors: pd.DataFrame | None) -> pd.DataFrame:
    """One row per annotated read: ``assignment_id``, ``n_errors`` (every error), ``n_significant``,
    ``n_not_significant``, and ``sig_<category>`` (its clinically significant errors of each category), from
    :func:`draft_error_counts`."""
    counts = draft_error_counts(assignments, draft_errors)
    columns = ["assignment_id", "n_errors", "n_significant", "n_not_significant",
               *[f"sig_{c}" for c in ERROR_CATEGORIES]]
    if counts.empty:
        return pd.DataFrame(columns=columns)
    total = counts.groupby("assignment_id")["n_errors"].sum().rename("n_errors")
    by_sig = counts.pivot_table(index="assignment_id", columns="significant", values="n_errors", aggfunc="sum")
    sig = counts.loc[counts["significant"]].pivot_table(index="assignment_id", columns="category",
                                                        values="n_errors", aggfunc="sum")
    out = pd.concat([total, by_sig.get(True, 0).rename("n_significant"),
                     by_sig.get(False, 0).rename("n_not_significant"),
                     sig.reindex(columns=list(ERROR_CATEGORIES), fill_value=0).add_prefix("sig_")], axis=1)
    return out.reset_index()[columns]
