"""Plotly figures after the paper's reader-study panels, with random-reader (OR/Hillis) intervals and n on every one, and the primary endpoint's forest plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Box plots of 100,000 reads would put every point in the HTML; above this many
# reads per box only the summary boxes are drawn (points are not embedded).
_MAX_POINTS = 2000
_CI_NOTE = "error bars: 95% CI, random readers and random cases (Obuchowski-Rockette, Hillis df)"
RRRC = "random_readers_random_cases"


def _mean_ci(digest: dict | None, test: str):
    if not digest or "error" in digest:
        return None
    m = digest["means"].get(test, {}).get(RRRC, {})
    if m.get("estimate") is None:
        return None
    return m["estimate"], m.get("ci_low"), m.get("ci_high"), digest["n_readers"], digest["n_reads"]


def _box_time(reads: pd.DataFrame, results: dict, role: str, conditions: tuple[str, ...], title: str):
    sub = reads.loc[(reads["reader_role"] == role) & reads["condition"].isin(conditions)]
    sub = sub.loc[sub["duration_s"].notna() & (sub["duration_s"] > 0)]
    if sub.empty:
        return None
    fig = go.Figure()
    block = results.get("mrmc", {}).get("duration", {}).get(role, {})
    for cond in conditions:
        y = sub.loc[sub["condition"] == cond, "duration_s"].to_numpy()
        if y.size == 0:
            continue
        mc = _mean_ci(block.get(f"geometric_mean.{cond}"), cond)
        readers = sub.loc[sub["condition"] == cond, "reader_id"].nunique()
        name = f"{cond} (n = {y.size} reads, {readers} readers)"
        if y.size > _MAX_POINTS:
            q1, med, q3 = np.percentile(y, [25, 50, 75])
            fig.add_trace(go.Box(name=name, q1=[q1], median=[med], q3=[q3], lowerfence=[np.percentile(y, 2.5)],
                                 upperfence=[np.percentile(y, 97.5)], boxpoints=False, showlegend=False))
        else:
            fig.add_trace(go.Box(y=y, name=name, boxpoints="outliers", showlegend=False))
        if mc and mc[1] is not None:
            fig.add_trace(go.Scatter(x=[name], y=[mc[0]], mode="markers", marker=dict(symbol="diamond", size=11,
                                     color="black"), name="geometric mean, random-reader 95% CI",
                                     showlegend=cond == conditions[0],
                                     error_y=dict(type="data", symmetric=False, array=[mc[2] - mc[0]],
                                                  arrayminus=[mc[0] - mc[1]])))
    fig.update_layout(title=title + "<br><sup>boxes: per read (as in the paper); diamonds: geometric mean with "
                      "random-reader 95% CI</sup>", yaxis_title="duration (s)", template="plotly_white")
    return fig


def _bars(rows: list[dict], title: str, yaxis: str, group: str | None = None) -> go.Figure:
    frame = pd.DataFrame(rows)
    fig = go.Figure()
    groups = frame[group].unique() if group else [None]
    for gname in groups:
        f = frame if gname is None else frame.loc[frame[group] == gname]
        hi = (f["ci_high"] - f["value"]).fillna(0).tolist()
        lo = (f["value"] - f["ci_low"]).fillna(0).tolist()
        fig.add_trace(go.Bar(x=f["x"], y=f["value"], name=str(gname) if gname is not None else "",
                             text=[f"n = {n}" for n in f["n"]], textposition="outside",
                             error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo)))
    fig.update_layout(title=f"{title}<br><sup>{_CI_NOTE}; n = reads (readers)</sup>", yaxis_title=yaxis,
                      barmode="group", template="plotly_white", showlegend=group is not None)
    return fig


def _forest(primary: dict) -> go.Figure | None:
    digest = primary.get("or") if primary else None
    if not digest or len(digest["levels"]) != 2 or not digest["reader_differences"]:
        return None
    ratio = digest["scale"] == "ratio"
    rows = [(f"reader {d['reader']}", d["estimate"], d["ci_low"], d["ci_high"]) for d in digest["reader_differences"]]
    for key, label in (("fixed_readers_random_cases", "all readers: fixed readers"),
                       (RRRC, "all readers: random readers (pre-specified)" if primary["conclusion"] == RRRC
                        else "all readers: random readers")):
        c = digest["conclusions"][key]
        rows.append((label, c["estimate"], c["ci_low"], c["ci_high"]))
    labels, est, lo, hi = zip(*rows)
    est, lo, hi = (np.array(v, dtype=float) for v in (est, lo, hi))
    n_r = len(digest["reader_differences"])
    fig = go.Figure(go.Scatter(
        x=est, y=list(labels), mode="markers",
        marker=dict(symbol=["square"] * n_r + ["diamond"] * 2, size=[9] * n_r + [14, 14],
                    color=["#1f77b4"] * n_r + ["#555", "black"]),
        error_x=dict(type="data", symmetric=False, array=np.nan_to_num(hi - est).tolist(),
                     arrayminus=np.nan_to_num(est - lo).tolist())))
    fig.add_vline(x=1.0 if ratio else 0.0, line_dash="dash", line_color="grey")
    first, second = digest["levels"]
    fig.update_layout(title=f"{primary['name']}: per-reader {'time ratio' if ratio else 'difference'} "
                      f"{first} vs {second}<br><sup>readers: case-sampling 95% CI (fixed reader); pooled: OR with "
                      "Hillis df for random readers, normal for fixed readers</sup>",
                      xaxis_title="time ratio (log scale)" if ratio else "difference", template="plotly_white",
                      yaxis=dict(autorange="reversed"))
    if ratio:
        fig.update_xaxes(type="log")
    return fig


def build_figures(results: dict, reads: pd.DataFrame, answers: pd.DataFrame) -> dict[str, go.Figure]:
    """Build the report figures.

    Parameters
    ----------
    results : dict
        ``AnalysisResult.results``.
    reads : pandas.DataFrame
        Counted reads with a ``condition`` column.
    answers : pandas.DataFrame
        Answers joined to their reads.

    Returns
    -------
    dict of str to plotly.graph_objects.Figure
        ``forest_primary``, ``drafting_time``, ``editing_time``, ``edit_reasons``,
        ``applicability``, ``efficiency``, ``preference``, ``reasoning``, ``detection_readers`` (each reader's
        averaged AUC unaided vs aided) (those with data). Every interval is the random-reader, random-case 95% CI of the
        OR/Hillis analysis; n (reads and readers) is on every bar or box.
    """
    figs: dict[str, go.Figure] = {}
    mrmc = results.get("mrmc", {})
    primary = next((r for r in results.get("endpoints", []) if r["family"] == "primary"), None)
    forest = _forest(primary)
    if forest is not None:
        figs["forest_primary"] = forest
    drafting = _box_time(reads, results, "resident", ("write", "edit_model"),
                         "Resident drafting time: from scratch vs editing a model draft")
    if drafting is not None:
        figs["drafting_time"] = drafting
    editing = _box_time(reads, results, "attending", ("edit_reader", "edit_model"),
                        "Attending editing time: resident vs model drafts")
    if editing is not None:
        figs["editing_time"] = editing
    rows = []
    for role, by_reason in mrmc.get("edit_reasons", {}).items():
        for reason, digest in by_reason.items():
            if "error" in digest:
                continue
            for test in digest["levels"]:
                mc = _mean_ci(digest, test)
                if mc:
                    rows.append({"x": f"{role}: {test.replace('edit_', '')} draft", "group": reason, "value": mc[0],
                                 "ci_low": mc[1], "ci_high": mc[2], "n": f"{_n_reads(digest, test)} ({mc[3]})"})
    if rows:
        figs["edit_reasons"] = _bars(rows, "Edit reasons by draft source", "share of edits", group="group")

    def rating_rows(key, items):
        out = []
        for item in items:
            for role, block in mrmc.get(key, {}).get(item, {}).items():
                for cond, digest in block.items():
                    if cond == "difference":
                        continue
                    mc = _mean_ci(digest, cond)
                    if mc:
                        out.append({"x": f"{role}: {cond.replace('edit_', '')}", "item": item, "value": mc[0],
                                    "ci_low": mc[1], "ci_high": mc[2], "n": f"{mc[4]} ({mc[3]})"})
        return out

    rows = rating_rows("likert", ("indication_applicability",))
    if rows:
        figs["applicability"] = _bars(rows, "The draft helps answer the exam indication",
                                      "mean score (+10 agree .. -10 disagree)")
    rows = rating_rows("likert", ("writing_efficiency", "interpretation_efficiency"))
    if rows:
        figs["efficiency"] = _bars(rows, "Report-writing and interpretation efficiency",
                                   "mean score (+10 agree .. -10 disagree)", group="item")
    rows = []
    for role, block in mrmc.get("preference", {}).items():
        for src, digest in block.get("shares", {}).items():
            mc = _mean_ci(digest, "compare")
            if mc:
                rows.append({"x": f"{role}: {src}", "value": mc[0], "ci_low": mc[1], "ci_high": mc[2],
                             "n": f"{mc[4]} ({mc[3]})"})
    if rows:
        figs["preference"] = _bars(rows, "Blinded preference: model vs resident draft", "share of comparisons")
    rows = rating_rows("reasoning", ("factuality", "causal_support"))
    if rows:
        for r in rows:
            r["x"] = f"{r['item']} ({r['x'].split(':')[0]})"
        figs["reasoning"] = _bars(rows, "Reasoning review: factuality and causal support", "mean score")
    detection = _detection_readers(results.get("detection") or {})
    if detection is not None:
        figs["detection_readers"] = detection
    return figs


def _detection_readers(det: dict) -> go.Figure | None:
    """Each reader's AUC (mean over findings) unaided against each aided condition, with the diagonal."""
    if not det:
        return None
    from analysis.detection import MEAN_SCOPE

    design = det["design"]
    rows = pd.DataFrame([r for r in det.get("readers", []) if r["scope"] == MEAN_SCOPE and r["fom"] == "auc"])
    if rows.empty or not design["unaided"] or not design["aided"]:
        return None
    unaided = rows.loc[rows["condition"] == design["unaided"][0]].set_index("reader")
    fig = go.Figure()
    for cond in design["aided"]:
        aided = rows.loc[rows["condition"] == cond].set_index("reader")
        both = unaided.index.intersection(aided.index)
        if both.empty:
            continue
        fig.add_trace(go.Scatter(x=unaided.loc[both, "estimate"], y=aided.loc[both, "estimate"], mode="markers",
                                 text=list(both), name=f"{cond} (n = {both.size} readers)",
                                 hovertemplate="%{text}: %{x:.3f} unaided, %{y:.3f} aided<extra></extra>"))
    if not fig.data:
        return None
    low = float(min(rows["estimate"].min(), 0.5))
    fig.add_trace(go.Scatter(x=[low, 1], y=[low, 1], mode="lines", line=dict(dash="dot", color="grey"),
                             name="no change", hoverinfo="skip"))
    fig.update_layout(title="Readers' AUC, mean over findings: unaided vs aided<br><sup>one point per reader; above "
                      "the diagonal the AI helped</sup>", xaxis_title=f"AUC, {design['unaided'][0]} (unaided)",
                      yaxis_title="AUC, aided", template="plotly_white")
    return fig


def _n_reads(digest: dict, test: str) -> int:
    return sum(r["n_cases"] for r in digest["readers"] if r["test"] == test)
