"""AI-assisted detection (the detect task): readers' AUC, sensitivity and specificity per finding and over findings, aided against unaided, and the model alone, for random readers and cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats.mrmc import or_hillis
from analysis.tables import COUNTED_STATUSES, DetectionDesign, StudyTables

#: The figures of merit of a detection study: the empirical AUC of the confidence ratings, and the sensitivity and
#: specificity of the binary call.
FOMS = ("auc", "sensitivity", "specificity")
#: The scope name of the study-level figure of merit, the mean over findings of the per-finding FOM.
MEAN_SCOPE = "mean over findings"
UNAIDED = "none"
#: Fewest positive and negative reference cases a finding needs: the jackknife leaves one out, and an AUC needs one
#: of each in what is left.
MIN_CASES = 2
RRRC = "random_readers_random_cases"
FRRC = "fixed_readers_random_cases"


def detection_reads(tables: StudyTables) -> pd.DataFrame:
    """One row per counted detect read x finding, with the case's reference and the model's output.

    Parameters
    ----------
    tables : StudyTables
        Validated tables with ``detection_marks`` and ``case_labels``.

    Returns
    -------
    pandas.DataFrame
        ``assignment_id``, ``reader_id``, ``case_id``, ``arm``, ``ai_shown``, ``condition`` (the ``ai_shown``
        value, or the arm where two arms show the same), ``finding``, ``present`` (the reader's mark),
        ``confidence``, ``call`` (1 when the read counts positive: ``confidence >= reader_threshold``, or the
        presence mark without a threshold), ``reference`` (1/0; missing when not known), ``model_probability`` and
        ``model_call`` (1/0; missing without a probability). Empty when the study has no detect read.
    """
    design = tables.detection
    columns = ["assignment_id", "reader_id", "case_id", "arm", "ai_shown", "condition", "finding", "present",
               "confidence", "call", "reference", "model_probability", "model_call"]
    marks, labels = tables.detection_marks, tables.case_labels
    a = tables.assignments
    if design is None or marks is None or "ai_shown" not in a.columns:
        return pd.DataFrame(columns=columns)
    reads = a.loc[a["task"].eq("detect") & a["status"].isin(COUNTED_STATUSES),
                  ["assignment_id", "reader_id", "case_id", "arm", "ai_shown"]]
    if reads.empty:
        return pd.DataFrame(columns=columns)
    # A condition is what the model showed; two arms showing the same thing stay apart, named by their arm.
    arms_per_shown = reads.groupby("ai_shown")["arm"].nunique()
    shared = reads["ai_shown"].map(arms_per_shown).gt(1)
    reads = reads.assign(condition=np.where(shared, reads["arm"].astype(str), reads["ai_shown"].astype(str)))
    data = reads.merge(marks[["assignment_id", "finding", "present", "confidence"]], on="assignment_id", how="inner")
    if labels is not None:
        data = data.merge(labels[["case_id", "finding", "reference", "model_probability", "model_present"]],
                          on=["case_id", "finding"], how="left")
    else:
        data = data.assign(reference=pd.NA, model_probability=np.nan, model_present=pd.NA)
    if design.reader_threshold is None:
        data["call"] = data["present"].astype(bool).astype(int)
    else:
        data["call"] = (data["confidence"] >= design.reader_threshold).astype(int)
    data["model_call"] = data["model_present"].astype("Int64")
    data["reference"] = data["reference"].astype("Int64")
    return data[columns].reset_index(drop=True)


def finding_estimability(data: pd.DataFrame, findings: tuple[str, ...]) -> list[dict]:
    """Each finding's reference counts over the cases read, and whether an AUC, a sensitivity, a specificity can
    be estimated (at least :data:`MIN_CASES` positive and negative cases), with the reason when not."""
    rows = []
    for finding in findings:
        sub = data.loc[data["finding"].eq(finding)].drop_duplicates("case_id")
        known = sub.loc[sub["reference"].notna()]
        pos, neg = int((known["reference"] == 1).sum()), int((known["reference"] == 0).sum())
        reasons = {}
        for fom, need in (("sensitivity", ("positive", pos)), ("specificity", ("negative", neg))):
            word, n = need
            if n < MIN_CASES:
                reasons[fom] = (f"no {word} reference case" if n == 0 else
                                f"{n} {word} reference case; a {fom} with a case-resampling interval needs at least "
                                f"{MIN_CASES}")
        auc_reasons = [reasons[f] for f in ("sensitivity", "specificity") if f in reasons]
        if auc_reasons:
            reasons["auc"] = "; ".join(auc_reasons)
        rows.append({"finding": finding, "n_cases": int(len(sub)), "n_positive": pos, "n_negative": neg,
                     "n_unknown": int(len(sub) - len(known)), "estimable": "auc" not in reasons,
                     "reasons": reasons})
    return rows


def _levels(data: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Unaided and aided conditions, each sorted."""
    shown = data.drop_duplicates("condition").set_index("condition")["ai_shown"]
    unaided = sorted(c for c, s in shown.items() if s == UNAIDED)
    aided = sorted(c for c, s in shown.items() if s != UNAIDED)
    return unaided, aided


def _fom_frame(data: pd.DataFrame, fom: str) -> tuple[pd.DataFrame, str, str]:
    """The reads an FOM uses, its rating column and its comparator (the model's) column."""
    if fom == "auc":
        return data, "confidence", "model_probability"
    return data.assign(call=data["call"].astype(float), model_call=data["model_call"].astype(float)), "call", "model_call"


def _run(frame: pd.DataFrame, value: str, fom: str, levels: tuple, findings: list[str] | None, **kw):
    """or_hillis of one scope (a finding, or the mean over findings through ``stratum``)."""
    return or_hillis(frame, value, "condition", "reader_id", "case_id", fom=fom, truth="reference", levels=levels,
                     stratum="finding" if findings and len(findings) > 1 else None, **kw)


def _records(frame: pd.DataFrame, **extra) -> list[dict]:
    return [{**extra, **r} for r in frame.to_dict(orient="records")]


def analyse_detection(tables: StudyTables, *, confidence: float = 0.95) -> dict:
    """Readers' detection accuracy by what the AI showed them, aided minus unaided, and the model alone.

    Parameters
    ----------
    tables : StudyTables
        Validated tables; a study without detect reads (or without ``detection_marks``) gives ``{}``.
    confidence : float
        Level of every interval.

    Returns
    -------
    dict
        Empty without detect reads. Else:

        * ``design``: ``findings``, ``conditions`` (one record per condition: ``condition``, ``ai_shown``,
          ``arms``, ``n_readers``, ``n_cases``, ``n_reads``), ``unaided`` and ``aided`` condition names,
          ``confidence_scale`` (min, max, labels), ``model_threshold``, ``reader_threshold``, ``binary_call``
          (in words), ``n_reads_without_marks`` (counted detect reads with no mark), ``n_readers``, ``n_cases``
        * ``findings``: per finding ``n_cases``, ``n_positive``, ``n_negative``, ``n_unknown`` (reference not
          known: left out of that finding), ``estimable`` and ``reasons`` (FOM -> why not estimable)
        * ``averaged_findings``: the findings the mean over findings averages (every finding estimable for the
          AUC); ``averaged_excluded``: the others
        * ``conditions``: ``scope`` (a finding or :data:`MEAN_SCOPE`), ``fom``, ``condition``, ``conclusion``,
          ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``, ``n_readers``, ``n_cases``, ``note``
        * ``differences``: ``scope``, ``fom``, ``first`` (aided), ``second`` (unaided), ``conclusion``,
          ``estimate`` (first - second), ``se``, ``df``, ``ci_low``, ``ci_high``, ``statistic``, ``p_val``,
          ``note``, ``n_readers``, ``n_cases``, ``readers_dropped`` (readers without both conditions, in words)
        * ``readers``: ``scope``, ``fom``, ``condition``, ``reader``, ``estimate``, ``n_cases``, ``se``,
          ``ci_low``, ``ci_high`` (fixed-reader case-sampling interval)
        * ``model``: the model alone on the cases read: ``scope``, ``fom``, ``estimate``, ``se``, ``ci_low``,
          ``ci_high`` (jackknife over cases, normal interval truncated to [0, 1]), ``n_cases``, ``note``
        * ``readers_vs_model``: ``scope``, ``fom``, ``condition``, ``conclusion``, ``estimate`` (readers' mean
          minus the model, each reader on their own cases), ``se``, ``df``, ``ci_low``, ``ci_high``,
          ``statistic``, ``p_val``, ``note``
        * ``not_estimable``: ``scope``, ``fom``, ``analysis``, ``reason``: every figure not given, and why
        * ``or``: the variance components of the mean-over-findings AUC comparison (``component``, ``estimate``,
          ``correlation``) and its ``design``

    Notes
    -----
    For each reader x condition cell and finding the empirical AUC of the confidence ratings against the reference
    (the Mann-Whitney statistic, ties counted one half; Hanley & McNeil 1982), and the share of positive calls
    among positive cases (sensitivity) and of negative calls among negative cases (specificity). The study-level
    FOM is each cell's mean over findings of the per-finding FOM (:func:`analysis.stats.or_hillis` with
    ``stratum``): its jackknife leaves a case out of every finding at once, since the case, not the finding, is
    sampled. Every FOM goes through the Obuchowski-Rockette model with Hillis degrees of freedom (random readers
    and cases), with the fixed-reader and fixed-case conclusions beside. The model alone is the same FOM with the
    model as the only reader; readers against the model use ``versus`` (the readers' FOM minus the model's on the
    same cases, the single-test OR analysis, "1T-RRRC" in Chakraborty 2017). A finding with fewer than
    :data:`MIN_CASES` positive or negative cases is not estimable and is left out of the mean, as stated.

    References
    ----------
    Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the area under a receiver operating
    characteristic (ROC) curve. Radiology, 143(1), 29-36.

    Obuchowski, N. A., & Rockette, H. E. (1995). Communications in Statistics - Simulation and Computation, 24(2),
    285-308. Hillis, S. L. (2007). Statistics in Medicine, 26(3), 596-619. Hillis, S. L., Berbaum, K. S., &
    Metz, C. E. (2008). Academic Radiology, 15(5), 647-661.

    Chakraborty, D. P. (2017). Observer Performance Methods for Diagnostic Imaging. CRC Press.

    Examples
    --------
    >>> from analysis.simulate import simulate_detection_study
    >>> from analysis.detection import analyse_detection
    >>> out = analyse_detection(simulate_detection_study(n_readers=3, n_cases=40, seed=2))
    >>> out["design"]["unaided"], out["design"]["aided"], out["averaged_findings"]
    (['none'], ['labels'], ['Cardiomegaly', 'Edema', 'Pleural Effusion'])
    """
    design: DetectionDesign | None = tables.detection
    data = detection_reads(tables)
    if design is None or data.empty:
        return {}
    a = tables.assignments
    detect_ids = a.loc[a["task"].eq("detect") & a["status"].isin(COUNTED_STATUSES), "assignment_id"]
    findings = [f for f in design.findings if f in set(data["finding"])]
    status = finding_estimability(data, findings)
    averaged = [s["finding"] for s in status if s["estimable"]]
    unaided, aided = _levels(data)
    out: dict = {
        "design": _design_block(data, design, unaided, aided, int((~detect_ids.isin(data["assignment_id"])).sum())),
        "findings": status, "averaged_findings": averaged,
        "averaged_excluded": [{"finding": s["finding"], "reason": s["reasons"]["auc"]} for s in status
                              if not s["estimable"]],
        "conditions": [], "differences": [], "readers": [], "model": [], "readers_vs_model": [],
        "not_estimable": [], "or": {}}
    if tables.case_labels is None:
        out["not_estimable"].append({"scope": "all", "fom": "all", "analysis": "all",
                                     "reason": "the export has no case_labels: no reference standard, no model output"})
    known = data.loc[data["reference"].notna()].assign(reference=lambda d: d["reference"].astype(int))
    # The study-level figure first, then each finding in the design's order.
    scopes = [(MEAN_SCOPE, averaged, {})] if averaged else []
    scopes += [(s["finding"], [s["finding"]], s["reasons"]) for s in status]
    if not averaged:
        out["not_estimable"].append({"scope": MEAN_SCOPE, "fom": "all", "analysis": "all",
                                     "reason": "no finding has 2 positive and 2 negative reference cases"})
    if not unaided or not aided:
        out["not_estimable"].append({"scope": "all", "fom": "all", "analysis": "aided minus unaided",
                                     "reason": "the study has no " + ("unaided (ai_shown none)" if not unaided
                                                                      else "aided") + " condition"})
    for scope, members, reasons in scopes:
        sub = known.loc[known["finding"].isin(members)]
        for fom in FOMS:
            if fom in reasons:
                out["not_estimable"].append({"scope": scope, "fom": fom, "analysis": "all", "reason": reasons[fom]})
                continue
            _scope_fom(out, sub, scope, members, fom, unaided, aided, confidence)
    return out


def _design_block(data, design, unaided, aided, n_without_marks) -> dict:
    conditions = []
    for condition, sub in data.groupby("condition", sort=True):
        conditions.append({"condition": condition, "ai_shown": str(sub["ai_shown"].iloc[0]),
                           "arms": sorted(sub["arm"].astype(str).unique()), "n_readers": int(sub["reader_id"].nunique()),
                           "n_cases": int(sub["case_id"].nunique()), "n_reads": int(sub["assignment_id"].nunique())})
    call = ("the reader's presence mark" if design.reader_threshold is None
            else f"confidence >= {design.reader_threshold:g}")
    return {"findings": list(design.findings), "conditions": conditions, "unaided": unaided, "aided": aided,
            "confidence_scale": {"min": design.confidence_min, "max": design.confidence_max,
                                 "min_label": design.min_label, "max_label": design.max_label},
            "model_threshold": design.model_threshold, "reader_threshold": design.reader_threshold,
            "binary_call": call, "n_reads_without_marks": n_without_marks,
            "n_readers": int(data["reader_id"].nunique()), "n_cases": int(data["case_id"].nunique()),
            "n_reads": int(data["assignment_id"].nunique())}


def _scope_fom(out, sub, scope, members, fom, unaided, aided, confidence) -> None:
    """Every analysis of one scope and FOM: each condition, aided minus unaided, the model, readers vs the model."""
    frame, value, comparator = _fom_frame(sub, fom)
    tag = {"scope": scope, "fom": fom}
    for condition in unaided + aided:
        cell = frame.loc[frame["condition"].eq(condition)]
        try:
            res = _run(cell, value, fom, (condition,), members, confidence=confidence)
        except ValueError as exc:
            out["not_estimable"].append({**tag, "analysis": f"condition {condition}", "reason": str(exc)})
            continue
        size = {"n_readers": res.n_readers, "n_cases": res.n_cases}
        out["conditions"] += _records(res.means, **tag, condition=condition, **size)
        out["readers"] += _records(res.readers.drop(columns="test"), **tag, condition=condition)
        model_ok = cell[comparator].notna().all()
        if model_ok:
            try:
                vs = _run(cell, value, fom, (condition,), members, versus=comparator, null=0.0, confidence=confidence)
                out["readers_vs_model"] += _records(vs.means.drop(columns=["test", "ms_r", "cov2", "null"]), **tag,
                                                    condition=condition, **size)
            except ValueError as exc:
                out["not_estimable"].append({**tag, "analysis": f"readers vs model, {condition}", "reason": str(exc)})
    for first in aided:
        for second in unaided:
            pair = frame.loc[frame["condition"].isin((first, second))]
            try:
                res = _run(pair, value, fom, (first, second), members, confidence=confidence)
            except ValueError as exc:
                out["not_estimable"].append({**tag, "analysis": f"{first} - {second}", "reason": str(exc)})
                continue
            dropped = f"{res.n_readers_dropped} reader(s) without both conditions left out" if res.n_readers_dropped else ""
            out["differences"] += _records(res.differences, **tag, n_readers=res.n_readers, n_cases=res.n_cases,
                                           readers_dropped=dropped)
            if scope == MEAN_SCOPE and fom == "auc" and not out["or"]:
                out["or"] = {"first": first, "second": second, "design": res.design,
                             "variance_components": res.variance_components.to_dict(orient="records")}
    _model_alone(out, frame, comparator, fom, members, tag, confidence)


def _model_alone(out, frame, comparator, fom, members, tag, confidence) -> None:
    """The model as the only reader of every case read (one row per case and finding)."""
    cases = frame.drop_duplicates(["case_id", "finding"])
    if cases[comparator].isna().any():
        n = int(cases.loc[cases[comparator].isna(), "case_id"].nunique())
        out["not_estimable"].append({**tag, "analysis": "model alone",
                                     "reason": f"{n} case(s) without a model probability"})
        return
    model = cases.assign(reader_id="model", condition="model")
    try:
        res = _run(model, comparator, fom, ("model",), members, confidence=confidence)
    except ValueError as exc:
        out["not_estimable"].append({**tag, "analysis": "model alone", "reason": str(exc)})
        return
    row = res.readers.iloc[0]
    note = "" if row["se"] > 0 else "no case-sampling variation: no interval"
    out["model"].append({**tag, "estimate": float(row["estimate"]), "se": float(row["se"]),
                         "ci_low": float(row["ci_low"]) if note == "" else float("nan"),
                         "ci_high": float(row["ci_high"]) if note == "" else float("nan"),
                         "n_cases": int(row["n_cases"]), "note": note})
