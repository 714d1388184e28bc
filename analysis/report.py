"""Write the self-contained HTML report (plotly inlined once, works offline) and results.json."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import plotly.io as pio
import plotly.offline

from analysis.reader_study import AnalysisResult

_TABLE_TITLES = {
    "duration": "Durations per read (seconds)",
    "duration_tests": "Duration comparisons (clustering-aware)",
    "edit_reasons": "Edit reasons by draft source",
    "no_edit_mcnemar": "'No editing needed': model vs resident draft of the same case (McNemar)",
    "likert": "Likert items (mean, bootstrap CI, Wilcoxon vs neutral)",
    "likert_tests": "Likert: model vs reader drafts (paired by reader)",
    "reasoning": "Reasoning review ratings",
    "preference": "Blinded preference",
    "icc": "Inter-reader reliability (ICC)",
    "edit_metrics": "Text edit metrics by draft source",
}
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em}p.methods{line-height:1.5}"""


def _table_html(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "<p><em>no data</em></p>"
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0, escape=True)


def write_report(result: AnalysisResult, out_dir: str | Path) -> Path:
    """Write ``report.html`` and ``results.json`` into ``out_dir``.

    Parameters
    ----------
    result : AnalysisResult
        Output of :func:`analysis.run_analysis`.
    out_dir : str or pathlib.Path
        Created if needed.

    Returns
    -------
    pathlib.Path
        Path of ``report.html``. The page embeds plotly.js once (no CDN), so it
        opens offline; ``results.json`` holds every number (NaN written as null).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result.results, indent=2, allow_nan=False))
    design = result.results.get("design", {})
    title = f"Reader study analysis: {design.get('study_id') or 'study'}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style>",
             f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<h2>Methods</h2>", f"<p class='methods'>{html.escape(result.methods)}</p>"]
    icc = result.results.get("icc", {})
    if icc.get("reason"):
        parts.append(f"<p><strong>ICC form:</strong> {html.escape(icc['reason'])}</p>")
    parts.append("<h2>Figures</h2>")
    for name, fig in result.figures.items():
        parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{name}"))
    parts.append("<h2>Tables</h2>")
    for name, frame in result.tables.items():
        parts.append(f"<h3>{html.escape(_TABLE_TITLES.get(name, name))}</h3>{_table_html(frame)}")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
