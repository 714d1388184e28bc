"""Errors of report drafts as readers annotate them (ReXVal): the edits, the categories, counts, model vs reader drafts."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

# pandas only where a table is counted: the reader app imports the edits and the categories, and starts without it.
if TYPE_CHECKING:
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


# --- The draft-to-final diff as the edits a reader annotates ---------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def report_sentences(text) -> list[str]:
    """A report's sentences: split after ``.``, ``!``, ``?`` or ``;`` followed by white space, and at line breaks;
    each sentence whitespace-normalised, empty ones dropped.

    Examples
    --------
    >>> from analysis.draft_errors import report_sentences
    >>> report_sentences("Heart normal.  No effusion.\\nLungs clear")
    ['Heart normal.', 'No effusion.', 'Lungs clear']
    """
    if text is None or not isinstance(text, str):  # missing (None, NaN, pd.NA) counts as ""
        return []
    return [s for s in (" ".join(part.split()) for part in _SENTENCE_END.split(str(text))) if s]


def _matcher(a: list[str], b: list[str]) -> difflib.SequenceMatcher:
    return difflib.SequenceMatcher(None, a, b, autojunk=False)


def edit_segments(shown, final) -> list[dict]:
    """The edits that turned a draft into the reader's final text, in text order: the units a reader annotates.

    Parameters
    ----------
    shown, final : str or None
        The draft as shown and the submitted text; missing counts as "".

    Returns
    -------
    list of dict
        One dict per edit, numbered from 1 in text order: ``segment`` (the number), ``kind`` (``replace``,
        ``delete``: draft text removed, ``insert``: text added), ``draft`` (the draft's words the edit removed or
        replaced, "" for an insert), ``final`` (the words put in their place, "" for a delete) and ``context``
        (the draft sentence a phrase edit falls in, "" for whole-sentence edits).

    Notes
    -----
    Two levels of :class:`difflib.SequenceMatcher` (``autojunk`` off): first on the texts' sentences
    (:func:`report_sentences`), so a deleted or added sentence is one edit; then, where a run of changed
    sentences is matched one-to-one (as many on each side), on the words of each changed pair, so "left" ->
    "right" in a sentence is one phrase edit, not the whole sentence. Runs of unequal length (a sentence split
    or merged) stay one edit. White space never makes an edit. The one definition: the case page numbers the
    edits it asks about with it, the service checks annotations against it and the export and the analysis
    read the same numbers.

    References
    ----------
    Ratcliff, J. W., & Metzener, D. E. (1988). Pattern matching: the gestalt approach. Dr. Dobb's Journal, 13(7),
    46 (the matching of :mod:`difflib`).

    Examples
    --------
    >>> from analysis.draft_errors import edit_segments
    >>> [(s["kind"], s["draft"], s["final"]) for s in edit_segments(
    ...     "Small left effusion. No pneumothorax.", "Small right effusion. No pneumothorax. Heart normal.")]
    [('replace', 'left', 'right'), ('insert', '', 'Heart normal.')]
    """
    draft_sentences, final_sentences = report_sentences(shown), report_sentences(final)
    edits: list[tuple[str, str, str, str]] = []
    for tag, i1, i2, j1, j2 in _matcher(draft_sentences, final_sentences).get_opcodes():
        if tag == "equal":
            continue
        removed, added = draft_sentences[i1:i2], final_sentences[j1:j2]
        if tag == "replace" and len(removed) == len(added):
            for before, after in zip(removed, added):
                words_a, words_b = before.split(), after.split()
                for wtag, a1, a2, b1, b2 in _matcher(words_a, words_b).get_opcodes():
                    if wtag != "equal":
                        edits.append((wtag, " ".join(words_a[a1:a2]), " ".join(words_b[b1:b2]), before))
        else:
            edits.append((tag, " ".join(removed), " ".join(added), ""))
    return [{"segment": n, "kind": kind, "draft": draft, "final": final_words, "context": context}
            for n, (kind, draft, final_words, context) in enumerate(edits, 1)]


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
    >>> import pandas as pd
    >>> a = pd.DataFrame({"assignment_id": [1], "draft_id": [7], "errors_annotated": [True]})
    >>> e = pd.DataFrame({"assignment_id": [1], "category": ["wrong_severity"], "significant": [True]})
    >>> draft_error_counts(a, e).query("n_errors > 0")[["category", "significant", "n_errors"]].values.tolist()
    [['wrong_severity', True, 1]]
    """
    import pandas as pd

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
    import pandas as pd

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


REXVAL_REFERENCE = ("Yu F, Endo M, Krishnan R, et al. Evaluating progress in automatic chest X-ray radiology report "
                    "generation. Patterns 2023;4(9):100802. doi:10.1016/j.patter.2023.100802")
#: The per-read measures the comparison analyses, each a count per annotated draft.
MEASURES = {"n_significant": "clinically significant errors per draft", "n_errors": "errors per draft"}
EDIT_CONDITIONS = ("edit_model", "edit_reader")


def _time_band(n: int) -> str:
    return "0" if n == 0 else "1" if n == 1 else "2+"


def analyse_draft_errors(reads: pd.DataFrame, draft_errors: pd.DataFrame | None,
                         answers: pd.DataFrame | None = None) -> dict:
    """Model drafts against reader drafts on the errors readers annotated in them (ReXVal).

    Parameters
    ----------
    reads : pandas.DataFrame
        Counted reads (``StudyTables.counted_reads``) with ``assignment_id``, ``draft_id``, ``reader_id``,
        ``reader_role``, ``case_id``, ``condition`` (``edit_model`` / ``edit_reader``), ``duration_s`` and
        ``errors_annotated``.
    draft_errors : pandas.DataFrame or None
        The export's ``draft_errors``.
    answers : pandas.DataFrame, optional
        The export's ``answers`` (``assignment_id``, ``question_key``, ``value``): the ``edit_reason`` answers.

    Returns
    -------
    dict
        Empty when no read annotated errors. Else ``n_reads``; ``by_source`` (rows per role and condition: reads,
        mean errors and significant errors per draft, share of drafts with a significant error); ``comparisons``
        (rows per role and measure: the difference model - reader of the per-draft mean, random readers and
        cases, with its CI, df and p); ``or`` (the full OR/Hillis digests); ``by_category`` (errors per draft by
        category, significance and condition); ``by_edit_reason`` (reads and mean significant errors by the
        reader's edit reason); ``by_time`` (reads and median reading time by the draft's number of significant
        errors, 0, 1, 2+).

    Notes
    -----
    Each read's count is a per-read value like any other, so the comparison is the Obuchowski-Rockette analysis
    with Hillis degrees of freedom of the per-reader mean count (:func:`analysis.endpoints.or_digest`): the same
    random-reader, random-case method as every per-read endpoint of the report, with its intervals truncated at
    zero. The edit reasons and times are descriptive.

    References
    ----------
    Yu F, et al. (2023). Evaluating progress in automatic chest X-ray radiology report generation. Patterns,
    4(9), 100802 (the ReXVal error taxonomy).
    """
    from analysis.endpoints import or_digest

    per_read = errors_per_read(reads, draft_errors)
    if per_read.empty:
        return {}
    per_read["assignment_id"] = per_read["assignment_id"].astype(str)
    base = reads.assign(assignment_id=reads["assignment_id"].astype(str))
    data = base.merge(per_read, on="assignment_id", how="inner")
    data = data.loc[data["condition"].isin(EDIT_CONDITIONS)]
    out: dict = {"n_reads": int(len(data)), "categories": dict(ERROR_CATEGORIES), "reference": REXVAL_REFERENCE,
                 "by_source": [], "comparisons": [], "or": {}, "by_category": [], "by_edit_reason": [],
                 "by_time": []}
    for (role, condition), sub in data.groupby(["reader_role", "condition"], sort=True):
        out["by_source"].append({
            "role": role, "condition": condition, "n_reads": int(len(sub)),
            "n_readers": int(sub["reader_id"].nunique()), "errors_per_draft": float(sub["n_errors"].mean()),
            "significant_per_draft": float(sub["n_significant"].mean()),
            "share_with_significant": float((sub["n_significant"] > 0).mean())})
        for category in ERROR_CATEGORIES:
            out["by_category"].append({
                "role": role, "condition": condition, "category": category,
                "significant_per_draft": float(sub[f"sig_{category}"].mean()),
                "n_significant": int(sub[f"sig_{category}"].sum())})
        sub_time = sub.loc[sub["duration_s"].notna()]
        for band, group in sub_time.groupby(sub_time["n_significant"].map(_time_band), sort=True):
            out["by_time"].append({"role": role, "condition": condition, "significant_errors": band,
                                   "n_reads": int(len(group)),
                                   "median_duration_s": float(group["duration_s"].median())})
    if answers is not None and not answers.empty:
        reasons = answers.loc[answers["question_key"].eq("edit_reason"), ["assignment_id", "value"]]
        reasons = reasons.assign(assignment_id=reasons["assignment_id"].astype(str))
        joined = data.merge(reasons, on="assignment_id", how="inner")
        for (role, condition, reason), group in joined.groupby(["reader_role", "condition", "value"], sort=True):
            out["by_edit_reason"].append({
                "role": role, "condition": condition, "edit_reason": reason, "n_reads": int(len(group)),
                "significant_per_draft": float(group["n_significant"].mean()),
                "errors_per_draft": float(group["n_errors"].mean())})
    for role, sub in data.groupby("reader_role", sort=True):
        if set(sub["condition"]) != set(EDIT_CONDITIONS):
            continue
        for measure, label in MEASURES.items():
            frame = sub[["reader_id", "case_id", "condition"]].assign(value=sub[measure].astype(float))
            digest = or_digest(frame, EDIT_CONDITIONS, bounds=(0.0, float("inf")),
                               label=f"{role}: {label}, model - reader drafts")
            out["or"].setdefault(role, {})[measure] = digest
            row = {"role": role, "measure": label, "comparison": "edit_model - edit_reader"}
            if "error" in digest:
                row["note"] = digest["error"]
            else:
                c = digest["conclusions"]["random_readers_random_cases"]
                row.update(estimate=c["estimate"], ci_low=c["ci_low"], ci_high=c["ci_high"], df=c["df"],
                           p_val=c["p_val"], n_readers=digest["n_readers"], n_cases=digest["n_cases"],
                           n_reads=digest["n_reads"], note=c["note"])
            out["comparisons"].append(row)
    return out
