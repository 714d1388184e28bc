"""Flatten the nested results into the report's tables (estimate, CI, test, p-value per row)."""

from __future__ import annotations

import pandas as pd


def build_tables(results: dict) -> dict[str, pd.DataFrame]:
    """Build the report tables from a results dict.

    Parameters
    ----------
    results : dict
        ``AnalysisResult.results``.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``duration``, ``duration_tests``, ``edit_reasons``, ``no_edit_mcnemar``,
        ``likert``, ``likert_tests``, ``reasoning``, ``preference``, ``icc``, ``edit_metrics``.
    """
    t: dict[str, pd.DataFrame] = {}
    rows, tests = [], []
    for role, block in results.get("duration", {}).items():
        for cond, d in block["by_condition"].items():
            rows.append({"role": role, "condition": cond, "n": d["n"],
                         "mean_sd": f"{d['mean']:.1f} ± {d['sd']:.1f}" if d["sd"] is not None else "",
                         "mean_s": d["mean"], "sd_s": d["sd"],
                         "median_s": d["median"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                         "ci_method": d["ci_method"]})
        for name, c in block["comparisons"].items():
            tt = c.get("reader_paired_ttest")
            if tt:
                tests.append({"role": role, "comparison": name, "method": "paired t-test on reader means",
                              "estimate": tt["mean_diff"], "unit": "s (comparison - reference)",
                              "ci_low": tt["ci_low"], "ci_high": tt["ci_high"], "statistic": tt["T"],
                              "p_val": tt["p_val"], "n": tt["n_pairs"]})
            w = c.get("reader_wilcoxon")
            if w:
                tests.append({"role": role, "comparison": name, "method": f"Wilcoxon signed-rank on reader means ({w['method']})",
                              "estimate": None, "unit": "", "ci_low": None, "ci_high": None, "statistic": w["V"],
                              "p_val": w["p_val"], "n": w["n"]})
            m = c.get("mixed_model", {})
            if "ratio" in m:
                tests.append({"role": role, "comparison": name,
                              "method": "mixed model log(duration), reader, reader x condition, case" + (" (case subsample)" if m["subsampled"] else ""),
                              "estimate": m["ratio"], "unit": "ratio of geometric means", "ci_low": m["ci_low"],
                              "ci_high": m["ci_high"], "statistic": m["t"], "p_val": m["p_val"], "n": m["n_reads"]})
            b = c["two_way_bootstrap"]
            tests.append({"role": role, "comparison": name, "method": "two-way (reader x case) bootstrap",
                          "estimate": b["ratio"], "unit": "ratio of geometric means", "ci_low": b["ci_low"],
                          "ci_high": b["ci_high"], "statistic": None, "p_val": None, "n": b["n_reads"]})
    t["duration"] = pd.DataFrame(rows)
    t["duration_tests"] = pd.DataFrame(tests)
    t["edit_reasons"] = pd.DataFrame([
        {"role": role, "draft_source": src, "reason": reason, "count": s["count"], "n": d["n"], "share": s["share"],
         "ci_low": s["ci_low"], "ci_high": s["ci_high"]}
        for role, by_src in results.get("edit_reasons", {}).items() for src, d in by_src.items()
        for reason, s in d["shares"].items()])
    t["no_edit_mcnemar"] = pd.DataFrame([{"role": role, **{k: v for k, v in r.items() if not k.endswith("_label")}}
                                         for role, r in results.get("no_edit_mcnemar", {}).items()])
    for key in ("likert", "reasoning"):
        rows, tests = [], []
        for item, block in results.get(key, {}).items():
            for role, by_src in block.items():
                for src, d in by_src.items():
                    if src == "model_vs_reader_by_reader":
                        w = d.get("wilcoxon") or {}
                        tests.append({"item": item, "role": role, "test": "Wilcoxon model vs reader drafts, reader means",
                                      "mean_diff": w.get("mean_diff"), "V": w.get("V"), "p_val": w.get("p_val"),
                                      "n": d["n_readers_paired"], "method": w.get("method"),
                                      "zero_method": w.get("zero_method")})
                        continue
                    w = d["wilcoxon_vs_neutral"]
                    rows.append({"item": item, "role": role, "source": src, "n": d["n"], "mean": d["mean"],
                                 "sd": d["sd"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                                 "wilcoxon_V_vs_0": w["V"], "p_val_vs_0": w["p_val"], "n_zero": w["n_zero"]})
        t[key] = pd.DataFrame(rows)
        if key == "likert":
            t["likert_tests"] = pd.DataFrame(tests)
    pref = results.get("preference", {})
    if pref:
        rows = [{"preferred_source": k, **v} for k, v in pref["shares"].items()]
        st, pe, rl = pref["sign_test_model_vs_reader"], pref["position_effect"], pref["reader_level"]
        rows.append({"preferred_source": "sign test model vs reader (non-ties)", "count": st["n_positive"],
                     "share": st["share_positive"], "ci_low": st["ci_low"], "ci_high": st["ci_high"], "p_val": st["p_val"]})
        rows.append({"preferred_source": "position A wins (non-ties)", "count": pe["n_positive"],
                     "share": pe["share_positive"], "ci_low": pe["ci_low"], "ci_high": pe["ci_high"], "p_val": pe["p_val"]})
        rows.append({"preferred_source": "reader-level net model share (Wilcoxon)", "count": rl["n_readers"],
                     "share": rl["mean_net_model_share"], "p_val": rl["p_val"]})
        t["preference"] = pd.DataFrame(rows)
    icc_rows = []
    for item, d in results.get("icc", {}).get("items", {}).items():
        if "error" in d:
            icc_rows.append({"item": item, "type": "-", "note": d["error"]})
            continue
        for typ in ("ICC1", "ICC1k"):
            icc_rows.append({"item": item, "raters": "all roles", "type": typ, **d[typ], "k0": d["k0"],
                             "n_targets": d["n_targets"]})
        for role, r in d.get("by_role", {}).items():
            if "error" not in r:
                icc_rows.append({"item": item, "raters": role, "type": "ICC1", **r["ICC1"], "k0": r["k0"],
                                 "n_targets": r["n_targets"]})
        for typ, v in d.get("shrout_fleiss", {}).items():
            if typ not in ("ICC1", "ICC1k"):
                icc_rows.append({"item": item, "type": typ, **v})
    t["icc"] = pd.DataFrame(icc_rows)
    t["edit_metrics"] = pd.DataFrame([
        {"role": role, "draft_source": src, "n": d["edit_chars"]["n"], "edit_chars_mean": d["edit_chars"]["mean"],
         "edit_chars_median": d["edit_chars"]["median"], "edit_words_mean": d["edit_words"]["mean"],
         "edit_words_median": d["edit_words"]["median"], "unchanged_share": d["unchanged"]["share"],
         "unchanged_ci_low": d["unchanged"]["ci_low"], "unchanged_ci_high": d["unchanged"]["ci_high"]}
        for role, by_src in results.get("edit_metrics", {}).items() for src, d in by_src.items()])
    return t
