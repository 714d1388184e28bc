"""Flatten the nested results into the report's tables: pre-specified endpoints first, then the paper's per-read numbers and the exploratory MRMC analyses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats.mrmc import CONCLUSION_LABELS, CONCLUSIONS

UNITS = {"ratio": "ratio (comparison / reference)", "difference": "difference (comparison - reference)",
         "mean": "mean"}


def _ci(d: dict) -> tuple:
    return d.get("ci_low"), d.get("ci_high")


def _endpoint_rows(results: dict) -> list[dict]:
    rows = []
    for r in results.get("endpoints", []):
        lo, hi = _ci(r)
        rows.append({"family": r["family"], "endpoint": r["name"], "what": r["description"],
                     "estimate": r.get("estimate"), "scale": UNITS.get(r.get("scale"), ""), "ci_low": lo, "ci_high": hi,
                     "df": r.get("df"), "p_val": r.get("p_val"),
                     "p_adjusted": r.get("p_adjusted") if r["family"] == "secondary" else None,
                     "significant": {True: "yes", False: "no"}.get(r.get("significant"), ""),
                     "n_readers": r.get("n_readers"), "n_cases": r.get("n_cases"), "n_reads": r.get("n_reads"),
                     "note": r.get("error") or r.get("note") or ""})
    return rows


def _conclusion_rows(results: dict) -> list[dict]:
    rows = []
    for r in results.get("endpoints", []):
        digest = r.get("or")
        if not digest:
            continue
        for c in CONCLUSIONS:
            d = digest["conclusions"][c]
            rows.append({"endpoint": r["name"], "conclusion": CONCLUSION_LABELS[c],
                         "pre_specified": "yes" if c == r["conclusion"] else "", "estimate": d["estimate"],
                         "ci_low": d["ci_low"], "ci_high": d["ci_high"], "df": d["df"], "p_val": d["p_val"],
                         "note": d["note"]})
    return rows


def _variance_rows(results: dict) -> list[dict]:
    rows = []
    for r in results.get("endpoints", []):
        if r.get("or"):
            vc = r["or"]["variance_components"]
            rows.append({"endpoint": r["name"], "design": r["or"]["design"], **{k: vc.get(k) for k in (
                "reader", "test_x_reader", "error", "cov1", "cov2", "cov3")}})
        elif r.get("mixed_model"):
            m = r["mixed_model"]
            rows.append({"endpoint": r["name"], "design": "mixed model: " + m["model"],
                         "reader": m["var_reader"], "test_x_reader": m["var_reader_condition"],
                         "error": m["var_residual"], "case": m["var_case"], "case_x_condition": m["var_case_condition"]})
    return rows


def _per_reader_rows(endpoint: dict) -> list[dict]:
    digest = endpoint.get("or") or {}
    if not digest or len(digest["levels"]) != 2:
        return []
    first, second = digest["levels"]
    by = {}
    for row in digest["readers"]:
        by.setdefault(row["reader"], {})[row["test"]] = row
    rows = []
    for d in digest["reader_differences"]:
        cells = by.get(d["reader"], {})
        rows.append({"reader": d["reader"], f"{second}": cells.get(second, {}).get("estimate"),
                     f"n_{second}": cells.get(second, {}).get("n_cases"), f"{first}": cells.get(first, {}).get("estimate"),
                     f"n_{first}": cells.get(first, {}).get("n_cases"),
                     "estimate": d["estimate"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "p_val": d["p_val"]})
    return rows


def _mrmc_rows(results: dict) -> list[dict]:
    rows = []
    m = results.get("mrmc", {})

    def add(block_name, role, key, digest):
        if not digest:
            return
        if "error" in digest:
            rows.append({"block": block_name, "role": role, "what": digest.get("label") or key, "note": digest["error"]})
            return
        d = digest["conclusions"]["random_readers_random_cases"]
        f = digest["conclusions"]["fixed_readers_random_cases"]
        rows.append({"block": block_name, "role": role, "what": digest["label"], "estimate": d["estimate"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"], "df": d["df"], "p_val": d["p_val"],
                     "fixed_readers_ci_low": f["ci_low"], "fixed_readers_ci_high": f["ci_high"],
                     "fixed_readers_p_val": f["p_val"], "n_readers": digest["n_readers"],
                     "n_cases": digest["n_cases"], "n_reads": digest["n_reads"], "note": d["note"]})

    for role, block in m.get("duration", {}).items():
        for key, digest in block.items():
            add("duration", role, key, digest)
    for role, by in m.get("edit_reasons", {}).items():
        for reason, digest in by.items():
            add("edit reason", role, reason, digest)
    for key in ("likert", "reasoning"):
        for item, by_role in m.get(key, {}).items():
            for role, block in by_role.items():
                for sub, digest in block.items():
                    add(key, role, f"{item} {sub}", digest)
    for item, by_role in m.get("choices", {}).items():
        for role, block in by_role.items():
            for value, digest in block.items():
                add("choice", role, f"{item} = {value}", digest)
    for role, block in m.get("preference", {}).items():
        add("preference", role, "model - reader", block.get("model_minus_reader"))
        for src, digest in block.get("shares", {}).items():
            add("preference", role, src, digest)
    for pair, by_role in m.get("text_metrics", {}).items():
        for role, by_metric in by_role.items():
            for metric, block in by_metric.items():
                for key, digest in block.items():
                    add(f"text {pair}", role, f"{metric} {key}", digest)
    return rows


def _text_metric_rows(results: dict) -> tuple[list[dict], list[dict]]:
    """Report-text metrics: each condition's per-read summary beside its random-reader mean and CI (per-draft
    bootstrap for drafts against the reference), and the model-draft condition minus each other condition."""
    tm = results.get("text_metrics") or {}
    rr = results.get("mrmc", {}).get("text_metrics", {})
    rows, diffs = [], []
    for pair in ("draft_final", "final_reference"):
        for role, by_cond in tm.get(pair, {}).items():
            for cond, by_metric in by_cond.items():
                for metric in ("edit_chars", "edit_words", "bleu", "rouge_l"):
                    d = by_metric[metric]
                    digest = rr.get(pair, {}).get(role, {}).get(metric, {}).get(cond) or {}
                    mean = (digest.get("means") or {}).get(cond, {}).get("random_readers_random_cases", {})
                    rows.append({"pair": pair, "role": role, "condition": cond, "metric": metric, "n": d["n"],
                                 "mean": d["mean"], "sd": d["sd"], "median": d["median"],
                                 "rr_mean": mean.get("estimate"), "ci_low": mean.get("ci_low"),
                                 "ci_high": mean.get("ci_high"), "interval": "random readers (OR/Hillis)",
                                 "corpus_bleu": (by_metric.get("corpus_bleu") or {}).get("bleu") if metric == "bleu"
                                 else None, "note": digest.get("error", "")})
        for role, by_metric in rr.get(pair, {}).items():
            for metric, block in by_metric.items():
                for key, digest in block.items():
                    if "_minus_" not in key:
                        continue
                    if "error" in digest:
                        diffs.append({"pair": pair, "role": role, "metric": metric,
                                      "comparison": key.replace("_minus_", " - "), "note": digest["error"]})
                        continue
                    c = digest["conclusions"]["random_readers_random_cases"]
                    diffs.append({"pair": pair, "role": role, "metric": metric,
                                  "comparison": key.replace("_minus_", " - "), "estimate": c["estimate"],
                                  "ci_low": c["ci_low"], "ci_high": c["ci_high"], "df": c["df"], "p_val": c["p_val"],
                                  "n_readers": digest["n_readers"], "n_cases": digest["n_cases"],
                                  "n_reads": digest["n_reads"], "note": c["note"]})
    for src, by_metric in tm.get("draft_reference", {}).items():
        for metric in ("edit_chars", "edit_words", "bleu", "rouge_l"):
            d = by_metric[metric]
            rows.append({"pair": "draft_reference", "role": "", "condition": f"{src} draft", "metric": metric,
                         "n": d["n"], "mean": d["mean"], "sd": d["sd"], "median": d["median"],
                         "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                         "interval": "per-draft bootstrap (cases; no reader involved)",
                         "corpus_bleu": (by_metric.get("corpus_bleu") or {}).get("bleu") if metric == "bleu" else None})
    return rows, diffs


def _rrrc_mean(results, path, test):
    """The random-reader mean and CI of one condition from the MRMC block, or (None, None, None)."""
    node = results.get("mrmc", {})
    for key in path:
        node = (node or {}).get(key)
    if not node or "error" in node:
        return None, None, None
    mean = node["means"].get(test, {}).get("random_readers_random_cases", {})
    return mean.get("estimate"), mean.get("ci_low"), mean.get("ci_high")


FOM_LABELS = {"auc": "AUC", "sensitivity": "sensitivity", "specificity": "specificity"}
RRRC, FRRC, RRFC = CONCLUSIONS


def _by_conclusion(rows: list[dict], keys: tuple[str, ...]) -> dict:
    """Rows of one analysis, keyed by ``keys`` and then by conclusion."""
    out: dict = {}
    for r in rows:
        out.setdefault(tuple(r.get(k) for k in keys), {})[r["conclusion"]] = r
    return out


def _detection_tables(det: dict) -> dict[str, pd.DataFrame]:
    """The detect task's tables: findings, each condition, aided minus unaided, the model beside the readers."""
    if not det:
        return {}
    t = {}
    t["detection_findings"] = pd.DataFrame([
        {"finding": f["finding"], "n_cases": f["n_cases"], "n_positive": f["n_positive"],
         "n_negative": f["n_negative"], "n_reference_unknown": f["n_unknown"],
         "in_mean_over_findings": "yes" if f["estimable"] else "no",
         "not_estimable": "; ".join(f"{FOM_LABELS[k]}: {v}" for k, v in f["reasons"].items()
                                    if k != "auc" or len(f["reasons"]) == 1)} for f in det["findings"]])
    rows = []
    for (scope, fom, cond), by in _by_conclusion(det["conditions"], ("scope", "fom", "condition")).items():
        r, f = by.get(RRRC, {}), by.get(FRRC, {})
        rows.append({"scope": scope, "fom": FOM_LABELS[fom], "condition": cond, "estimate": r.get("estimate"),
                     "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high"), "df": r.get("df"),
                     "fixed_readers_ci_low": f.get("ci_low"), "fixed_readers_ci_high": f.get("ci_high"),
                     "n_readers": r.get("n_readers"), "n_cases": r.get("n_cases"), "note": r.get("note") or ""})
    t["detection_conditions"] = pd.DataFrame(rows)
    rows = []
    for (scope, fom, first, second), by in _by_conclusion(det["differences"],
                                                          ("scope", "fom", "first", "second")).items():
        r, f, c = by.get(RRRC, {}), by.get(FRRC, {}), by.get(RRFC, {})
        rows.append({"scope": scope, "fom": FOM_LABELS[fom], "comparison": f"{first} - {second}",
                     "estimate": r.get("estimate"), "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high"),
                     "df": r.get("df"), "p_val": r.get("p_val"), "fixed_readers_ci_low": f.get("ci_low"),
                     "fixed_readers_ci_high": f.get("ci_high"), "fixed_readers_p_val": f.get("p_val"),
                     "fixed_cases_p_val": c.get("p_val"), "n_readers": r.get("n_readers"),
                     "n_cases": r.get("n_cases"),
                     "note": "; ".join(x for x in (r.get("note"), r.get("readers_dropped")) if x)})
    t["detection_differences"] = pd.DataFrame(rows)
    readers = {(r["scope"], r["fom"], r["condition"]): r for r in det["conditions"] if r["conclusion"] == RRRC}
    vs = _by_conclusion(det["readers_vs_model"], ("scope", "fom", "condition"))
    rows = []
    for m in det["model"]:
        row = {"scope": m["scope"], "fom": FOM_LABELS[m["fom"]], "model": m["estimate"], "model_ci_low": m["ci_low"],
               "model_ci_high": m["ci_high"], "model_n_cases": m["n_cases"]}
        for (scope, fom, cond), by in vs.items():
            if (scope, fom) != (m["scope"], m["fom"]):
                continue
            r = by.get(RRRC, {})
            rows.append({**row, "condition": cond, "readers": readers.get((scope, fom, cond), {}).get("estimate"),
                         "readers_minus_model": r.get("estimate"), "ci_low": r.get("ci_low"),
                         "ci_high": r.get("ci_high"), "df": r.get("df"), "p_val": r.get("p_val"),
                         "fixed_readers_p_val": by.get(FRRC, {}).get("p_val"), "note": r.get("note") or m["note"]})
        if not any(k[:2] == (m["scope"], m["fom"]) for k in vs):
            rows.append({**row, "note": m["note"]})
    t["detection_model"] = pd.DataFrame(rows)
    t["detection_readers"] = pd.DataFrame([
        {"scope": r["scope"], "fom": FOM_LABELS[r["fom"]], "condition": r["condition"], "reader": r["reader"],
         "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n_cases": r["n_cases"]}
        for r in det["readers"]])
    t["detection_not_estimable"] = pd.DataFrame(
        [{"scope": r["scope"], "fom": FOM_LABELS.get(r["fom"], r["fom"]), "analysis": r["analysis"],
          "reason": r["reason"]} for r in det["not_estimable"]], columns=["scope", "fom", "analysis", "reason"])
    return t


def build_tables(results: dict) -> dict[str, pd.DataFrame]:
    """Build the report tables from a results dict.

    Parameters
    ----------
    results : dict
        ``AnalysisResult.results``.

    Returns
    -------
    dict of str to pandas.DataFrame
        Pre-specified: ``primary``, ``endpoints``, ``conclusions`` (random- and
        fixed-reader side by side), ``variance_components``, ``per_reader`` (the
        primary endpoint). Per read, as in the paper, with random-reader CIs:
        ``duration``, ``duration_tests``, ``edit_reasons``, ``no_edit_mcnemar``,
        ``likert``, ``likert_tests``, ``reasoning``, ``preference``, ``icc``,
        ``edit_metrics``. Report-text surface metrics: ``text_metrics`` (per read and random-reader mean by pair,
        role and condition; drafts against the reference per draft) and ``text_metrics_differences`` (the
        model-draft condition minus each other condition, random readers). Exploratory: ``mrmc`` (OR/Hillis for
        every endpoint). Detection (the detect task, when the study has it): ``detection_findings``,
        ``detection_conditions``, ``detection_differences`` (aided minus unaided, the three conclusions),
        ``detection_model`` (the model alone beside the readers, and readers minus the model),
        ``detection_readers`` (per reader), ``detection_not_estimable``.
    """
    t: dict[str, pd.DataFrame] = {}
    endpoint_rows = _endpoint_rows(results)
    t["primary"] = pd.DataFrame([r for r in endpoint_rows if r["family"] == "primary"])
    t["endpoints"] = pd.DataFrame(endpoint_rows)
    t["conclusions"] = pd.DataFrame(_conclusion_rows(results))
    t["variance_components"] = pd.DataFrame(_variance_rows(results))
    primary = next((r for r in results.get("endpoints", []) if r["family"] == "primary"), {})
    t["per_reader"] = pd.DataFrame(_per_reader_rows(primary))

    rows, tests = [], []
    for role, block in results.get("duration", {}).items():
        for cond, d in block["by_condition"].items():
            gm, lo, hi = _rrrc_mean(results, ("duration", role, f"geometric_mean.{cond}"), cond)
            rows.append({"role": role, "condition": cond, "n": d["n"],
                         "mean_sd": f"{d['mean']:.1f} ± {d['sd']:.1f}" if d["sd"] is not None else "",
                         "median_s": d["median"], "q1_s": d["q1"], "q3_s": d["q3"],
                         "geometric_mean_s": gm, "ci_low": lo, "ci_high": hi})
        for name, c in block["comparisons"].items():
            o = c.get("or_hillis") or {}
            if o and "error" not in o:
                rr = o["conclusions"]["random_readers_random_cases"]
                fr = o["conclusions"]["fixed_readers_random_cases"]
                tests.append({"role": role, "comparison": name, "method": "OR/Hillis, mean log duration (random readers)",
                              "estimate": rr["estimate"], "unit": "time ratio", "ci_low": rr["ci_low"],
                              "ci_high": rr["ci_high"], "statistic": rr["statistic"], "df": rr["df"],
                              "p_val": rr["p_val"], "n": o["n_reads"]})
                tests.append({"role": role, "comparison": name, "method": "OR, fixed readers (these readers only)",
                              "estimate": fr["estimate"], "unit": "time ratio", "ci_low": fr["ci_low"],
                              "ci_high": fr["ci_high"], "statistic": fr["statistic"], "df": None,
                              "p_val": fr["p_val"], "n": o["n_reads"]})
            m = c.get("mixed_model", {})
            if "ratio" in m:
                tests.append({"role": role, "comparison": name,
                              "method": f"mixed model, {m['model']}, Satterthwaite df"
                                        + (" (case subsample)" if m["subsampled"] else ""),
                              "estimate": m["ratio"], "unit": "time ratio", "ci_low": m["ci_low"],
                              "ci_high": m["ci_high"], "statistic": m["t"], "df": m["df"], "p_val": m["p_val"],
                              "n": m["n_reads"]})
            elif m.get("error"):
                tests.append({"role": role, "comparison": name, "method": "mixed model", "note": m["error"]})
            tt = c.get("reader_paired_ttest")
            if tt:
                tests.append({"role": role, "comparison": name, "method": "paired t-test on reader means",
                              "estimate": tt["mean_diff"], "unit": "s (comparison - reference)",
                              "ci_low": tt["ci_low"], "ci_high": tt["ci_high"], "statistic": tt["T"],
                              "df": tt["dof"], "p_val": tt["p_val"], "n": tt["n_pairs"]})
            w = c.get("reader_wilcoxon")
            if w:
                tests.append({"role": role, "comparison": name,
                              "method": f"Wilcoxon signed-rank on reader means ({w['method']})", "statistic": w["V"],
                              "p_val": w["p_val"], "n": w["n"], "min_attainable_p": w.get("min_attainable_p")})
            b = c["two_way_bootstrap"]
            tests.append({"role": role, "comparison": name, "method": "two-way (reader x case) bootstrap",
                          "estimate": b["ratio"], "unit": "time ratio", "ci_low": b["ci_low"],
                          "ci_high": b["ci_high"], "n": b["n_reads"]})
    t["duration"] = pd.DataFrame(rows)
    t["duration_tests"] = pd.DataFrame(tests)
    sites = results.get("sites") or {}
    if sites:
        t["sites"] = pd.DataFrame(sites["counts"])
        strata = pd.DataFrame(sites["strata"])
        effects = []
        for role, block in results.get("duration", {}).items():
            for name, c in block["comparisons"].items():
                for site, estimate in (c.get("mixed_model") or {}).get("site_effects", {}).items():
                    effects.append({"site": site, "role": role, "comparison": name,
                                    "mixed_model_site_effect_ratio": float(np.exp(estimate))})
        ratios = pd.DataFrame(sites["ratios"])
        t["site_strata"] = strata
        t["site_ratios"] = (ratios.merge(pd.DataFrame(effects), on=["site", "role", "comparison"], how="left")
                            if len(effects) and len(ratios) else ratios)

    er_rows = []
    for role, by_src in results.get("edit_reasons", {}).items():
        for src, d in by_src.items():
            for reason, s in d["shares"].items():
                _, lo, hi = _rrrc_mean(results, ("edit_reasons", role, reason), f"edit_{src}")
                er_rows.append({"role": role, "draft_source": src, "reason": reason, "count": s["count"], "n": d["n"],
                                "share": s["share"], "ci_low": lo, "ci_high": hi})
    t["edit_reasons"] = pd.DataFrame(er_rows)
    mc_rows = []
    for role, r in results.get("no_edit_mcnemar", {}).items():
        row = {"role": role, "b": r["b"], "c": r["c"], "n_pairs": r["n_pairs"], "pairing": r["pairing"],
               "method": "exact binomial" if r["method"] == "exact" else "chi-squared, continuity corrected",
               "p_val": r["p_val"], "share_no_edit_model": r["share_no_edit_model"],
               "share_no_edit_reader": r["share_no_edit_reader"]}
        if r["method"] != "exact":
            row["chi2"] = r["chi2"]
        mc_rows.append(row)
    t["no_edit_mcnemar"] = pd.DataFrame(mc_rows)
    for key in ("likert", "reasoning"):
        rows, tests = [], []
        for item, block in results.get(key, {}).items():
            for role, by_src in block.items():
                for src, d in by_src.items():
                    if src == "model_vs_reader_by_reader":
                        w = d.get("wilcoxon") or {}
                        diff = (results.get("mrmc", {}).get(key, {}).get(item, {}).get(role, {}).get("difference")
                                or {})
                        rr = (diff.get("conclusions") or {}).get("random_readers_random_cases", {})
                        tests.append({"item": item, "role": role, "test": "OR/Hillis model - reader draft (random readers)",
                                      "estimate": rr.get("estimate"), "ci_low": rr.get("ci_low"),
                                      "ci_high": rr.get("ci_high"), "df": rr.get("df"), "p_val": rr.get("p_val"),
                                      "n": diff.get("n_readers")})
                        tests.append({"item": item, "role": role, "test": "Wilcoxon model vs reader drafts, reader means",
                                      "estimate": w.get("mean_diff"), "statistic": w.get("V"), "p_val": w.get("p_val"),
                                      "n": d["n_readers_paired"], "min_attainable_p": w.get("min_attainable_p")})
                        continue
                    cond = f"edit_{src}" if src in ("model", "reader") else src
                    _, lo, hi = _rrrc_mean(results, (key, item, role, cond), cond)
                    w = d["wilcoxon_vs_neutral"]
                    rows.append({"item": item, "role": role, "source": src, "n": d["n"], "mean": d["mean"],
                                 "sd": d["sd"], "ci_low": lo, "ci_high": hi, "neutral": w.get("neutral", 0.0),
                                 "wilcoxon_V_vs_neutral": w["V"], "p_val_vs_neutral": w["p_val"],
                                 "n_at_neutral": w["n_zero"]})
        t[key] = pd.DataFrame(rows)
        if key == "likert":
            t["likert_tests"] = pd.DataFrame(tests)
    choice_rows = []
    for item, by_role in results.get("choices", {}).items():
        for role, by_src in by_role.items():
            for src, d in by_src.items():
                cond = f"edit_{src}" if src in ("model", "reader") else src
                for value, v in d["shares"].items():
                    _, lo, hi = _rrrc_mean(results, ("choices", item, role, value), cond)
                    choice_rows.append({"item": item, "role": role, "source": src, "option": value,
                                        "label": v.get("label", ""), "count": v["count"], "n": d["n"],
                                        "share": v["share"], "ci_low": lo, "ci_high": hi})
    t["choices"] = pd.DataFrame(choice_rows)
    t["questions"] = pd.DataFrame([{"question": key, "kind": q["kind"], "scale": q["scale"],
                                    "answers": q["n_answers"], "analysed in": q["analysed_in"]}
                                   for key, q in results.get("questions", {}).items()])
    pref = results.get("preference", {})
    if pref:
        rows = []
        for src, v in pref["shares"].items():
            role = next(iter(results.get("mrmc", {}).get("preference", {})), None)
            _, lo, hi = _rrrc_mean(results, ("preference", role, "shares", src), "compare") if role else (None,) * 3
            rows.append({"preferred_source": src, "count": v["count"], "n": pref["n"], "share": v["share"],
                         "ci_low": lo, "ci_high": hi})
        st, pe, rl = pref["sign_test_model_vs_reader"], pref["position_effect"], pref["reader_level"]
        rows.append({"preferred_source": "sign test model vs reader (non-ties, per read)", "count": st["n_positive"],
                     "n": st["n"], "share": st["share_positive"], "p_val": st["p_val"]})
        rows.append({"preferred_source": "position A wins (non-ties)", "count": pe["n_positive"], "n": pe["n"],
                     "share": pe["share_positive"], "p_val": pe["p_val"]})
        rows.append({"preferred_source": "reader-level net model share (Wilcoxon)", "count": rl["n_readers"],
                     "share": rl["mean_net_model_share"], "p_val": rl["p_val"]})
        t["preference"] = pd.DataFrame(rows)
    icc_rows = []
    for item, d in results.get("icc", {}).get("items", {}).items():
        if "error" in d:
            icc_rows.append({"item": item, "type": "-", "note": d["error"]})
            continue
        for typ, v in d.get("two_way", {}).items():
            if isinstance(v, dict) and "ICC" in v:
                icc_rows.append({"item": item, "raters": "all roles", "type": typ, "ICC": v["ICC"],
                                 "ci_low": v["ci_low"], "ci_high": v["ci_high"], "n_targets": d["n_targets"],
                                 "note": d["two_way"].get("note", "")})
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
    rows, diffs = _text_metric_rows(results)
    t["text_metrics"] = pd.DataFrame(rows)
    t["text_metrics_differences"] = pd.DataFrame(diffs)
    # The errors readers annotated in the drafts (ReXVal), when the design asked for them.
    errors = results.get("draft_errors") or {}
    for key in ("by_source", "comparisons", "by_category", "by_edit_reason", "by_time"):
        if errors:
            t[f"draft_errors_{key}"] = pd.DataFrame(errors.get(key, []))
    t["mrmc"] = pd.DataFrame(_mrmc_rows(results))
    t.update(_detection_tables(results.get("detection") or {}))
    return t
