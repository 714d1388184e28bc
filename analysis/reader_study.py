"""Run the whole reader-study analysis on validated tables: per-read (paper) numbers plus clustering-aware ones."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.stats.agreement import icc_oneway, intraclass_corr
from analysis.stats.bootstrap import bootstrap_ci, two_way_bootstrap_ratio
from analysis.stats.descriptive import describe
from analysis.stats.mixed import DEFAULT_MAX_READS, mixed_model_ratio
from analysis.stats.paired import pair_by_key, paired_ttest, wilcoxon_signed_rank
from analysis.stats.proportions import mcnemar_test, proportion_shares, sign_test, wilson_ci
from analysis.stats.text import edit_metrics
from analysis.tables import COUNTED_STATUSES, AnalysisInputError, StudyTables

RESULTS_VERSION = 1
EDIT_REASONS = ("none", "content", "style", "both")
LIKERT_ITEMS = ("indication_applicability", "writing_efficiency", "interpretation_efficiency")
REASONING_ITEMS = ("factuality", "causal_support")
# (reference, comparison) condition pairs for durations; found by task/draft_source columns.
DURATION_COMPARISONS = {"write_vs_edit_model": ("write", "edit_model"),
                        "edit_reader_vs_edit_model": ("edit_reader", "edit_model")}
ICC_CHOICE_REASON = (
    "ICC(1) (one-way random, single reader) is reported as the primary reliability: in this design "
    "different cases are read by different readers, so reader is not a crossed factor and the two-way "
    "ICC(2)/ICC(3) forms, which need every reader on every case, are not estimable; ICC(1,k) gives the "
    "reliability of the mean of k0 readers. The six Shrout-Fleiss forms are added only when the "
    "ratings are fully crossed.")


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
    """

    results: dict
    tables: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    methods: str = ""


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


def run_analysis(tables: StudyTables, *, seed: int = 20240601, n_boot: int = 1000,
                 require_all_arms: bool = True, mixed_max_reads: int | None = DEFAULT_MAX_READS) -> AnalysisResult:
    """Compute every reader-study statistic, the report tables, figures and methods text.

    Parameters
    ----------
    tables : StudyTables
        Validated export (:func:`analysis.load_tables`).
    seed : int
        Seed of every resample (bootstrap, mixed-model case subsample).
    n_boot : int
        Bootstrap resamples (1,000 by default).
    require_all_arms : bool
        Refuse (``AnalysisInputError``) an arm with assignments but no counted read;
        set False to analyse a study in progress.
    mixed_max_reads : int or None
        Largest data set fitted by the mixed model before subsampling cases.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    AnalysisInputError
        No counted reads, an empty arm, or a reader rating the same draft twice.
    """
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
    reads = edit_metrics(reads)
    missing_duration = reads["duration_s"].isna().sum()
    answers = tables.answers.merge(
        reads[["assignment_id", "reader_id", "reader_role", "case_id", "task", "draft_source", "draft_id",
               "condition"]], on="assignment_id", how="inner")

    results: dict = {"results_version": RESULTS_VERSION, "seed": seed, "n_boot": n_boot}
    results["design"] = _design(tables, reads, arms_all, arms_counted, int(missing_duration))
    results["duration"] = _durations(reads, seed, n_boot, mixed_max_reads)
    results["edit_reasons"] = _edit_reasons(answers)
    results["no_edit_mcnemar"] = _no_edit_mcnemar(answers)
    results["likert"] = _ratings(answers, LIKERT_ITEMS, seed, n_boot, compare_sources=True)
    results["reasoning"] = _ratings(answers, REASONING_ITEMS, seed, n_boot, compare_sources=False)
    results["preference"] = _preference(reads)
    results["icc"] = _icc(answers)
    results["edit_metrics"] = _edit_metric_summary(reads)
    results = _clean(results)

    from analysis.figures import build_figures
    from analysis.methods_text import methods_paragraph
    from analysis.report_tables import build_tables

    return AnalysisResult(results=results, tables=build_tables(results), figures=build_figures(results, reads, answers),
                          methods=methods_paragraph(results))


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


def _durations(reads, seed, n_boot, mixed_max_reads) -> dict:
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
        comp["reader_wilcoxon"] = wilcoxon_signed_rank(paired[cmp_], paired[ref], zero_method="wilcox",
                                                       method="auto").iloc[0].to_dict()
    else:
        comp["reader_paired_ttest"] = None
        comp["reader_wilcoxon"] = None
    try:
        comp["mixed_model"] = mixed_model_ratio(rr, "duration_s", "condition", levels,
                                                  max_reads=mixed_max_reads, seed=seed)
    except (ValueError, np.linalg.LinAlgError) as exc:
        comp["mixed_model"] = {"error": str(exc)}
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


def _ratings(answers, items, seed, n_boot, compare_sources: bool) -> dict:
    out = {}
    sub = answers.loc[answers["question_key"].isin(items)].copy()
    sub["score"] = pd.to_numeric(sub["value"], errors="coerce")
    bad = sub["score"].isna() & sub["value"].notna()
    if bad.any():
        raise AnalysisInputError(
            f"answers.value for {sub.loc[bad, 'question_key'].iloc[0]!r} is not numeric "
            f"(e.g. {sub.loc[bad, 'value'].iloc[0]!r}); Likert answers are coded +10..-10")
    sub["source"] = sub["draft_source"].fillna(sub["task"])
    for item, gi in sub.groupby("question_key"):
        block = {}
        for (role, src), g in gi.groupby(["reader_role", "source"]):
            d = _with_ci(g["score"], seed, n_boot)
            d["wilcoxon_vs_neutral"] = wilcoxon_signed_rank(g["score"].to_numpy(), zero_method="pratt",
                                                            method="auto").iloc[0].to_dict()
            block.setdefault(str(role), {})[str(src)] = d
        if compare_sources:
            for role, g in gi.groupby("reader_role"):
                if not {"model", "reader"} <= set(g["source"]):
                    continue
                paired = pair_by_key(g, "score", "source", "reader_id", ("reader", "model"))
                test = None
                if len(paired) >= 2:
                    test = wilcoxon_signed_rank(paired["model"], paired["reader"], zero_method="wilcox",
                                                method="auto").iloc[0].to_dict()
                    test.update(mean_diff=float((paired["model"] - paired["reader"]).mean()))
                block.setdefault(str(role), {})["model_vs_reader_by_reader"] = {
                    "pairing": "reader_id (each reader's mean score per draft source)",
                    "n_readers_paired": int(len(paired)), "wilcoxon": test}
        out[str(item)] = block
    return out


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
    reader_level = wilcoxon_signed_rank(per_reader.to_numpy(), zero_method="wilcox", method="auto").iloc[0].to_dict()
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


def _icc(answers) -> dict:
    out = {"choice": "ICC1", "reason": ICC_CHOICE_REASON, "items": {}}
    present = set(answers["question_key"].unique())
    keys = [k for k in LIKERT_ITEMS + REASONING_ITEMS if k in present]
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


def _icc_oneway_block(sub) -> dict:
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
