"""End to end: simulated studies with known effects are recovered; report and results.json are complete."""

import json
import math
import re
from pathlib import Path

import pytest

from analysis import AnalysisInputError, load_tables, run_analysis, tables_from_frames, write_report
from analysis.simulate import simulate_study, write_export

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"


def frames_of(tables):
    return {n: getattr(tables, n) for n in ("assignments", "answers", "drafts", "cases", "readers")}


def test_known_time_ratio_recovered_by_all_clustering_aware_methods(paper_sized_result, paper_sized_study):
    truth = paper_sized_study.meta["simulation"]["time_ratio"]
    comp = paper_sized_result.results["duration"]["resident"]["comparisons"]["write_vs_edit_model"]
    assert comp["mixed_model"]["ci_low"] < truth < comp["mixed_model"]["ci_high"]
    assert comp["two_way_bootstrap"]["ci_low"] < truth < comp["two_way_bootstrap"]["ci_high"]
    tt = comp["reader_paired_ttest"]
    assert tt["n_pairs"] == paper_sized_study.meta["simulation"]["n_residents"]
    assert tt["mean_diff"] < 0 and tt["p_val"] < 0.05
    att = paper_sized_result.results["duration"]["attending"]["comparisons"]["edit_reader_vs_edit_model"]
    assert att["two_way_bootstrap"]["ci_low"] < 0.9 < att["two_way_bootstrap"]["ci_high"]


def test_known_shares_inside_wilson_intervals(paper_sized_result, paper_sized_study):
    truth = paper_sized_study.meta["simulation"]
    pref = paper_sized_result.results["preference"]
    for source, p in truth["preference"].items():
        assert pref["shares"][source]["ci_low"] < p < pref["shares"][source]["ci_high"]
    reasons = paper_sized_result.results["edit_reasons"]["attending"]
    for source in ("model", "reader"):
        for reason, p in truth["edit_reasons"][source].items():
            s = reasons[source]["shares"][reason]
            assert s["ci_low"] < p < s["ci_high"], (source, reason)


@pytest.mark.parametrize("bias, detected", [(0.0, False), (0.6, True)])
def test_position_effect_detected_only_when_simulated(bias, detected):
    study = simulate_study(n_readers=11, n_cases=120, reads_per_reader=80, position_bias=bias, seed=21)
    pos = run_analysis(study, n_boot=20, mixed_max_reads=300).results["preference"]["position_effect"]
    assert (pos["p_val"] < 0.01) is detected


def test_paired_outcome_and_ratings_reported(paper_sized_result):
    r = paper_sized_result.results
    mc = r["no_edit_mcnemar"]["attending"]
    assert mc["n_pairs"] > 0 and mc["pairing"].startswith("reader_id x case_id")
    assert mc["method"] in ("exact", "chi2_corrected")
    lk = r["likert"]["indication_applicability"]["attending"]
    assert lk["model"]["mean"] > lk["reader"]["mean"]  # simulated latent means 4 vs 2
    assert lk["model"]["wilcoxon_vs_neutral"]["zero_method"] == "pratt"
    assert set(r["reasoning"]) == {"factuality", "causal_support"}
    # The sparse design is connected, so the two-way form is estimable and is the headline.
    assert r["icc"]["choice"] == "ICC(A,1)" and "connected" in r["icc"]["reason"]
    assert "not estimable" not in r["icc"]["reason"]
    item = r["icc"]["items"]["indication_applicability"]
    two = item["two_way"]["ICC(A,1)"]
    assert two["ci_low"] < two["ICC"] < two["ci_high"]
    assert item["ICC1"]["ci_low"] < item["ICC1"]["ICC"] < item["ICC1"]["ci_high"]


def test_comparisons_found_by_columns_not_arm_names(paper_sized_study):
    frames = frames_of(paper_sized_study)
    frames["assignments"] = frames["assignments"].assign(arm=lambda d: "arm_" + d["arm"].str.upper())
    renamed = run_analysis(tables_from_frames(frames, paper_sized_study.meta), n_boot=20, seed=1,
                           mixed_max_reads=150).results
    original = run_analysis(paper_sized_study, n_boot=20, seed=1, mixed_max_reads=150).results
    for key in ("duration", "edit_reasons", "preference", "likert", "icc", "no_edit_mcnemar", "endpoints", "mrmc"):
        assert renamed[key] == original[key]


def test_submitted_reads_count_for_time_but_have_no_answers(paper_sized_study, paper_sized_result):
    a = paper_sized_study.assignments
    counted = a["status"].isin(["submitted", "completed"]).sum()
    assert paper_sized_result.results["design"]["n_reads"] == counted
    assert paper_sized_result.results["design"]["counted_statuses"] == ["submitted", "completed"]


def test_duplicated_rating_of_one_draft_is_refused(paper_sized_study):
    frames = frames_of(paper_sized_study)
    a = frames["assignments"].copy()
    # Point one attending's model edit at a draft they already rated through another assignment.
    edits = a[(a["reader_role"] == "attending") & (a["task"] == "edit") & (a["status"] == "completed")]
    first_reader = edits["reader_id"].iloc[0]
    mine = edits[edits["reader_id"] == first_reader]
    a.loc[mine.index[1], "draft_id"] = mine["draft_id"].iloc[0]
    frames["assignments"] = a
    with pytest.raises(AnalysisInputError, match="more than once"):
        run_analysis(tables_from_frames(frames, paper_sized_study.meta), n_boot=20)


def _walk_nan(obj):
    if isinstance(obj, dict):
        return any(_walk_nan(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_walk_nan(v) for v in obj)
    return isinstance(obj, float) and not math.isfinite(obj)


def test_report_and_results_from_an_export_folder(tmp_path):
    study = simulate_study(seed=8)
    write_export(study, tmp_path / "export")
    result = run_analysis(load_tables(tmp_path / "export"), n_boot=100)
    html_path = write_report(result, tmp_path / "report")
    html = html_path.read_text()
    # plotly.js inlined exactly once, no CDN: works offline.
    assert html.count("plotly.js v") <= 2 and html.count("<script type='text/javascript'>") == 1
    # (the bundle itself mentions cdn.plot.ly for map topojson; no script is loaded from anywhere)
    assert "<script src" not in html and 'src="http' not in html
    for name in ("forest_primary", "drafting_time", "editing_time", "edit_reasons", "applicability", "efficiency",
                 "preference", "reasoning"):
        assert f'id="fig-{name}"' in html, name
    assert "paired t-test" in html and result.methods[:40] in html
    data = json.loads((tmp_path / "report" / "results.json").read_text())
    assert data == result.results and not _walk_nan(data)
    assert re.search(r"\d+ reads .* of 80 cases by 11 readers", result.methods)


def test_every_results_key_is_documented(paper_sized_result):
    text = DOCS.read_text()
    r = paper_sized_result.results
    keys = set(r)
    comp = r["duration"]["resident"]["comparisons"]["write_vs_edit_model"]
    keys |= set(comp) | set(comp["mixed_model"]) | set(comp["two_way_bootstrap"]) | set(r["preference"])
    keys |= set(r["design"]) | set(r["no_edit_mcnemar"]["attending"]) | set(r["icc"])
    keys |= set(r["plan"]) | set(r["multiplicity"])
    for e in r["endpoints"]:
        keys |= set(e)
    digest = comp["or_hillis"]
    keys |= set(digest) | set(digest["conclusions"]["random_readers_random_cases"]) | set(digest["global_test"][
        "random_readers_random_cases"])
    keys |= set(r["mrmc"]) | set(r["mrmc"]["preference"]["attending"])
    keys |= set(r["icc"]["items"]["indication_applicability"]) | set(r["icc"]["items"]["indication_applicability"]["two_way"])
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"undocumented results keys: {missing}"


@pytest.mark.slow
def test_default_analysis_uses_1000_resamples(paper_sized_study):
    r = run_analysis(paper_sized_study).results
    assert r["n_boot"] == 1000
    d = r["duration"]["resident"]["by_condition"]["write"]
    assert d["ci_method"] == "bca" and d["ci_low"] < d["mean"] < d["ci_high"]
    assert r["duration"]["resident"]["comparisons"]["write_vs_edit_model"]["two_way_bootstrap"]["n_boot"] == 1000
