"""The reader-study endpoints as per-reader figures of merit, analysed with Obuchowski-Rockette/Hillis (and the mixed model for times)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.defaults import DEFAULT_SEED
from analysis.plan import Endpoint
from analysis.stats.mixed import DEFAULT_MAX_READS, mixed_model_ratio
from analysis.stats.mrmc import CONCLUSION_LABELS, CONCLUSIONS, or_hillis

LIKERT_BOUNDS = (-10.0, 10.0)
SHARE_BOUNDS = (0.0, 1.0)
COUNT_BOUNDS = (0.0, float("inf"))
PREFERENCE_TESTS = ("model_preferred", "reader_preferred")


def _clean_float(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return v
    return v if np.isfinite(v) else None


def or_summary(res, *, ratio: bool = False, n_reads: int | None = None, label: str = "") -> dict:
    """A JSON-friendly digest of an :class:`~analysis.stats.mrmc.ORResult`.

    With ``ratio`` the FOM is a mean log duration: differences and means are
    exponentiated (time ratio, geometric mean in seconds) and ``log_*`` keep the
    log-scale numbers.
    """
    f = np.exp if ratio else (lambda v: v)
    two = len(res.levels) == 2
    conclusions, means = {}, {}
    for c in CONCLUSIONS:
        if two:
            row = res.differences.set_index("conclusion").loc[c]
            entry = {"estimate": f(row["estimate"]), "ci_low": f(row["ci_low"]), "ci_high": f(row["ci_high"]),
                     "se": row["se"], "df": row["df"], "statistic": row["statistic"], "p_val": row["p_val"],
                     "note": row["note"], "label": CONCLUSION_LABELS[c]}
            if ratio:
                entry.update(log_estimate=row["estimate"], log_ci_low=row["ci_low"], log_ci_high=row["ci_high"])
        else:
            row = res.means.set_index("conclusion").loc[c]
            entry = {"estimate": f(row["estimate"]), "ci_low": f(row["ci_low"]), "ci_high": f(row["ci_high"]),
                     "se": row["se"], "df": row["df"], "statistic": row.get("statistic", np.nan),
                     "p_val": row.get("p_val", np.nan), "null": row.get("null", np.nan), "note": row["note"],
                     "label": CONCLUSION_LABELS[c]}
        conclusions[c] = {k: _clean_float(v) if k not in ("note", "label") else v for k, v in entry.items()}
    for test in res.levels:
        rows = res.means.loc[res.means["test"] == test].set_index("conclusion")
        means[test] = {c: {"estimate": _clean_float(f(rows.loc[c, "estimate"])),
                           "ci_low": _clean_float(f(rows.loc[c, "ci_low"])),
                           "ci_high": _clean_float(f(rows.loc[c, "ci_high"])),
                           "df": _clean_float(rows.loc[c, "df"]), "note": rows.loc[c, "note"]}
                       for c in CONCLUSIONS}
    readers = res.readers.copy()
    for col in ("estimate", "ci_low", "ci_high"):
        readers[col] = f(readers[col])
    rdiff = res.reader_differences.copy()
    for col in ("estimate", "ci_low", "ci_high"):
        rdiff[col] = f(rdiff[col])
    tests = {}
    if two:
        for _, row in res.tests.iterrows():
            tests[row["conclusion"]] = {"statistic": row["statistic"], "value": _clean_float(row["value"]),
                                        "df1": _clean_float(row["df1"]), "df2": _clean_float(row["df2"]),
                                        "p_val": _clean_float(row["p_val"]),
                                        "denominator": _clean_float(row["denominator"]), "note": row["note"]}
    return {
        "label": label, "fom": res.fom, "scale": "ratio" if ratio else ("difference" if two else "mean"),
        "levels": list(res.levels), "design": res.design, "design_description": res.design_description,
        "n_readers": res.n_readers, "n_readers_dropped": res.n_readers_dropped, "n_cases": res.n_cases,
        "n_reads": n_reads, "conclusions": conclusions, "means": means, "global_test": tests,
        "variance_components": {r.component: _clean_float(r.estimate) for r in res.variance_components.itertuples()},
        "readers": readers.to_dict(orient="records"), "reader_differences": rdiff.to_dict(orient="records"),
        "notes": list(res.notes),
    }


def or_digest(frame: pd.DataFrame, levels: tuple, *, ratio: bool = False, null: float | None = None,
              bounds: tuple[float, float] | None = None, label: str = "", test: str = "condition") -> dict:
    """The OR/Hillis digest (:func:`or_summary`) of one exploratory comparison, or ``{'error', 'label'}`` when the
    data cannot support it (one reader, no reader in every condition, no variation).

    ``frame`` has one row per read with ``value``, ``reader_id``, ``case_id`` and the ``test`` column; ``levels``
    are the conditions (differences are first - second), ``bounds`` the FOM's range (intervals truncated to it).
    """
    try:
        res = or_hillis(frame, "value", test, "reader_id", "case_id", levels=levels, null=null, bounds=bounds)
    except ValueError as exc:
        return {"error": str(exc), "label": label}
    n = int(frame[test].isin(levels).sum())
    return or_summary(res, ratio=ratio, n_reads=n, label=label)


def endpoint_frame(endpoint: Endpoint, reads: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """The reads an endpoint uses: one row per read with ``value``, ``test``, ``reader_id``, ``case_id``.

    Parameters
    ----------
    endpoint : Endpoint
    reads : pandas.DataFrame
        Counted reads with ``condition`` (zero durations already excluded from timing).
    answers : pandas.DataFrame
        Answers joined to their reads.

    Returns
    -------
    pandas.DataFrame
        ``value`` is log(duration) for ``time_ratio``, the 0/1 indicator for shares,
        the score for ``likert_mean`` and the draft's count for ``significant_errors``; ``test`` is the condition (for a
        preference, ``model_preferred`` / ``reader_preferred`` on the same reads).
    """
    conds = [c for c in (endpoint.reference, endpoint.comparison, endpoint.condition) if c]
    cols = ["value", "test", "reader_id", "case_id"]
    if endpoint.endpoint == "time_ratio":
        sub = reads.loc[reads["reader_role"].eq(endpoint.role) & reads["condition"].isin(conds)]
        sub = sub.loc[sub["duration_s"].notna() & (sub["duration_s"] > 0)]
        return pd.DataFrame({"value": np.log(sub["duration_s"].to_numpy(dtype=float)), "test": sub["condition"],
                             "reader_id": sub["reader_id"], "case_id": sub["case_id"]})[cols]
    if endpoint.endpoint == "significant_errors":
        # The per-read count run_analysis joins to the reads (analysis.draft_errors.errors_per_read); reads
        # that annotated nothing have none.
        if "n_significant_errors" not in reads.columns:
            return pd.DataFrame(columns=cols)
        sub = reads.loc[reads["reader_role"].eq(endpoint.role) & reads["condition"].isin(conds)
                        & reads["n_significant_errors"].notna()]
        return pd.DataFrame({"value": sub["n_significant_errors"].to_numpy(dtype=float), "test": sub["condition"],
                             "reader_id": sub["reader_id"], "case_id": sub["case_id"]})[cols]
    if endpoint.endpoint == "preference_share":
        sub = reads.loc[reads["reader_role"].eq(endpoint.role) & reads["task"].eq("compare")
                        & reads["preferred_source"].notna()]
        parts = [pd.DataFrame({"value": sub["preferred_source"].eq(src).astype(float).to_numpy(), "test": name,
                               "reader_id": sub["reader_id"].to_numpy(), "case_id": sub["case_id"].to_numpy()})
                 for name, src in zip(PREFERENCE_TESTS, ("model", "reader"))]
        return pd.concat(parts, ignore_index=True)[cols]
    key = "edit_reason" if endpoint.endpoint == "no_edit_share" else endpoint.item
    sub = answers.loc[answers["question_key"].eq(key) & answers["reader_role"].eq(endpoint.role)
                      & answers["condition"].isin(conds) & answers["value"].notna()]
    if endpoint.endpoint == "no_edit_share":
        value = sub["value"].eq("none").astype(float)
    else:
        value = pd.to_numeric(sub["value"], errors="coerce")
    return pd.DataFrame({"value": value.to_numpy(dtype=float), "test": sub["condition"].to_numpy(),
                         "reader_id": sub["reader_id"].to_numpy(), "case_id": sub["case_id"].to_numpy()})[cols]


def _levels(endpoint: Endpoint, scale=None):
    if endpoint.endpoint == "preference_share":
        return PREFERENCE_TESTS, None
    if endpoint.reference:
        return (endpoint.comparison, endpoint.reference), None
    if endpoint.null is None and endpoint.endpoint == "likert_mean":
        # A single rating item is tested against its scale's neutral point (0 on CheXOne's +10..-10 scale).
        return (endpoint.condition,), scale.neutral if scale is not None and scale.neutral is not None else 0.0
    return (endpoint.condition,), endpoint.null


def detection_frame(endpoint: Endpoint, reads: pd.DataFrame, detection: pd.DataFrame | None) -> tuple[pd.DataFrame, list]:
    """The marks a ``detection_auc`` endpoint ranks, and the findings it averages.

    One row per mark of the role's detect reads in the two conditions (``test``: ``detect_<ai_shown>``, as the design
    names them) with a known reference, on the findings with at least :data:`analysis.detection.MIN_CASES` positive
    and negative reference cases among the cases read (the detection block's own rule,
    :func:`analysis.detection.finding_estimability`).
    """
    from analysis.detection import finding_estimability

    cols = ["value", "truth", "finding", "test", "reader_id", "case_id"]
    if detection is None or detection.empty:
        return pd.DataFrame(columns=cols), []
    role = reads.loc[reads["reader_role"].eq(endpoint.role), "assignment_id"].astype(str)
    sub = detection.loc[detection["assignment_id"].astype(str).isin(set(role)) & detection["reference"].notna()]
    sub = sub.assign(test="detect_" + sub["ai_shown"].astype(str))
    sub = sub.loc[sub["test"].isin([endpoint.reference, endpoint.comparison])]
    findings = list(dict.fromkeys(sub["finding"]))
    estimable = [row["finding"] for row in finding_estimability(sub, tuple(findings)) if row["estimable"]]
    sub = sub.loc[sub["finding"].isin(estimable)]
    return pd.DataFrame({"value": sub["confidence"].to_numpy(dtype=float), "truth": sub["reference"].to_numpy(dtype=int),
                         "finding": sub["finding"].to_numpy(), "test": sub["test"].to_numpy(),
                         "reader_id": sub["reader_id"].to_numpy(), "case_id": sub["case_id"].to_numpy()})[cols], estimable


def _detection_auc(endpoint: Endpoint, out: dict, reads: pd.DataFrame, detection: pd.DataFrame | None,
                   conclusion: str, confidence: float) -> dict:
    """A ``detection_auc`` endpoint: comparison minus reference of the readers' empirical AUC averaged over the
    findings (OR with Hillis df; a case is left out of every finding at once)."""
    from analysis.detection import MIN_CASES

    frame, findings = detection_frame(endpoint, reads, detection)
    out.update(scale="difference", n_reads=int(frame[["reader_id", "case_id", "test"]].drop_duplicates().shape[0]),
               findings=findings)
    levels = (endpoint.comparison, endpoint.reference)
    missing = [lv for lv in levels if not frame["test"].eq(lv).any()]
    if frame.empty or missing:
        out["error"] = (f"no {endpoint.role} detect marks with a known reference in condition(s) "
                        f"{', '.join(missing or levels)} on a finding with {MIN_CASES} positive and negative cases: the "
                        "endpoint cannot be estimated from this export")
        return out
    try:
        res = or_hillis(frame, "value", "test", "reader_id", "case_id", fom="auc", truth="truth", levels=levels,
                        stratum="finding" if len(findings) > 1 else None, confidence=confidence)
    except ValueError as exc:
        out["error"] = str(exc)
        return out
    return _concluded(out, res, or_summary(res, n_reads=out["n_reads"], label=endpoint.describe()), conclusion)


def analyse_endpoint(endpoint: Endpoint, reads: pd.DataFrame, answers: pd.DataFrame, *, conclusion: str,
                     confidence: float = 0.95, seed: int = DEFAULT_SEED,
                     mixed_max_reads: int | None = DEFAULT_MAX_READS, mixed_result: dict | None = None,
                     scale=None, detection: pd.DataFrame | None = None) -> dict:
    """Analyse one pre-specified endpoint by its method; never raises for data that cannot support it.

    Parameters
    ----------
    endpoint : Endpoint
    reads, answers : pandas.DataFrame
        As for :func:`endpoint_frame`.
    conclusion : str
        The OR conclusion the plan names (``random_readers_random_cases``, ...).
    confidence, seed, mixed_max_reads
        Interval level; seed and size limit of the mixed model's case subsample.
    mixed_result : dict, optional
        A :func:`~analysis.stats.mixed_model_ratio` result already computed for the
        same role and conditions (the per-read duration block fits it too).
    scale : analysis.tables.ItemScale, optional
        The scoring of a ``likert_mean``'s item: its ends bound the intervals, its neutral
        point is the null of a single-condition test (default: CheXOne's +10..-10, neutral 0).
    detection : pandas.DataFrame, optional
        The detect reads' marks (:func:`analysis.detection.detection_reads`), for a ``detection_auc``.

    Returns
    -------
    dict
        ``name``, ``description``, ``endpoint``, ``role``, ``method``, ``conclusion``,
        ``scale`` (``ratio``, ``difference`` or ``mean``), ``estimate``, ``ci_low``,
        ``ci_high``, ``df``, ``statistic``, ``p_val``, ``n_readers``, ``n_cases``,
        ``n_reads``, the full ``or`` digest (:func:`or_summary`) or ``mixed_model``
        result, and ``error`` (why there is no estimate) when the data cannot
        support the endpoint: no reads, one reader, no variation.
    """
    out = {"name": endpoint.name, "description": endpoint.describe(), "endpoint": endpoint.endpoint,
           "role": endpoint.role, "method": endpoint.method, "conclusion": conclusion,
           "reference": endpoint.reference, "comparison": endpoint.comparison, "condition": endpoint.condition,
           "item": endpoint.item, "null": endpoint.null, "error": None}
    if endpoint.endpoint == "detection_auc":
        return _detection_auc(endpoint, out, reads, detection, conclusion, confidence)
    frame = endpoint_frame(endpoint, reads, answers)
    levels, null = _levels(endpoint, scale)
    if endpoint.endpoint == "likert_mean" and len(levels) == 1:
        out["null"] = null
    ratio = endpoint.endpoint == "time_ratio"
    out["scale"] = "ratio" if ratio else ("difference" if len(levels) == 2 else "mean")
    out["n_reads"] = int(len(frame) // (2 if endpoint.endpoint == "preference_share" else 1))
    missing = [lv for lv in levels if not frame["test"].eq(lv).any()]
    if frame.empty or (missing and endpoint.endpoint != "preference_share"):
        out["error"] = (f"no {endpoint.role} reads in condition(s) {', '.join(missing or levels)}: "
                        "the endpoint cannot be estimated from this export")
        return out
    if endpoint.method == "mixed_model":
        sub = reads.loc[reads["reader_role"].eq(endpoint.role) & reads["duration_s"].gt(0)]
        mm = mixed_result
        if mm is None or confidence != 0.95:
            try:
                mm = mixed_model_ratio(sub, "duration_s", "condition", (endpoint.reference, endpoint.comparison),
                                       max_reads=mixed_max_reads, seed=seed, confidence=confidence)
            except ValueError as exc:
                mm = {"error": str(exc)}
        if "error" in mm:
            out["error"] = mm["error"]
            return out
        out.update(estimate=mm["ratio"], ci_low=mm["ci_low"], ci_high=mm["ci_high"], df=mm["df"],
                   statistic=mm["t"], p_val=mm["p_val"], n_readers=mm["n_readers"], n_cases=mm["n_cases"],
                   conclusion="random_readers_random_cases", mixed_model=mm)
        return out
    try:
        res = or_hillis(frame, "value", "test", "reader_id", "case_id", levels=levels, null=null,
                        bounds=None if ratio else COUNT_BOUNDS if endpoint.endpoint == "significant_errors" else
                        (SHARE_BOUNDS if endpoint.endpoint != "likert_mean" else
                                                   (scale.low, scale.high) if scale is not None and scale.low is not None
                                                   else LIKERT_BOUNDS),
                        confidence=confidence)
    except ValueError as exc:
        out["error"] = str(exc)
        return out
    return _concluded(out, res, or_summary(res, ratio=ratio, n_reads=out["n_reads"], label=endpoint.describe()),
                      conclusion)


def _concluded(out: dict, res, digest: dict, conclusion: str) -> dict:
    """An endpoint's result from its OR analysis: the plan's conclusion's estimate, interval and test, the digest
    beside; a missing p-value's reason becomes the endpoint's error."""
    chosen = digest["conclusions"][conclusion]
    out.update(estimate=chosen["estimate"], ci_low=chosen["ci_low"], ci_high=chosen["ci_high"], df=chosen["df"],
               statistic=chosen["statistic"], p_val=chosen["p_val"], n_readers=res.n_readers,
               n_cases=res.n_cases, note=chosen["note"], **{"or": digest})
    if chosen["p_val"] is None and chosen["note"]:
        out["error"] = chosen["note"]
    return out
