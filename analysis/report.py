"""Write the self-contained HTML report (pre-specified results first, plotly inlined once, works offline) and results.json."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd
import plotly.io as pio
import plotly.offline

from analysis.methods_text import cited
from analysis.reader_study import AnalysisResult
from analysis.text_metrics import TABLE_COLUMNS

_TABLE_TITLES = {
    "endpoints": "Pre-specified endpoints (primary, secondary with multiplicity adjustment, sensitivity)",
    "conclusions": "Random- and fixed-reader conclusions side by side (pre-specified endpoints)",
    "variance_components": "Variance components (OR: reader, test x reader, error variance and Cov1-Cov3)",
    "per_reader": "Primary endpoint per reader (fixed-reader case-sampling 95% CI)",
    "duration": "Durations per read (as in the paper), with the geometric mean and its random-reader 95% CI",
    "duration_tests": "Duration comparisons",
    "edit_reasons": "Edit reasons by draft source (share per read; random-reader 95% CI)",
    "no_edit_mcnemar": "'No editing needed': model vs resident draft of the same case (McNemar)",
    "likert": "Rating items, Likert and visual-analogue, each on its own scale (per-read mean ± SD; random-reader "
              "95% CI; Wilcoxon vs the scale's neutral point)",
    "likert_tests": "Rating items: model vs reader drafts",
    "reasoning": "Reasoning review ratings",
    "choices": "Other choice questions: the share of each option (random-reader 95% CI)",
    "questions": "Every question of the design, its scoring, and where it is analysed",
    "preference": "Blinded preference (random-reader 95% CI of each share)",
    "icc": "Inter-reader reliability (ICC)",
    "edit_metrics": "Text edit metrics by draft source (per read)",
    "sites": "Sites: reads, cases and readers per site of the case (n_readers_of_site: readers from the site)",
    "site_strata": "Durations by site of the case, role and condition (reads; geometric mean, s)",
    "site_ratios": "Duration comparisons within each site (ratio of geometric means, comparison / reference), and the "
                   "mixed model's site effect (time ratio of the site's cases to the first site's, adjusted)",
    "mrmc": "OR/Hillis analysis of every endpoint (random readers; fixed-reader interval alongside)",
    "text_metrics": "Report-text metrics by pair, role and condition (per read; mean with its 95% CI)",
    "text_metrics_differences": "Report-text metrics: model-draft condition minus each other condition (random "
                                "readers, random cases)",
    "draft_errors_by_source": "Errors per draft by role and draft source (per read)",
    "draft_errors_comparisons": "Model drafts minus reader drafts: errors per draft (OR/Hillis, random readers and "
                                "cases)",
    "draft_errors_by_category": "Clinically significant errors per draft by ReXVal category",
    "draft_errors_by_edit_reason": "Errors per draft by the reader's edit reason",
    "draft_errors_by_time": "Reading time by the draft's number of clinically significant errors",
    "detection_findings": "Findings: reference cases per finding, and which enter the mean over findings",
    "detection_conditions": "Readers' AUC, sensitivity and specificity by condition (random readers and cases, 95% CI; "
                            "fixed-reader CI beside)",
    "detection_differences": "Aided minus unaided (OR/Hillis, random readers and cases; fixed-reader and fixed-case "
                             "conclusions beside)",
    "detection_model": "The model alone on the same cases (jackknife 95% CI), beside the readers, and readers minus "
                       "the model (random readers and cases)",
    "detection_readers": "Per reader (fixed-reader case-sampling 95% CI)",
    "detection_not_estimable": "Not estimable, and why",
}
_DRAFT_ERRORS_INTRO = (
    "After each edit the reader marked every edit of the draft-to-final diff (analysis.draft_errors.edit_segments: "
    "sentence edits, and phrase edits within a sentence changed one-for-one) with one of the six error categories "
    "of ReXVal (Yu et al. 2023) - false prediction of finding, omission of finding, incorrect location or position, "
    "incorrect severity, mention of a comparison that is not present, omission of a comparison describing a change "
    "- or as not an error (wording or style), and each error as clinically significant or not. The counts per "
    "draft are compared between model and reader drafts with the Obuchowski-Rockette/Hillis analysis of every "
    "per-read endpoint (random readers, random cases); the edit reasons and reading times beside them are "
    "descriptive. An error the reader saw but did not edit is not counted.")
_TEXT_METRICS_INTRO = (
    "Surface metrics of the report texts. Each draft shown is compared with the text the reader submitted "
    "(draft_final: how much of the draft survived; an unedited draft has edit distances 0, BLEU 100, ROUGE-L 1) "
    "and, when the cohort manifest gave reference findings, each draft and each submitted text with them. Character "
    "and word edit distances (Levenshtein) count the characters and words changed; BLEU (Papineni et al. 2002, "
    "computed with sacreBLEU, Post 2018) scores shared word sequences of up to four words; ROUGE-L (Lin 2004) the "
    "longest common subsequence of words. They measure how much text changed or is shared, not whether a finding is "
    "right: dropping the 'no' of 'no pleural effusion' reverses the finding for three characters, one word and a "
    "ROUGE-L of 0.8 left, while a rephrasing that says the same thing costs many. Read them beside the edit "
    "reasons and ratings, never as accuracy.")
_DETECTION_INTRO = (
    "Each reader marked every finding of the study's list present or absent, with a confidence that it is present, "
    "unaided or with the AI's output shown (its labels, its draft report, or both). For each finding and reader x "
    "condition: the empirical AUC of the confidence against the reference (Mann-Whitney, ties one half), and the "
    "sensitivity and specificity of the binary call; the study-level figure of merit is each reader's mean over the "
    "estimable findings, its jackknife leaving a whole case (all its findings) out. Every figure is an "
    "Obuchowski-Rockette/Hillis analysis for random readers and random cases; the model alone is the same figure "
    "with the model as the only reader, and readers minus the model is the single-test OR analysis of the "
    "difference (each reader against the model on the same cases). A finding without 2 positive and 2 negative "
    "reference cases is not estimable and is left out of the mean.")
_EXPLORATORY = ("questions", "duration", "duration_tests", "edit_reasons", "no_edit_mcnemar", "likert", "likert_tests",
                "reasoning", "choices", "preference", "icc", "edit_metrics", "sites", "site_strata", "site_ratios", "mrmc")
_CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em}p.methods{line-height:1.5}
.primary{border:2px solid #333;padding:.6em 1em;background:#fafafa}.caveat{color:#8a4b00}
.label{font-size:12px;color:#555;text-transform:uppercase;letter-spacing:.05em}"""


def format_p(p) -> str:
    """A p-value as a journal prints it: ``< 0.001``, else three decimals; empty when missing.

    >>> format_p(5.578e-86), format_p(0.05166), format_p(None)
    ('< 0.001', '0.052', '')
    """
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return ""
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _cell(value, column: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if column.startswith("p_") or column.endswith("_p_val") or column in ("min_attainable_p",):
        return format_p(value)
    if isinstance(value, float):
        # Rounding noise (a difference of 1e-16) is zero, not a number to read.
        return "0" if abs(value) < 1e-12 else f"{value:.4g}"
    return str(value)


def _table_html(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "<p><em>no data</em></p>"
    shown = pd.DataFrame({c: [_cell(v, c) for v in frame[c].tolist()] for c in frame.columns})
    drop = [c for c in shown.columns if (shown[c] == "").all()]
    return shown.drop(columns=drop).to_html(index=False, border=0, escape=True)


def _primary_sentence(r: dict) -> str:
    if r.get("error"):
        return f"No result for the primary endpoint: {r['error']}"
    what = {"ratio": "time ratio", "difference": "difference", "mean": "mean"}[r["scale"]]
    verdict = "significant" if r.get("significant") else "not significant"
    df = f", {r['df']:.1f} df" if r.get("df") is not None and math.isfinite(r["df"]) else ""
    return (f"{r['description']}: {what} {r['estimate']:.3f} (95% CI {r['ci_low']:.3f} to {r['ci_high']:.3f}{df}), "
            f"p {('= ' + format_p(r['p_val'])) if not format_p(r['p_val']).startswith('<') else format_p(r['p_val'])}"
            f"; {r.get('n_readers')} readers, {r.get('n_cases')} cases, {r.get('n_reads')} reads; {verdict} at "
            "the pre-specified alpha.")


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
        Path of ``report.html``: the pre-specified primary result first, then the
        secondary endpoints with the multiplicity statement, random- and fixed-reader
        conclusions, variance components, the per-reader table and forest plot,
        caveats, the methods paragraph with references, and, labelled exploratory,
        the paper's per-read panels and tables, the OR analysis of every endpoint and the
        report-text surface metrics (``text_metrics.csv`` beside it holds their per-read rows).
        plotly.js is embedded once (no CDN), so it opens offline; ``results.json``
        holds every number (NaN written as null).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = result.results
    (out / "results.json").write_text(json.dumps(res, indent=2, allow_nan=False))
    if result.text_metrics is not None:
        # The per-read metrics without the texts: a report folder may travel further than the export.
        result.text_metrics[TABLE_COLUMNS].to_csv(out / "text_metrics.csv", index=False)
    design = res.get("design", {})
    plan = res.get("plan", {})
    title = f"Reader study analysis: {design.get('study_id') or 'study'}"
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style>",
             f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>",
             f"<h1>{esc(title)}</h1>"]
    if plan:
        source = ("pre-specified in the design file (frozen at study creation)" if plan["source"] == "design"
                  else "<strong>the shipped default plan</strong>: the design states no analysis plan")
        parts.append(f"<p>Analysis plan: {source}; SHA-256 <code>{esc(plan['sha256'])}</code>; alpha "
                     f"{plan['alpha']:g}; {esc(plan['multiplicity'])} over the secondary endpoints; readers "
                     f"{esc(plan['readers'])}, cases {esc(plan['cases'])}.</p>")
    prov = res.get("provenance")
    if prov:
        # What produced this report, as a supplement needs it: the study's design and cohort, the export, the plan,
        # and the analysis software with every package a number depends on.
        rows = [("study", prov.get("study_id")), ("design SHA-256", prov.get("design_sha256")),
                ("cohort manifest SHA-256", prov.get("cohort_sha256")), ("exported at (UTC)", prov.get("exported_at")),
                ("exported by", f"readerstudy {prov.get('export_software')}" if prov.get("export_software") else None),
                ("export schema", prov.get("schema_version")), ("analysis plan SHA-256", prov.get("analysis_plan_sha256")),
                ("analysed at (UTC)", prov.get("analysed_at")),
                ("analysed by", f"readerstudy {prov.get('analysis_software')}, Python {prov.get('python')}, "
                                f"{prov.get('platform')}"),
                ("dependencies", ", ".join(f"{k} {v}" for k, v in (prov.get("dependencies") or {}).items()))]
        parts.append("<h2>Provenance</h2><table class='made-by'>" + "".join(
            f"<tr><th>{esc(k)}</th><td><code>{esc(str(v))}</code></td></tr>" for k, v in rows if v) + "</table>")
    primary = next((r for r in res.get("endpoints", []) if r["family"] == "primary"), None)
    if primary:
        parts += ["<div class='primary'><div class='label'>Primary endpoint (pre-specified)</div>",
                  f"<p><strong>{esc(_primary_sentence(primary))}</strong></p>",
                  _table_html(result.tables.get("primary")), "</div>"]
    parts += ["<h2>Pre-specified endpoints</h2>",
              f"<p>{esc(res.get('multiplicity', {}).get('statement', ''))}</p>",
              _table_html(result.tables.get("endpoints"))]
    for name in ("conclusions", "variance_components", "per_reader"):
        parts.append(f"<h3>{esc(_TABLE_TITLES[name])}</h3>{_table_html(result.tables.get(name))}")
    if "forest_primary" in result.figures:
        parts.append(pio.to_html(result.figures["forest_primary"], include_plotlyjs=False, full_html=False,
                                 div_id="fig-forest_primary"))
    caveats = res.get("caveats", [])
    if caveats:
        parts.append("<h2>Caveats and exclusions</h2><ul>"
                     + "".join(f"<li class='caveat'>{esc(c)}</li>" for c in caveats) + "</ul>")
    parts.append("<h2>Methods</h2>")
    parts += [f"<p class='methods'>{esc(p)}</p>" for p in result.methods.split("\n\n")]
    refs = cited(res)
    if refs:
        parts.append("<h3>References</h3><ol>" + "".join(f"<li>{esc(r)}</li>" for r in refs) + "</ol>")
    icc = res.get("icc", {})
    if icc.get("reason"):
        parts.append(f"<p><strong>ICC form:</strong> {esc(icc['reason'])}</p>")
    parts.append("<h2>Exploratory: the paper's panels and per-read numbers, and every endpoint's MRMC analysis</h2>"
                 "<p>Not pre-specified: p-values here are unadjusted and descriptive. Per-read summaries are kept "
                 "as the paper reports them; every interval shown is clustering-aware (random readers and cases) "
                 "unless its column says otherwise.</p>")
    for name, fig in result.figures.items():
        if name not in ("forest_primary", "detection_readers"):
            parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{name}"))
    for name in _EXPLORATORY:
        if name in result.tables:
            parts.append(f"<h3>{esc(_TABLE_TITLES.get(name, name))}</h3>{_table_html(result.tables[name])}")
    tm = res.get("text_metrics") or {}
    if any(tm.get(pair) for pair in ("draft_final", "final_reference", "draft_reference")):
        parts.append("<h2 id='text-metrics'>Report-text surface metrics (exploratory)</h2>"
                     f"<p>{esc(_TEXT_METRICS_INTRO)}</p>")
        settings = tm.get("settings", {})
        parts.append(f"<p>BLEU signature <code>{esc(str(settings.get('bleu_signature')))}</code>; ROUGE-L: "
                     f"{esc(str(settings.get('rouge')))}; edit distance: {esc(str(settings.get('edit_distance')))}. "
                     + (f"Reference findings for {tm['n_cases_with_reference']} case(s)." if tm.get("reference_available")
                        else "The cohort has no reference findings: only drafts against the submitted texts.")
                     + " Per-read rows: <code>text_metrics.csv</code>.</p>")
        for name in ("text_metrics", "text_metrics_differences"):
            parts.append(f"<h3>{esc(_TABLE_TITLES[name])}</h3>{_table_html(result.tables.get(name))}")
        parts.append(f"<p><em>{esc(tm.get('model_based_metrics', ''))}</em></p>")
    errors = res.get("draft_errors") or {}
    if errors:
        parts.append("<h2 id='draft-errors'>Errors of the drafts (ReXVal; exploratory)</h2>"
                     f"<p>{esc(_DRAFT_ERRORS_INTRO)} {errors.get('n_reads', 0)} annotated reads.</p>")
        for name in ("draft_errors_by_source", "draft_errors_comparisons", "draft_errors_by_category",
                     "draft_errors_by_edit_reason", "draft_errors_by_time"):
            parts.append(f"<h3>{esc(_TABLE_TITLES[name])}</h3>{_table_html(result.tables.get(name))}")
        parts.append(f"<p>Reference: {esc(errors.get('reference', ''))}</p>")
    det = res.get("detection") or {}
    if det:
        d = det["design"]
        conditions = "; ".join(f"{c['condition']} ({c['ai_shown']}: {c['n_readers']} readers, {c['n_reads']} reads)"
                               for c in d["conditions"])
        parts.append("<h2 id='detection'>AI-assisted detection</h2>"
                     f"<p>{esc(_DETECTION_INTRO)} Conditions: {esc(conditions)}. {d['n_cases']} cases; binary call: "
                     f"{esc(d['binary_call'])}; the model calls a finding present at probability >= "
                     f"{d['model_threshold']:g}. Mean over findings: {esc(', '.join(det['averaged_findings']) or 'none')}."
                     "</p>")
        for name in ("detection_differences", "detection_conditions", "detection_model", "detection_findings",
                     "detection_not_estimable"):
            if name == "detection_not_estimable" and result.tables.get(name, pd.DataFrame()).empty:
                continue
            parts.append(f"<h3>{esc(_TABLE_TITLES[name])}</h3>{_table_html(result.tables.get(name))}")
        if "detection_readers" in result.figures:
            parts.append(pio.to_html(result.figures["detection_readers"], include_plotlyjs=False, full_html=False,
                                     div_id="fig-detection_readers"))
        parts.append(f"<h3>{esc(_TABLE_TITLES['detection_readers'])}</h3>"
                     f"{_table_html(result.tables.get('detection_readers'))}")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
