"""Write the methods paragraph from the design, counts and tests actually used in a results dict."""

from __future__ import annotations


def _fmt_counts(mapping: dict) -> str:
    return ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in sorted(mapping.items()))


def methods_paragraph(results: dict) -> str:
    """Methods text for the report, generated from the results (never hand-written).

    Parameters
    ----------
    results : dict
        ``AnalysisResult.results``.

    Returns
    -------
    str
        One paragraph naming the counts, pairing keys, tests, zero handling,
        bootstrap settings and the ICC form chosen with its reason.
    """
    d = results["design"]
    parts = [
        f"{d['n_reads']} reads (assignments with status {' or '.join(d['counted_statuses'])}) of "
        f"{d['n_cases']} cases by {d['n_readers']} readers ({_fmt_counts(d['readers_by_role'])}) were analysed; "
        f"{d['n_assignments'] - d['n_reads']} assignments without a submission were excluded"
        + (f" and {d['n_reads_missing_duration']} counted reads lacked a duration." if d["n_reads_missing_duration"] else "."),
        "Durations are server-side wall-clock seconds from the first display of the image to SUBMIT and are "
        "summarised per read as mean ± SD with 95% bootstrap confidence intervals "
        f"({results['n_boot']} resamples, numpy PCG64 seed {results['seed']}; BCa, falling back to percentile "
        "when BCa is undefined).",
    ]
    comps = [(role, name, c) for role, b in results.get("duration", {}).items() for name, c in b["comparisons"].items()]
    if comps:
        descr = "; ".join(f"{role}s, {c['reference']} vs {c['comparison']} ({c['n_readers_paired']} readers paired)"
                          for role, name, c in comps)
        parts.append(
            f"Conditions were compared ({descr}) by a paired t-test and a Wilcoxon signed-rank test on each "
            "reader's mean duration per condition (pairs formed explicitly by reader_id), by a linear mixed model on "
            "log(duration) with crossed random intercepts for reader and case (REML, statsmodels MixedLM with "
            "variance components), reported as a ratio of geometric means with a Wald 95% CI, and by a two-way "
            "bootstrap resampling readers and cases independently (percentile CI).")
        if any(c.get("mixed_model", {}).get("subsampled") for _, _, c in comps):
            parts.append("Where a comparison had more reads than the mixed model can fit in memory, the model was "
                         "fitted on a seeded random subset of whole cases; the two-way bootstrap used every read.")
    if results.get("edit_reasons"):
        parts.append("Edit reasons (none, content, style, both) are reported as shares by role and draft source with "
                     "Wilson 95% intervals.")
    mc = results.get("no_edit_mcnemar", {})
    if mc:
        parts.append("'No editing needed' for the model draft versus the resident draft of the same case was compared "
                     "with McNemar's test (" + "; ".join(f"{role}s: {r['n_pairs']} pairs by {r['pairing']}, "
                                                          f"{r['method']}" for role, r in mc.items())
                     + "; exact binomial when fewer than 25 discordant pairs).")
    if results.get("likert"):
        parts.append("Likert items (+10 strongly agree to -10 strongly disagree) are given as mean ± SD with bootstrap "
                     "CIs; each was tested against the neutral 0 with the Wilcoxon signed-rank test with Pratt's "
                     "treatment of zero (neutral) answers, and model versus reader drafts were compared on reader "
                     "means with the Wilcoxon signed-rank test (zeros dropped, Wilcox's method), exact when there "
                     "were no ties and at most 50 pairs, otherwise the normal approximation with tie and continuity "
                     "corrections.")
    pref = results.get("preference", {})
    if pref:
        parts.append(f"In {pref['n']} blinded side-by-side comparisons, shares of preferred source are given with "
                     "Wilson 95% intervals; model versus reader preference was tested with an exact two-sided sign "
                     "(binomial) test on non-tied comparisons, the A/B position effect with an exact binomial test "
                     "of position A wins against 0.5, and the reader-level net preference with a Wilcoxon test.")
    icc = results.get("icc", {})
    if icc.get("items"):
        parts.append("Inter-reader reliability of each rating used the intraclass correlation on drafts rated by "
                     "several readers. " + icc["reason"] + " Duplicate ratings of a draft by one reader were refused.")
    return " ".join(parts)
