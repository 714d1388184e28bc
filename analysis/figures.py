"""Plotly figures after the paper's reader-study panels (time, edit reasons, Likert, preference, reasoning)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Box plots of 100,000 reads would put every point in the HTML; above this many
# reads per box only the summary boxes are drawn (points are not embedded).
_MAX_POINTS = 2000


def _box_time(reads: pd.DataFrame, role: str, conditions: tuple[str, ...], title: str) -> go.Figure | None:
    sub = reads.loc[(reads["reader_role"] == role) & reads["condition"].isin(conditions)].dropna(subset=["duration_s"])
    if sub.empty:
        return None
    fig = go.Figure()
    for cond in conditions:
        y = sub.loc[sub["condition"] == cond, "duration_s"].to_numpy()
        if y.size == 0:
            continue
        if y.size > _MAX_POINTS:
            q1, med, q3 = np.percentile(y, [25, 50, 75])
            fig.add_trace(go.Box(name=cond, q1=[q1], median=[med], q3=[q3], lowerfence=[np.percentile(y, 2.5)],
                                 upperfence=[np.percentile(y, 97.5)], mean=[y.mean()], boxpoints=False))
        else:
            fig.add_trace(go.Box(y=y, name=cond, boxmean="sd", boxpoints="outliers"))
    fig.update_layout(title=title, yaxis_title="duration (s)", showlegend=False, template="plotly_white")
    return fig


def _bar_with_ci(rows: list[dict], x: str, title: str, yaxis: str, group: str | None = None) -> go.Figure:
    frame = pd.DataFrame(rows)
    fig = go.Figure()
    groups = frame[group].unique() if group else [None]
    for gname in groups:
        f = frame if gname is None else frame.loc[frame[group] == gname]
        fig.add_trace(go.Bar(x=f[x], y=f["value"], name=str(gname) if gname is not None else "",
                             error_y=dict(type="data", symmetric=False, array=(f["ci_high"] - f["value"]).tolist(),
                                          arrayminus=(f["value"] - f["ci_low"]).tolist())))
    fig.update_layout(title=title, yaxis_title=yaxis, barmode="group", template="plotly_white")
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
        ``drafting_time``, ``editing_time``, ``edit_reasons``, ``applicability``,
        ``efficiency``, ``preference``, ``reasoning`` (those with data).
    """
    figs: dict[str, go.Figure] = {}
    drafting = _box_time(reads, "resident", ("write", "edit_model"), "Resident drafting time: from scratch vs editing a model draft")
    if drafting is not None:
        figs["drafting_time"] = drafting
    editing = _box_time(reads, "attending", ("edit_reader", "edit_model"), "Attending editing time: resident vs model drafts")
    if editing is not None:
        figs["editing_time"] = editing
    er = results.get("edit_reasons", {})
    if er:
        fig = go.Figure()
        xs = [f"{role}: {src} draft" for role, by in er.items() for src in by]
        for reason in ("none", "content", "style", "both"):
            fig.add_trace(go.Bar(x=xs, y=[by[src]["shares"][reason]["share"] for role, by in er.items() for src in by],
                                 name=reason))
        fig.update_layout(title="Edit reasons by draft source", barmode="stack", yaxis_title="share of edits",
                          template="plotly_white")
        figs["edit_reasons"] = fig
    lk = results.get("likert", {})

    def likert_rows(items):
        return [{"x": f"{role}: {src}", "value": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "item": item}
                for item in items if item in lk for role, by in lk[item].items() for src, d in by.items()
                if src != "model_vs_reader_by_reader" and d.get("mean") is not None]
    rows = likert_rows(("indication_applicability",))
    if rows:
        figs["applicability"] = _bar_with_ci(rows, "x", "The draft helps answer the exam indication",
                                             "mean score (+10 agree .. -10 disagree)")
    rows = likert_rows(("writing_efficiency", "interpretation_efficiency"))
    if rows:
        figs["efficiency"] = _bar_with_ci(rows, "x", "Report-writing and interpretation efficiency",
                                          "mean score (+10 agree .. -10 disagree)", group="item")
    pref = results.get("preference", {})
    if pref:
        rows = [{"x": k, "value": v["share"], "ci_low": v["ci_low"], "ci_high": v["ci_high"]}
                for k, v in pref["shares"].items()]
        figs["preference"] = _bar_with_ci(rows, "x", "Blinded preference: model vs resident draft (Wilson 95% CI)",
                                          "share of comparisons")
    rs = results.get("reasoning", {})
    rows = [{"x": item, "value": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "role": role}
            for item, by_role in rs.items() for role, by in by_role.items() for src, d in by.items()
            if d.get("mean") is not None]
    if rows:
        figs["reasoning"] = _bar_with_ci(rows, "x", "Reasoning review: factuality and causal support", "mean score",
                                         group="role")
    return figs
