"""Run the whole reader-study analysis on validated tables: per-read (paper) numbers plus clustering-aware ones."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.defaults import study_seed
from analysis.detection import analyse_detection, detection_reads
from analysis.draft_errors import analyse_draft_errors, errors_per_read
from analysis.endpoints import analyse_endpoint, endpoint_frame, or_digest
from analysis.plan import AnalysisPlan, Endpoint, plan_from_meta
from analysis.stats.agreement import icc_crossed, icc_oneway, intraclass_corr
from analysis.stats.bootstrap import bootstrap_ci, two_way_bootstrap_ratio
from analysis.stats.descriptive import describe
from analysis.stats.mixed import DEFAULT_MAX_READS, mixed_model_ratio
from analysis.stats.multiplicity import adjust_pvalues
from analysis.stats.paired import pair_by_key, paired_ttest, wilcoxon_signed_rank
from analysis.stats.proportions import mcnemar_test, proportion_shares, sign_test, wilson_ci
from analysis.stats.text import edit_metrics
from analysis.tables import COUNTED_STATUSES, DEDICATED_CHOICES, AnalysisInputError, ItemScale, StudyTables
from analysis.text_metrics import summarise_text_metrics, text_metrics_table

RESULTS_VERSION = 3
EDIT_REASONS = ("none", "content", "style", "both")
# The CheXOne items, for the paper's figure panels; the analysis itself takes every question the export names.
LIKERT_ITEMS = ("indication_applicability", "writing_efficiency", "interpretation_efficiency")
REASONING_ITEMS = ("factuality", "causal_support")
# (reference, comparison) condition pairs for durations; found by task/draft_source columns.
DURATION_COMPARISONS = {"write_vs_edit_model": ("write", "edit_model"),
                        "edit_reader_vs_edit_model": ("edit_reader", "edit_model")}
ICC_CHOICE_REASON = (
    "Different readers rate different drafts, but the design is connected (raters and drafts are linked through "
    "shared ratings), so reader and draft variances are separable: the two-way random-effects ICC(A,1) "
    "(absolute agreement of single readers) and ICC(A,k) (of the mean of k0 readers) are estimated from "
    "crossed REML variance components, with logit-scale Wald intervals. For an item whose design is not "
    "connected the one-way ICC(1) and ICC(1,k) are used instead, which ignore systematic reader differences. "
    "The one-way forms are reported for every item for comparison, and the six Shrout-Fleiss forms when the "
    "ratings happen to be fully crossed.")


@dataclass
class AnalysisResult:
    """Everything the report shows.

    Attributes
    ----------
    results : dict
        JSON-serialisable nested dict; keys documented in ``docs/analysis.md``.
    tables : dict of str to pandas.DataFrame
        Report tables (estimates, CIs, p-values).
    figures : dict of str to plotly.graph_objects.Figure
        The paper's reader-study panels.
    methods : str
        Methods paragraph written from the actual design, counts and tests.
    text_metrics : pandas.DataFrame or None
        The per-read report-text metrics (:func:`analysis.text_metrics.text_metrics_table`), written as
        ``text_metrics.csv`` beside the report (without the texts themselves).
    """

    results: dict
    tables: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    methods: str = ""
    text_metrics: pd.DataFrame | None = None


def _clean(obj):
    """Make nested results JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is pd.NA or obj is None:
        return None
    return obj


def _with_ci(values, seed: int, n_boot: int) -> dict:
    d = describe(values)
    if d["n"]:
        boot = bootstrap_ci(values, "mean", n_boot=n_boot, seed=seed)
        d.update(ci_low=boot["ci_low"], ci_high=boot["ci_high"], ci_method=boot["ci_method"])
    else:
        d.update(ci_low=float("nan"), ci_high=float("nan"), ci_method="none")
    return d


def run_analysis(tables: StudyTables, *, seed: int | None = None, n_boot: int = 1000,
                 require_all_arms: bool = True, mixed_max_reads: int | None = DEFAULT_MAX_READS,
                 plan: AnalysisPlan | None = None) -> AnalysisResult:
    """Compute every reader-study statistic, the report tables, figures and methods text.

    Parameters
    ----------
    tables : StudyTables
        Validated export (:func:`analysis.load_tables`).
    seed : int, optional
        Seed of every resample (bootstrap, mixed-model case subsample); default the study's own seed from
        the export (:func:`analysis.defaults.study_seed`), so the figures reproduce from the export alone.
    n_boot : int
        Bootstrap resamples (1,000 by default).
    require_all_arms : bool
        Refuse (``AnalysisInputError``) an arm with assignments but no counted read;
        set False to analyse a study in progress.
    mixed_max_reads : int or None
        Largest data set fitted by the mixed model before subsampling cases.
    plan : AnalysisPlan, optional
        The pre-specified plan; default: the one the export carries
        (``export_meta.json``, checked against its SHA-256), else the shipped default,
        stated as such in the report.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    AnalysisInputError
        No counted reads, an empty arm, a reader rating the same draft twice, or an
        analysis plan that does not parse or does not match its hash.
    """
    if seed is None:
        seed = study_seed(tables.meta)
    reads = tables.counted_reads()
    if reads.empty:
        raise AnalysisInputError(f"no assignment has status in {COUNTED_STATUSES}: nothing to analyse")
    arms_all = tables.assignments.groupby("arm").size()
    arms_counted = reads.groupby("arm").size().reindex(arms_all.index, fill_value=0)
    empty = arms_counted[arms_counted == 0].index.tolist()
    if empty and require_all_arms:
        raise AnalysisInputError(
            f"arm(s) with no submitted/completed read: {', '.join(map(str, empty))}; "
            "pass require_all_arms=False to analyse a study in progress")
    if plan is None:
        try:
            plan = plan_from_meta(tables.meta)
        except ValueError as exc:
            raise AnalysisInputError(str(exc)) from None
    reads = edit_metrics(reads)
    missing_duration = reads["duration_s"].isna().sum()
    # Zero durations are the one documented exclusion (validation lists them): left out of
    # every time analysis, counted in the design block and the report.
    zero_ids = set(tables.exclusions.get("zero_duration", []))
    timed = reads.loc[~reads["assignment_id"].isin(zero_ids)]
    answers = tables.answers.merge(
        reads[["assignment_id", "reader_id", "reader_role", "case_id", "task", "draft_source", "draft_id",
               "condition"]], on="assignment_id", how="inner")

    results: dict = {"results_version": RESULTS_VERSION, "seed": seed, "n_boot": n_boot}
    results["design"] = _design(tables, reads, arms_all, arms_counted, int(missing_duration))
    results["design"]["n_reads_zero_duration_excluded"] = len(zero_ids)
    results["design"]["zero_duration_assignment_ids"] = sorted(zero_ids)
    mixed_cache: dict = {}
    results["duration"] = _durations(timed, seed, n_boot, mixed_max_reads, mixed_cache)
    # Each annotated read's clinically significant errors, for a significant_errors endpoint of the plan.
    counts = errors_per_read(reads, tables.draft_errors)[["assignment_id", "n_significant"]].rename(
        columns={"n_significant": "n_significant_errors"})
    counts["assignment_id"] = counts["assignment_id"].astype(str)
    timed = timed.merge(counts, on="assignment_id", how="left")
    results["plan"] = _plan_block(plan)
    results["endpoints"] = _endpoints(plan, timed, answers, seed, mixed_max_reads, mixed_cache, tables.scales,
                                      detection_reads(tables))
    results["multiplicity"] = _multiplicity_statement(plan, results["endpoints"])
    # Every question of the design reaches the analysis, each scored on its own scale: numeric items (Likert of
    # any length, visual-analogue) by their scores against the scale's neutral point, other choice questions by
    # the share of each option. Rating items of a reasoning review are reported under "reasoning".
    scales = tables.scales
    numeric = {k: v for k, v in scales.items() if v.numeric}
    choices = {k: v for k, v in scales.items() if v.kind == "choice" and k not in DEDICATED_CHOICES}
    results["questions"] = _questions_block(scales, answers)
    results["mrmc"] = _mrmc_blocks(timed, answers, plan.confidence, numeric, choices)
    results["edit_reasons"] = _edit_reasons(answers)
    results["no_edit_mcnemar"] = _no_edit_mcnemar(answers)
    reviewing = answers["task"].eq("rate_reasoning")
    results["likert"] = _ratings(answers.loc[~reviewing], numeric, seed, n_boot, compare_sources=True)
    results["reasoning"] = _ratings(answers.loc[reviewing], numeric, seed, n_boot, compare_sources=False)
    results["choices"] = _choices(answers, choices)
    results["preference"] = _preference(reads)
    results["icc"] = _icc(answers, numeric)
    results["edit_metrics"] = _edit_metric_summary(reads)
    # Surface metrics of the report texts: each draft against the reader's final text, and both against the
    # cohort's reference findings when it has them; per-reader OR intervals as for every other per-read endpoint.
    text_table = text_metrics_table(reads, tables.cases)
    results["text_metrics"], results["mrmc"]["text_metrics"] = summarise_text_metrics(
        text_table, confidence=plan.confidence, seed=seed, n_boot=n_boot)
    results["sites"] = _sites(reads, timed)
    # The errors readers annotated in the drafts (ReXVal), model vs reader drafts, random readers and cases.
    results["draft_errors"] = analyse_draft_errors(reads, tables.draft_errors, tables.answers)
    # The detect task: readers' AUC, sensitivity and specificity by what the AI showed, and the model alone.
    results["detection"] = analyse_detection(tables, confidence=plan.confidence)
    results["caveats"] = _caveats(results, plan)
    results["provenance"] = provenance(tables.meta)
    results = _clean(results)

    from analysis.figures import build_figures
    from analysis.methods_text import methods_paragraph
    from analysis.report_tables import build_tables

    return AnalysisResult(results=results, tables=build_tables(results), figures=build_figures(results, reads, answers),
                          methods=methods_paragraph(results), text_metrics=text_table)


# The packages whose versions can change a number of the report (statistics, resampling, tables, figures).
ANALYSIS_DEPENDENCIES = ("numpy", "scipy", "pandas", "statsmodels", "pingouin", "threadpoolctl", "plotly", "pyarrow",
                         "rapidfuzz", "sacrebleu", "rouge-score")


def provenance(meta: dict) -> dict:
    """What produced a report, for a supplement: the study's design and cohort hashes and the export's time and
    software (from ``export_meta.json``), the analysis plan's hash, and the software of the analysis itself (its
    version, Python, the platform and the version of every package a figure depends on).

    Parameters
    ----------
    meta : dict
        The export's metadata.

    Returns
    -------
    dict
        ``study_id``, ``design_sha256``, ``cohort_sha256``, ``exported_at``, ``export_software`` (the
        ``package_version`` the export recorded), ``schema_version``, ``analysis_plan_sha256``, ``analysed_at``
        (UTC, ISO 8601), ``analysis_software`` (this ``readerstudy``'s version), ``python``, ``platform`` and
        ``dependencies`` (package -> version, ``not installed`` when absent).
    """
    import platform
    import sys
    from datetime import datetime, timezone
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    analysed = datetime.now(timezone.utc)
    return {
        "study_id": meta.get("study_id"),
        # Older and simulated exports name the design's hash after the data dictionary's wording.
        "design_sha256": meta.get("design_sha256") or meta.get("design_file_hash"),
        "cohort_sha256": meta.get("cohort_sha256"),
        "exported_at": meta.get("exported_at"),
        "export_software": meta.get("package_version"),
        "schema_version": meta.get("schema_version"),
        "analysis_plan_sha256": meta.get("analysis_plan_sha256"),
        "analysed_at": analysed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{analysed.microsecond // 1000:03d}Z",
        "analysis_software": installed("readerstudy"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "dependencies": {name: installed(name) for name in ANALYSIS_DEPENDENCIES},
    }


def _design(tables, reads, arms_all, arms_counted, missing_duration) -> dict:
    by_role = reads.groupby("reader_role")
    return {
        "study_id": tables.meta.get("study_id"), "schema_version": tables.meta.get("schema_version"),
        "counted_statuses": list(COUNTED_STATUSES),
        "n_assignments": int(len(tables.assignments)), "n_reads": int(len(reads)),
        "n_reads_missing_duration": missing_duration,
        "n_readers": int(reads["reader_id"].nunique()), "n_cases": int(reads["case_id"].nunique()),
        "readers_by_role": {str(k): int(v) for k, v in by_role["reader_id"].nunique().items()},
        "reads_by_role": {str(k): int(v) for k, v in by_role.size().items()},
        "reads_by_condition": {f"{r}.{c}": int(v) for (r, c), v in
                               reads.groupby(["reader_role", "condition"]).size().items()},
        "assignments_by_arm": {str(k): int(v) for k, v in arms_all.items()},
        "reads_by_arm": {str(k): int(v) for k, v in arms_counted.items()},
        "readers_per_case": describe(reads.groupby("case_id")["reader_id"].nunique()),
    }


def _sites(reads, timed) -> dict:
    """Multi-site studies: the reads, readers and cases of each site, and each site as a stratum of the durations.

    Empty (``{}``) when the reads carry no site or one. ``strata``: per site of the case, role and condition the
    reads and the geometric mean duration; ``ratios``: per site and role each duration comparison's ratio of
    geometric means within the site (descriptive; the random-reader models adjust for the site instead, see
    ``mixed_model.site_effects``).
    """
    if "site" not in reads.columns or reads["site"].isna().all() or reads["site"].nunique() < 2:
        return {}
    with_site = reads.loc[reads["site"].notna()]
    counts = [{"site": str(site), "n_reads": int(len(g)), "n_cases": int(g["case_id"].nunique()),
               "n_readers": int(g["reader_id"].nunique()),
               "n_readers_of_site": int(with_site.loc[with_site["reader_site"].eq(site), "reader_id"].nunique())}
              for site, g in with_site.groupby("site", sort=True)]
    t = timed.loc[timed["site"].notna() & timed["duration_s"].gt(0)].dropna(subset=["duration_s"])
    strata, ratios = [], []
    for (site, role), g in t.groupby(["site", "reader_role"], sort=True):
        gm = {}
        for cond, c in g.groupby("condition", sort=True):
            gm[cond] = float(np.exp(np.log(c["duration_s"].astype(float)).mean()))
            strata.append({"site": str(site), "role": str(role), "condition": str(cond), "n_reads": int(len(c)),
                           "n_readers": int(c["reader_id"].nunique()), "geometric_mean_s": gm[cond]})
        for name, (ref, cmp_) in DURATION_COMPARISONS.items():
            if ref in gm and cmp_ in gm:
                ratios.append({"site": str(site), "role": str(role), "comparison": name,
                               "ratio": gm[cmp_] / gm[ref]})
    return {"sites": [c["site"] for c in counts], "counts": counts, "strata": strata, "ratios": ratios}


def _durations(reads, seed, n_boot, mixed_max_reads, mixed_cache) -> dict:
    out = {}
    timed = reads.dropna(subset=["duration_s"])
    for role, rr in timed.groupby("reader_role"):
        block = {"by_condition": {c: _with_ci(g["duration_s"], seed, n_boot) for c, g in rr.groupby("condition")},
                 "comparisons": {}}
        present = set(rr["condition"])
        for name, levels in DURATION_COMPARISONS.items():
            if not set(levels) <= present:
                continue
            block["comparisons"][name] = _duration_comparison(rr, levels, seed, n_boot, mixed_max_reads)
            mixed_cache[(str(role), levels)] = block["comparisons"][name]["mixed_model"]
        out[str(role)] = block
    return out


def _duration_comparison(rr, levels, seed, n_boot, mixed_max_reads) -> dict:
    ref, cmp_ = levels
    comp = {"reference": ref, "comparison": cmp_}
    paired = pair_by_key(rr, "duration_s", "condition", "reader_id", levels)
    comp["pairing"] = "reader_id (each reader's mean duration per condition)"
    comp["n_readers_paired"] = int(len(paired))
    comp["n_readers_unpaired_dropped"] = int(paired.attrs["n_dropped"])
    if len(paired) >= 2:
        tt = paired_ttest(paired[cmp_], paired[ref]).iloc[0].to_dict()
        tt["diff_bootstrap"] = bootstrap_ci(paired[cmp_] - paired[ref], "mean", n_boot=n_boot, seed=seed)
        comp["reader_paired_ttest"] = tt
        comp["reader_wilcoxon"] = _with_min_p(wilcoxon_signed_rank(paired[cmp_], paired[ref], zero_method="wilcox",
                                                                   method="auto").iloc[0].to_dict())
    else:
        comp["reader_paired_ttest"] = None
        comp["reader_wilcoxon"] = None
    try:
        comp["mixed_model"] = mixed_model_ratio(rr, "duration_s", "condition", levels,
                                                  max_reads=mixed_max_reads, seed=seed)
    except (ValueError, np.linalg.LinAlgError) as exc:
        comp["mixed_model"] = {"error": str(exc)}
    comp["or_hillis"] = _or_or_error(rr.loc[rr["duration_s"] > 0].assign(
        value=lambda d: np.log(d["duration_s"].astype(float))), (cmp_, ref), ratio=True,
        label=f"mean log duration, {cmp_} vs {ref}")
    comp["two_way_bootstrap"] = two_way_bootstrap_ratio(rr, "duration_s", "condition", levels,
                                                        n_boot=n_boot, seed=seed)
    return comp


def _edit_reasons(answers) -> dict:
    er = answers.loc[(answers["question_key"] == "edit_reason") & (answers["task"] == "edit")]
    out = {}
    for (role, src), g in er.groupby(["reader_role", "draft_source"]):
        shares = proportion_shares(g["value"], EDIT_REASONS)
        out.setdefault(str(role), {})[str(src)] = {
            "n": int(len(g)),
            "shares": {row.category: {"count": int(row.count), "share": row.share, "ci_low": row.ci_low,
                                      "ci_high": row.ci_high} for row in shares.itertuples()},
            "other_values": int((~g["value"].isin(EDIT_REASONS)).sum()),
        }
    return out


def _no_edit_mcnemar(answers) -> dict:
    er = answers.loc[(answers["question_key"] == "edit_reason") & answers["draft_source"].isin(["model", "reader"])]
    out = {}
    for role, g in er.groupby("reader_role"):
        g = g.assign(no_edit=g["value"].eq("none"))
        wide = g.pivot_table(index=["reader_id", "case_id"], columns="draft_source", values="no_edit",
                             aggfunc="first")
        if {"model", "reader"} <= set(wide.columns):
            pairs = wide.dropna(subset=["model", "reader"])
            pairing = "reader_id x case_id (same reader edited both drafts of the case)"
        else:
            pairs = pd.DataFrame()
        if pairs.empty:
            per_case = g.groupby(["case_id", "draft_source"])["no_edit"].mean().unstack()
            if not {"model", "reader"} <= set(per_case.columns):
                continue
            pairs = (per_case.dropna(subset=["model", "reader"]) > 0.5)
            pairing = "case_id (majority of the case's reads per draft source; ties count as edited)"
        pairs = pairs.astype(bool)
        b = int((pairs["model"] & ~pairs["reader"]).sum())
        c = int((~pairs["model"] & pairs["reader"]).sum())
        res = mcnemar_test(b, c)
        res.update(pairing=pairing, n_pairs=int(len(pairs)),
                   share_no_edit_model=float(pairs["model"].mean()), share_no_edit_reader=float(pairs["reader"].mean()),
                   b_label="model unedited, reader draft edited", c_label="model edited, reader draft unedited")
        out[str(role)] = res
    return out


def _ratings(answers, items: dict[str, ItemScale], seed, n_boot, compare_sources: bool) -> dict:
    out = {}
    sub = answers.loc[answers["question_key"].isin(list(items))].copy()
    sub["score"] = pd.to_numeric(sub["value"], errors="coerce")
    bad = sub["score"].isna() & sub["value"].notna()
    if bad.any():
        raise AnalysisInputError(
            f"answers.value for {sub.loc[bad, 'question_key'].iloc[0]!r} is not numeric "
            f"(e.g. {sub.loc[bad, 'value'].iloc[0]!r}); rating answers are the scale's scores")
    sub["source"] = sub["draft_source"].fillna(sub["task"])
    for item, gi in sub.groupby("question_key"):
        neutral = items[item].neutral or 0.0
        block = {}
        for (role, src), g in gi.groupby(["reader_role", "source"]):
            d = _with_ci(g["score"], seed, n_boot)
            # Against the scale's own neutral point (0 on CheXOne's +10..-10, 4 on a 1-7 scale, 50 on a 0-100 VAS).
            d["wilcoxon_vs_neutral"] = wilcoxon_signed_rank(g["score"].to_numpy() - neutral, zero_method="pratt",
                                                            method="auto").iloc[0].to_dict()
            d["wilcoxon_vs_neutral"]["neutral"] = neutral
            block.setdefault(str(role), {})[str(src)] = d
        if compare_sources:
            for role, g in gi.groupby("reader_role"):
                if not {"model", "reader"} <= set(g["source"]):
                    continue
                paired = pair_by_key(g, "score", "source", "reader_id", ("reader", "model"))
                test = None
                if len(paired) >= 2:
                    test = _with_min_p(wilcoxon_signed_rank(paired["model"], paired["reader"], zero_method="wilcox",
                                                            method="auto").iloc[0].to_dict())
                    test.update(mean_diff=float((paired["model"] - paired["reader"]).mean()))
                block.setdefault(str(role), {})["model_vs_reader_by_reader"] = {
                    "pairing": "reader_id (each reader's mean score per draft source)",
                    "n_readers_paired": int(len(paired)), "wilcoxon": test}
        out[str(item)] = block
    return out


def _choices(answers, items: dict[str, ItemScale]) -> dict:
    """Choice questions of the design beyond the edit reason and the preference: per item, role and draft source,
    the share of each option (per-read Wilson CIs; the random-reader CIs are in ``mrmc.choices``)."""
    out: dict = {}
    sub = answers.loc[answers["question_key"].isin(list(items)) & answers["value"].notna()].copy()
    sub["source"] = sub["draft_source"].fillna(sub["task"])
    for (item, role, src), g in sub.groupby(["question_key", "reader_role", "source"]):
        values = items[item].values
        shares = proportion_shares(g["value"], values)
        out.setdefault(str(item), {}).setdefault(str(role), {})[str(src)] = {
            "n": int(len(g)),
            "shares": {row.category: {"count": int(row.count), "share": row.share, "ci_low": row.ci_low,
                                      "ci_high": row.ci_high, "label": items[item].labels.get(row.category, "")}
                       for row in shares.itertuples()},
        }
    return out


def _questions_block(scales: dict[str, ItemScale], answers) -> dict:
    """Every question of the design, its scoring, and how many counted answers it has (0: asked but unanswered so
    far, or asked in no arm), so a question is never left out without a word."""
    counts = answers.groupby("question_key").size()
    return {key: {"kind": sc.kind, "scale": sc.describe(), "values": list(sc.values), "labels": dict(sc.labels),
                  "min": sc.low, "max": sc.high, "neutral": sc.neutral, "n_answers": int(counts.get(key, 0)),
                  "analysed_in": ("likert/reasoning" if sc.numeric else "choices" if key not in DEDICATED_CHOICES
                                  else "edit_reasons" if key == "edit_reason" else "preference")}
            for key, sc in scales.items()}


def _preference(reads) -> dict:
    cmp_ = reads.loc[(reads["task"] == "compare") & reads["preferred_source"].notna()]
    if cmp_.empty:
        return {}
    shares = proportion_shares(cmp_["preferred_source"], ("model", "reader", "equivalent"))
    n_model = int((cmp_["preferred_source"] == "model").sum())
    n_reader = int((cmp_["preferred_source"] == "reader").sum())
    non_tie = cmp_.loc[cmp_["preferred"].isin(["A", "B"])]
    per_reader = cmp_.groupby("reader_id")["preferred_source"].agg(
        lambda s: ((s == "model").sum() - (s == "reader").sum()) / len(s))
    reader_level = _with_min_p(wilcoxon_signed_rank(per_reader.to_numpy(), zero_method="wilcox",
                                                    method="auto").iloc[0].to_dict())
    reader_level.update(n_readers=int(per_reader.size), mean_net_model_share=float(per_reader.mean()))
    position_a_model = cmp_.loc[cmp_["a_source"].notna()]
    return {
        "n": int(len(cmp_)),
        "shares": {row.category: {"count": int(row.count), "share": row.share, "ci_low": row.ci_low,
                                  "ci_high": row.ci_high} for row in shares.itertuples()},
        "ci_method": "wilson",
        "sign_test_model_vs_reader": sign_test(n_model, n_reader),
        "position_effect": {**sign_test(int((non_tie["preferred"] == "A").sum()),
                                        int((non_tie["preferred"] == "B").sum())),
                            "description": "share of non-tied comparisons won by position A; H0 = 0.5",
                            "share_model_in_position_a": float((position_a_model["a_source"] == "model").mean())},
        "reader_level": {"statistic": "per reader (model wins - reader wins) / comparisons, Wilcoxon vs 0",
                         **reader_level},
    }


def _icc(answers, items: dict[str, ItemScale]) -> dict:
    out = {"choice": "ICC(A,1)", "reason": ICC_CHOICE_REASON, "items": {}}
    present = set(answers["question_key"].unique())
    keys = [k for k in items if k in present]
    for key in keys:
        sub = answers.loc[answers["question_key"] == key].copy()
        sub["score"] = pd.to_numeric(sub["value"], errors="coerce")
        sub["target"] = sub["draft_id"].astype("string").fillna("case:" + sub["case_id"].astype(str))
        dup = sub.duplicated(["target", "reader_id"], keep=False)
        if dup.any():
            first = sub.loc[dup].iloc[0]
            raise AnalysisInputError(
                f"reader {first['reader_id']} rated {first['target']} more than once for {key!r}; "
                "duplicated reader x case ratings are refused, not averaged")
        item = _icc_oneway_block(sub)
        if "error" in item:
            out["items"][key] = item
            continue
        try:
            two = icc_crossed(sub, "target", "reader_id", "score")
            item["two_way"] = {row.Type: {"ICC": row.ICC, "ci_low": row.ci_low, "ci_high": row.ci_high}
                               for row in two.itertuples()}
            item["two_way"].update(var_target=float(two["var_target"].iloc[0]),
                                   var_rater=float(two["var_rater"].iloc[0]),
                                   var_residual=float(two["var_residual"].iloc[0]), k=float(two["k"].iloc[0]),
                                   subsampled=bool(two["subsampled"].iloc[0]), note=str(two["note"].iloc[0]))
            item["choice"] = "ICC(A,1)"
        except ValueError as exc:
            item["two_way"] = {"error": str(exc)}
            item["choice"] = "ICC1"
        # Residents and attendings may rate the same model draft; per-role ICCs keep
        # the two perspectives apart, the pooled one is the headline.
        item["by_role"] = {str(role): _icc_oneway_block(g) for role, g in sub.groupby("reader_role")}
        wide = sub.pivot(index="target", columns="reader_id", values="score")
        item["fully_crossed"] = bool(wide.notna().all().all())
        if item["fully_crossed"] and wide.shape[0] >= 2 and wide.shape[1] >= 2:
            six = intraclass_corr(sub, "target", "reader_id", "score")
            item["shrout_fleiss"] = {row.Type: {c: getattr(row, c) for c in ("ICC", "ci_low", "ci_high", "p_val")}
                                     for row in six.itertuples()}
        out["items"][key] = item
    return out


# Fewest drafts rated by two or more readers before an ICC is reported: with two (a study just started) the
# one-way ICC came out -1.0 with a CI reaching -37.5, a number that says nothing about agreement.
MIN_ICC_TARGETS = 5


def _icc_oneway_block(sub) -> dict:
    shared = int((sub.groupby("target")["reader_id"].nunique() >= 2).sum())
    if shared < MIN_ICC_TARGETS:
        return {"error": f"only {shared} draft(s) rated by two or more readers; an ICC is reported from "
                         f"{MIN_ICC_TARGETS} on", "n_targets_shared": shared}
    try:
        one = icc_oneway(sub, "target", "reader_id", "score")
    except ValueError as exc:
        return {"error": str(exc)}
    block = {row.Type: {c: getattr(row, c) for c in ("ICC", "F", "df1", "df2", "p_val", "ci_low", "ci_high")}
             for row in one.itertuples()}
    block.update(k0=float(one["k0"].iloc[0]), n_targets=int(one["n_targets"].iloc[0]),
                 n_ratings=int(one["n_ratings"].iloc[0]))
    return block


def _edit_metric_summary(reads) -> dict:
    ed = reads.loc[(reads["task"] == "edit") & reads["final_text"].notna()]
    out = {}
    for (role, src), g in ed.groupby(["reader_role", "draft_source"]):
        unchanged = g["unchanged"].dropna().astype(bool)
        low, high = wilson_ci(int(unchanged.sum()), int(unchanged.size))
        out.setdefault(str(role), {})[str(src)] = {
            "edit_chars": describe(g["edit_chars"].astype(float)),
            "edit_words": describe(g["edit_words"].astype(float)),
            "unchanged": {"count": int(unchanged.sum()), "n": int(unchanged.size),
                          "share": float(unchanged.mean()) if unchanged.size else float("nan"),
                          "ci_low": low, "ci_high": high},
        }
    return out


def _with_min_p(test: dict) -> dict:
    """Add the smallest two-sided p-value the test could give with these n (exact method only):
    with 5 readers the exact signed-rank test cannot go below 2/2^5 = 0.0625."""
    # The exact method is used only without zeros (R's rule), so n - n_zero is the ranked count.
    n_nonzero = int(test.get("n", 0)) - int(test.get("n_zero", 0))
    test["min_attainable_p"] = min(1.0, 2.0 / 2 ** n_nonzero) if test.get("method") == "exact" and n_nonzero \
        else float("nan")
    return test


# The exploratory OR analyses of this module and of analysis.text_metrics share one wrapper (analysis.endpoints).
_or_or_error = or_digest


def _plan_block(plan: AnalysisPlan) -> dict:
    return {"source": plan.source, "sha256": plan.sha256, "alpha": plan.alpha, "multiplicity": plan.multiplicity,
            "readers": plan.readers, "cases": plan.cases, "conclusion": plan.conclusion,
            "confidence": plan.confidence, "table": plan.to_dict(),
            "endpoints": [{"family": fam, "name": e.name, "description": e.describe()} for fam, e in plan.endpoints()]}


def _endpoints(plan: AnalysisPlan, reads, answers, seed, mixed_max_reads, mixed_cache, scales, detection) -> list:
    out = []
    for family, e in plan.endpoints():
        cached = mixed_cache.get((e.role, (e.reference, e.comparison))) if e.method == "mixed_model" else None
        r = analyse_endpoint(e, reads, answers, conclusion=plan.conclusion, confidence=plan.confidence, seed=seed,
                             mixed_max_reads=mixed_max_reads, mixed_result=cached, scale=scales.get(e.item or ""),
                             detection=detection)
        r["family"] = family
        out.append(r)
    secondary = [r for r in out if r["family"] == "secondary"]
    adjusted = adjust_pvalues([r.get("p_val") if r.get("p_val") is not None else np.nan for r in secondary],
                              plan.multiplicity)
    for r, p_adj in zip(secondary, adjusted):
        r["p_adjusted"] = float(p_adj)
    for r in out:
        if r["family"] == "primary":
            r["p_adjusted"] = r.get("p_val")
        p_used = r.get("p_adjusted") if r["family"] != "sensitivity" else r.get("p_val")
        r["significant"] = bool(p_used is not None and np.isfinite(p_used) and p_used <= plan.alpha) \
            if r["family"] != "sensitivity" else None
    return out


def _multiplicity_statement(plan: AnalysisPlan, endpoints: list) -> dict:
    secondary = [r["name"] for r in endpoints if r["family"] == "secondary"]
    method = {"holm": "Holm's step-down procedure", "bonferroni": "the Bonferroni correction",
              "none": "no correction"}[plan.multiplicity]
    text = (f"The primary endpoint was tested at alpha = {plan.alpha:g} two-sided. The {len(secondary)} secondary "
            f"endpoints form one family whose p-values were adjusted with {method} (family-wise error rate "
            f"{plan.alpha:g}); an endpoint that could not be estimated counts in the family size. Sensitivity "
            "analyses of the primary endpoint and every other statistic in this report are exploratory and "
            "carry unadjusted p-values.")
    return {"method": plan.multiplicity, "alpha": plan.alpha, "family": secondary, "statement": text}


def _mrmc_blocks(reads, answers, confidence, numeric: dict[str, ItemScale], choices: dict[str, ItemScale]) -> dict:
    """OR/Hillis for every endpoint of the study (exploratory unless the plan names it)."""
    out: dict = {"duration": {}, "no_edit": {}, "edit_reasons": {}, "likert": {}, "reasoning": {}, "preference": {},
                 "choices": {}}
    timed = reads.loc[reads["duration_s"].notna() & (reads["duration_s"] > 0)].assign(
        value=lambda d: np.log(d["duration_s"].astype(float)))
    for role, rr in timed.groupby("reader_role"):
        present = set(rr["condition"])
        block = {}
        for name, (ref, cmp_) in DURATION_COMPARISONS.items():
            if {ref, cmp_} <= present:
                block[name] = _or_or_error(rr, (cmp_, ref), ratio=True, label=f"time ratio {cmp_} / {ref}")
        for cond in sorted(present):
            block[f"geometric_mean.{cond}"] = _or_or_error(rr, (cond,), ratio=True,
                                                           label=f"geometric-mean duration, {cond}")
        out["duration"][str(role)] = block
    er = answers.loc[answers["question_key"].eq("edit_reason") & answers["task"].eq("edit") & answers["value"].notna()]
    for role, g in er.groupby("reader_role"):
        conds = tuple(sorted(set(g["condition"]), reverse=True))  # edit_reader, edit_model: model - reader
        for reason in EDIT_REASONS:
            frame = g.assign(value=g["value"].eq(reason).astype(float))
            res = _or_or_error(frame, conds, bounds=(0.0, 1.0), label=f"share '{reason}', {' vs '.join(conds)}")
            out["edit_reasons"].setdefault(str(role), {})[reason] = res
            if reason == "none":
                out["no_edit"][str(role)] = res
    reviewing = answers["task"].eq("rate_reasoning")
    for key, part in (("likert", answers.loc[~reviewing]), ("reasoning", answers.loc[reviewing])):
        sub = part.loc[part["question_key"].isin(list(numeric)) & part["value"].notna()].copy()
        sub["value"] = pd.to_numeric(sub["value"], errors="coerce")
        for (item, role), g in sub.groupby(["question_key", "reader_role"]):
            scale = numeric[item]
            bounds = (scale.low, scale.high) if scale.low is not None else None
            conds = tuple(sorted(set(g["condition"]), reverse=True))
            block = {}
            if len(conds) == 2:
                # The bounds truncate the intervals of each condition's mean score: the scale's own ends.
                block["difference"] = _or_or_error(g, conds, bounds=bounds, label=f"{item}: {conds[0]} - {conds[1]}")
            for cond in conds:
                block[cond] = _or_or_error(g, (cond,), null=scale.neutral, bounds=bounds,
                                           label=f"{item}: {cond} against neutral {scale.neutral:g}")
            out[key].setdefault(str(item), {})[str(role)] = block
    # Each option of every other choice question as a share per reader: the difference between two conditions
    # (e.g. model vs reader drafts), or one condition's mean share.
    sub = answers.loc[answers["question_key"].isin(list(choices)) & answers["value"].notna()]
    for (item, role), g in sub.groupby(["question_key", "reader_role"]):
        conds = tuple(sorted(set(g["condition"]), reverse=True))
        for value in choices[item].values:
            frame = g.assign(value=g["value"].eq(value).astype(float))
            levels = conds if len(conds) == 2 else conds[:1]
            res = _or_or_error(frame, levels, bounds=(0.0, 1.0),
                               label=f"{item}: share '{value}', {' vs '.join(levels)}")
            out["choices"].setdefault(str(item), {}).setdefault(str(role), {})[value] = res
    cmp_ = reads.loc[reads["task"].eq("compare") & reads["preferred_source"].notna()]
    for role, g in cmp_.groupby("reader_role"):
        e = Endpoint(name="preference", endpoint="preference_share", role=str(role), condition="compare", null=0.0)
        frame = endpoint_frame(e, reads, answers)
        shares = {}
        for src in ("model", "reader", "equivalent"):
            f = g.assign(value=g["preferred_source"].eq(src).astype(float))
            shares[src] = _or_or_error(f, ("compare",), bounds=(0.0, 1.0), label=f"share preferring {src}")
        out["preference"][str(role)] = {
            "model_minus_reader": _or_or_error(frame, ("model_preferred", "reader_preferred"), test="test",
                                               label="share preferring the model - share preferring the reader"),
            "shares": shares}
    return out


def _caveats(results: dict, plan: AnalysisPlan) -> list:
    """Plain-language warnings a reader of the report needs next to the numbers."""
    alpha = plan.alpha
    out = []
    for role, block in results.get("duration", {}).items():
        for name, comp in block.get("comparisons", {}).items():
            w = comp.get("reader_wilcoxon") or {}
            mp = w.get("min_attainable_p")
            if mp is not None and np.isfinite(mp) and mp > alpha:
                out.append(f"{role}s, {name}: the exact Wilcoxon signed-rank test on {w['n'] - w['n_zero']} reader "
                           f"means cannot give p below {mp:.4f} > alpha = {alpha:g}, so it cannot reject whatever the "
                           "data; rely on the OR/Hillis and mixed-model analyses.")
    for item, block in results.get("likert", {}).items():
        for role, by in block.items():
            w = (by.get("model_vs_reader_by_reader") or {}).get("wilcoxon") or {}
            mp = w.get("min_attainable_p")
            if mp is not None and np.isfinite(mp) and mp > alpha:
                out.append(f"{item}, {role}s: the reader-level Wilcoxon test cannot give p below {mp:.4f} > alpha.")
    rl = (results.get("preference") or {}).get("reader_level") or {}
    mp = rl.get("min_attainable_p")
    if mp is not None and np.isfinite(mp) and mp > alpha:
        out.append(f"preference: the reader-level Wilcoxon test on {rl.get('n_readers')} readers cannot give p below "
                   f"{mp:.4f} > alpha.")
    for role, r in results.get("no_edit_mcnemar", {}).items():
        n = r.get("n_discordant") or 0
        if r.get("method") == "exact" and n and 2 * 0.5 ** n > alpha:
            out.append(f"{role}s, 'no editing needed' McNemar: {n} discordant pair(s) cannot give p below "
                       f"{min(1.0, 2 * 0.5 ** n):.4f} > alpha.")
    for r in results.get("endpoints", []):
        if r.get("error"):
            out.append(f"pre-specified endpoint {r['name']} ({r['family']}) has no result: {r['error']}")
        elif r.get("n_readers") is not None and r["n_readers"] < 4 and r.get("method") == "or_hillis":
            out.append(f"{r['name']}: only {r['n_readers']} readers; random-reader intervals are wide and their "
                       "degrees of freedom few.")
    det = results.get("detection") or {}
    for f in det.get("averaged_excluded", []):
        out.append(f"detection: {f['finding']} is not estimable ({f['reason']}) and is left out of the mean over "
                   "findings.")
    if det and det["design"]["n_readers"] < 4:
        out.append(f"detection: only {det['design']['n_readers']} readers; random-reader intervals are wide and their "
                   "degrees of freedom few.")
    if det.get("design", {}).get("n_reads_without_marks"):
        out.append(f"detection: {det['design']['n_reads_without_marks']} counted detect read(s) have no mark and are "
                   "not in the detection analysis.")
    n_zero = results["design"].get("n_reads_zero_duration_excluded", 0)
    if n_zero:
        out.append(f"{n_zero} read(s) with a zero duration were excluded from every time analysis "
                   "(listed in results.json, design.zero_duration_assignment_ids).")
    if plan.source == "default":
        out.append("The study's design states no analysis plan: the shipped default plan was applied and is "
                   "reported as pre-specified by default, not by the study team.")
    return out
