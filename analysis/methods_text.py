"""Write the methods paragraph, with a citation for each method, from the plan, design, counts and tests actually used in a results dict."""

from __future__ import annotations

#: Full references of the methods the paragraph cites, keyed by the short citation used in it.
REFERENCES = {
    "Obuchowski & Rockette 1995": "Obuchowski, N. A., & Rockette, H. E. (1995). Hypothesis testing of diagnostic accuracy for multiple readers and multiple tests: an ANOVA approach with dependent observations. Communications in Statistics - Simulation and Computation, 24(2), 285-308.",
    "Hillis 2007": "Hillis, S. L. (2007). A comparison of denominator degrees of freedom methods for multiple observer ROC analysis. Statistics in Medicine, 26(3), 596-619.",
    "Hillis et al. 2008": "Hillis, S. L., Berbaum, K. S., & Metz, C. E. (2008). Recent developments in the Dorfman-Berbaum-Metz procedure for multireader ROC study analysis. Academic Radiology, 15(5), 647-661.",
    "Hillis 2014": "Hillis, S. L. (2014). A marginal-mean ANOVA approach for analyzing multireader multicase radiological imaging data. Statistics in Medicine, 33(2), 330-360.",
    "Efron 1982": "Efron, B. (1982). The Jackknife, the Bootstrap and Other Resampling Plans. Philadelphia: SIAM.",
    "Patterson & Thompson 1971": "Patterson, H. D., & Thompson, R. (1971). Recovery of inter-block information when block sizes are unequal. Biometrika, 58(3), 545-554.",
    "Satterthwaite 1946": "Satterthwaite, F. E. (1946). An approximate distribution of estimates of variance components. Biometrics Bulletin, 2(6), 110-114.",
    "Kuznetsova et al. 2017": "Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: tests in linear mixed effects models. Journal of Statistical Software, 82(13), 1-26.",
    "Barr et al. 2013": "Barr, D. J., Levy, R., Scheepers, C., & Tily, H. J. (2013). Random effects structure for confirmatory hypothesis testing: keep it maximal. Journal of Memory and Language, 68(3), 255-278.",
    "Holm 1979": "Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian Journal of Statistics, 6(2), 65-70.",
    "Owen 2007": "Owen, A. B. (2007). The pigeonhole bootstrap. The Annals of Applied Statistics, 1(2), 386-411.",
    "Student 1908": "Student (1908). The probable error of a mean. Biometrika, 6(1), 1-25.",
    "Wilcoxon 1945": "Wilcoxon, F. (1945). Individual comparisons by ranking methods. Biometrics Bulletin, 1(6), 80-83.",
    "Pratt 1959": "Pratt, J. W. (1959). Remarks on zeros and ties in the Wilcoxon signed rank procedures. Journal of the American Statistical Association, 54(287), 655-667.",
    "Wilson 1927": "Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference. Journal of the American Statistical Association, 22(158), 209-212.",
    "McNemar 1947": "McNemar, Q. (1947). Note on the sampling error of the difference between correlated proportions or percentages. Psychometrika, 12(2), 153-157.",
    "Clopper & Pearson 1934": "Clopper, C. J., & Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated in the case of the binomial. Biometrika, 26(4), 404-413.",
    "Shrout & Fleiss 1979": "Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater reliability. Psychological Bulletin, 86(2), 420-428.",
    "McGraw & Wong 1996": "McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass correlation coefficients. Psychological Methods, 1(1), 30-46.",
    "Donner 1986": "Donner, A. (1986). A review of inference procedures for the intraclass correlation coefficient in the one-way random effects model. International Statistical Review, 54(1), 67-82.",
    "Efron 1987": "Efron, B. (1987). Better bootstrap confidence intervals. Journal of the American Statistical Association, 82(397), 171-185.",
    "Levenshtein 1966": "Levenshtein, V. I. (1966). Binary codes capable of correcting deletions, insertions, and reversals. Soviet Physics Doklady, 10(8), 707-710.",
    "Papineni et al. 2002": "Papineni, K., Roukos, S., Ward, T., & Zhu, W.-J. (2002). BLEU: a method for automatic evaluation of machine translation. Proceedings of the 40th Annual Meeting of the Association for Computational Linguistics, 311-318.",
    "Post 2018": "Post, M. (2018). A call for clarity in reporting BLEU scores. Proceedings of the Third Conference on Machine Translation: Research Papers, 186-191.",
    "Hanley & McNeil 1982": "Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the area under a receiver operating characteristic (ROC) curve. Radiology, 143(1), 29-36.",
    "Bamber 1975": "Bamber, D. (1975). The area above the ordinal dominance graph and the area below the receiver operating characteristic graph. Journal of Mathematical Psychology, 12(4), 387-415.",
    "Chakraborty 2017": "Chakraborty, D. P. (2017). Observer Performance Methods for Diagnostic Imaging: Foundations, Modeling, and Applications with R-Based Examples. Boca Raton: CRC Press (chapter: Standalone CAD vs. radiologists).",
    "Irvin et al. 2019": "Irvin, J., Rajpurkar, P., Ko, M., et al. (2019). CheXpert: a large chest radiograph dataset with uncertainty labels and expert comparison. Proceedings of the AAAI Conference on Artificial Intelligence, 33(1), 590-597.",
    "Lin 2004": "Lin, C.-Y. (2004). ROUGE: a package for automatic evaluation of summaries. Text Summarization Branches Out (ACL-04 Workshop), 74-81.",
}


def _fmt_counts(mapping: dict) -> str:
    return ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in sorted(mapping.items()))


def _design_sentence(results: dict) -> str:
    primary = next((e for e in results.get("endpoints", []) if e["family"] == "primary" and e.get("or")), None)
    if primary is None:
        return ""
    digest = primary["or"]
    if digest["design"] == "factorial":
        return "In the primary comparison every reader read the same cases in both conditions (factorial design)."
    if (digest["variance_components"].get("cov1") or 0) == 0:
        return ("In the primary comparison each reader read different cases in the two conditions, so the "
                "within-reader covariance is estimated as zero and the analysis rests on the reader-to-reader "
                "variation of the per-reader differences, the marginal-mean view of the OR model (Hillis 2014).")
    return ("Readers' cells share some cases, and each covariance was estimated from the cases two cells share "
            "(Hillis 2014).")


def methods_paragraph(results: dict) -> str:
    """Methods text for the report, generated from the results (never hand-written).

    Parameters
    ----------
    results : dict
        ``AnalysisResult.results``.

    Returns
    -------
    str
        Paragraphs (separated by a blank line): the data and exclusions; the
        pre-specified plan, its primary analysis and multiplicity; the random-reader
        methods for every endpoint; the paper's per-read statistics; reliability; the report-text metrics; the
        detection analysis.
        Each method carries its citation (full references: :data:`REFERENCES`).
    """
    d = results["design"]
    plan = results.get("plan", {})
    data = [
        f"{d['n_reads']} reads (assignments with status {' or '.join(d['counted_statuses'])}) of "
        f"{d['n_cases']} cases by {d['n_readers']} readers ({_fmt_counts(d['readers_by_role'])}) were analysed; "
        f"{d['n_assignments'] - d['n_reads']} assignments without a submission were excluded"
        + (f", {d['n_reads_missing_duration']} counted reads lacked a duration" if d["n_reads_missing_duration"] else "")
        + (f" and {d['n_reads_zero_duration_excluded']} reads with a zero duration were excluded from the time "
           "analyses" if d.get("n_reads_zero_duration_excluded") else "") + ".",
        "Durations are server-side wall-clock seconds from the first display of the image to SUBMIT.",
    ]
    sites = results.get("sites") or {}
    if sites:
        data.append(
            f"The cases came from {len(sites['sites'])} sites ({', '.join(sites['sites'])}); durations are also "
            "reported with each site as a stratum, and the mixed models take the site of the case as a fixed effect "
            "(readers and cases stay random).")
    pre = []
    if plan:
        source = ("pre-specified in the study's design file, frozen at study creation" if plan["source"] == "design"
                  else "the platform's shipped default plan (the design file states none)")
        eps = results.get("endpoints", [])
        primary = next((e for e in eps if e["family"] == "primary"), None)
        secondary = [e for e in eps if e["family"] == "secondary"]
        pre.append(f"The analysis plan was {source} (SHA-256 {plan['sha256'][:12]}...). "
                   f"Readers were treated as a {plan['readers']} and cases as a {plan['cases']} factor.")
        if primary:
            pre.append(f"Primary endpoint: {primary['description']}.")
        if secondary:
            pre.append("Secondary endpoints: " + "; ".join(e["description"] for e in secondary) + ".")
        statement = results.get("multiplicity", {}).get("statement", "")
        if plan.get("multiplicity") == "holm":
            statement = statement.replace("Holm's step-down procedure", "Holm's step-down procedure (Holm 1979)")
        pre.append(statement)
    mrmc = [
        "Each endpoint was analysed as a per-reader figure of merit (mean log duration, reported as a ratio of "
        "geometric means; mean Likert score; share of edits needing no edit; share of comparisons preferring the "
        "model minus the share preferring the reader draft) with the Obuchowski-Rockette model "
        "(Obuchowski & Rockette 1995), error covariances estimated by jackknifing cases within each reader x "
        "condition cell and pairing cells by the cases they share (Efron 1982), and Hillis's denominator degrees of "
        "freedom (Hillis 2007; Hillis et al. 2008). " + _design_sentence(results) + " Conclusions for random "
        "readers and random cases (the usual generalisation), fixed "
        "readers (these readers, random cases; normal approximation) and fixed cases (t on (t-1)(r-1) df) are "
        "reported side by side, with per-reader estimates and variance components.",
    ]
    comps = [c for b in results.get("duration", {}).values() for c in b["comparisons"].values()]
    if comps:
        mrmc.append(
            "As a sensitivity analysis, log duration was fitted by a linear mixed model with random intercepts for "
            "reader, reader x condition (readers differ in their benefit; Barr et al. 2013) and case, and case x "
            "condition where a case was read more than once in a condition, by REML (Patterson & Thompson 1971), "
            "with Satterthwaite degrees of freedom (Satterthwaite 1946; as in lmerTest, Kuznetsova et al. 2017); "
            "a variance component estimated at zero or not identified by the design was removed, as reported.")
        if any((c.get("mixed_model") or {}).get("subsampled") for c in comps):
            mrmc.append("Where a comparison had more reads than the mixed model's dense computations allow, it was "
                        "fitted on a seeded random subset of whole cases; the OR analysis used every read.")
    paper = [
        "The paper's per-read statistics are reported next to these (exploratory): durations as mean ± SD and "
        "median; paired t-tests (Student 1908) and Wilcoxon signed-rank tests (Wilcoxon 1945) on each reader's "
        "mean per condition, exact when there were no ties and at most 50 pairs (the smallest attainable p-value "
        "is reported when it exceeds alpha); a two-way bootstrap resampling readers and cases "
        f"(Owen 2007; {results['n_boot']} resamples, seed {results['seed']}); Likert items against the neutral 0 "
        "with Pratt's treatment of zeros (Pratt 1959)."]
    if results.get("edit_reasons"):
        paper.append("Edit reasons are shares by role and draft source; their intervals in the figures are the "
                     "random-reader OR intervals (per-read Wilson intervals, Wilson 1927, ignore clustering).")
    mc = results.get("no_edit_mcnemar", {})
    if mc:
        paper.append("'No editing needed' for the model versus the resident draft of the same case used McNemar's "
                     "test (McNemar 1947; " + "; ".join(f"{role}s: {r['n_pairs']} pairs by {r['pairing']}, "
                                                        f"{'exact binomial' if r['method'] == 'exact' else 'chi-squared with continuity correction'}"
                                                        for role, r in mc.items()) + ").")
    pref = results.get("preference", {})
    if pref:
        paper.append(f"In {pref['n']} blinded comparisons the per-read sign test of model versus reader preference "
                     "and the binomial test of the A/B position used exact binomial p-values with Clopper-Pearson "
                     "intervals (Clopper & Pearson 1934).")
    icc = results.get("icc", {})
    if icc.get("items"):
        paper.append("Inter-reader reliability: " + icc["reason"] + " (Shrout & Fleiss 1979; McGraw & Wong 1996; "
                     "Donner 1986). Duplicate ratings of a draft by one reader were refused.")
    text = _text_metrics_sentences(results)
    detection = _detection_sentences(results)
    return "\n\n".join(" ".join(p) for p in (data, pre, mrmc, paper, text, detection) if p)


def _detection_sentences(results: dict) -> list[str]:
    det = results.get("detection") or {}
    if not det:
        return []
    d = det["design"]
    findings = d["findings"]
    chexpert = " (the CheXpert observations, Irvin et al. 2019)" if len(findings) == 14 else ""
    scale = d["confidence_scale"]
    excluded = det.get("averaged_excluded", [])
    out = [
        f"Detection: {d['n_readers']} readers marked each of {len(findings)} findings{chexpert} on {d['n_cases']} "
        f"cases as present or absent with a confidence from {scale['min']:g} to {scale['max']:g}, in "
        f"{len(d['conditions'])} conditions ({', '.join(c['condition'] + ': AI output ' + c['ai_shown'] for c in d['conditions'])}). "
        "For each reader, condition and finding, accuracy was the empirical (trapezoidal) area under the ROC curve of "
        "the confidence against the reference standard, the Mann-Whitney statistic with ties counted one half "
        "(Bamber 1975; Hanley & McNeil 1982), and the sensitivity and specificity of the binary call "
        f"({d['binary_call']}). The study-level figure of merit was each reader's mean of the per-finding AUCs "
        "(and sensitivities, specificities), with leave-one-case-out jackknife covariances that remove a case from "
        "every finding at once (Efron 1982), since cases, not findings, are sampled.",
        "Conditions were compared, aided minus unaided, with the Obuchowski-Rockette model (Obuchowski & Rockette "
        "1995) and Hillis's degrees of freedom (Hillis 2007; Hillis et al. 2008) for random readers and random "
        "cases, with the fixed-reader and fixed-case conclusions beside. The model alone was scored with the same "
        "figures of merit on the same cases (its call: probability >= "
        f"{d['model_threshold']:g}), with a jackknife normal interval; readers were compared with the model by the "
        "single-test Obuchowski-Rockette analysis of each reader's figure of merit minus the model's on the same "
        "cases, treating the model as a fixed reader (Chakraborty 2017)."]
    if excluded:
        out.append("Not estimable, and left out of the mean over findings (fewer than 2 positive or 2 negative "
                   "reference cases): " + "; ".join(f"{e['finding']} ({e['reason']})" for e in excluded) + ".")
    return out


def _text_metrics_sentences(results: dict) -> list[str]:
    tm = results.get("text_metrics") or {}
    if not (tm.get("draft_final") or tm.get("final_reference")):
        return []
    against = ("the reader's submitted text and, for the "
               f"{tm['n_cases_with_reference']} cases with reference findings in the cohort manifest, each draft and "
               "each submitted text against the reference" if tm.get("reference_available")
               else "the reader's submitted text (the cohort has no reference findings)")
    return [
        f"Report texts were compared with surface metrics, each draft shown against {against}: character and word "
        "Levenshtein distances after whitespace normalisation (Levenshtein 1966), sentence-level BLEU "
        f"(Papineni et al. 2002) computed with sacreBLEU (Post 2018; signature "
        f"{tm.get('settings', {}).get('bleu_signature')}), and the ROUGE-L F-measure (Lin 2004) computed with "
        "rouge-score. Each was summarised per reader and condition and analysed with the same "
        "Obuchowski-Rockette model as the other per-read endpoints (random readers and cases); a model draft's "
        "distance from the reference, which involves no reader, has a per-draft bootstrap interval. These metrics "
        "count shared or changed words, not clinical correctness; model-based metrics (RadGraph F1, CheXbert) "
        "were not computed."]


def cited(results: dict) -> list[str]:
    """Full references of every method the methods paragraph cites, in citation order."""
    text = methods_paragraph(results)
    found = [(text.find(key), ref) for key, ref in REFERENCES.items() if key in text]
    return [ref for _, ref in sorted(found)]
