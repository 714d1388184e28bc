"""The report a supplement needs: the pre-specified primary result first, Holm over the secondaries,
journal p-values, caveats, no p-value for degenerate data, exclusions counted, the frozen plan honoured."""

import re

import numpy as np
import pytest

from analysis import AnalysisInputError, run_analysis, tables_from_frames, write_report
from analysis.plan import default_plan, parse_plan
from analysis.report import format_p
from analysis.simulate import simulate_study


def frames_of(tables):
    return {n: getattr(tables, n).copy() for n in ("assignments", "answers", "drafts", "cases", "readers")}


@pytest.fixture(scope="module")
def report_html(paper_sized_result, tmp_path_factory):
    return write_report(paper_sized_result, tmp_path_factory.mktemp("report")).read_text()


def test_primary_result_comes_first_and_everything_else_is_labelled(report_html, paper_sized_result):
    r = paper_sized_result.results
    primary = r["endpoints"][0]
    assert primary["family"] == "primary" and primary["name"] == "resident_drafting_time"
    i_primary = report_html.index("Primary endpoint (pre-specified)")
    assert i_primary < report_html.index("Pre-specified endpoints") < report_html.index("Exploratory")
    assert report_html.index("Exploratory") < report_html.index('id="fig-drafting_time"')
    # The shipped default plan is stated as such.
    assert "the shipped default plan" in report_html and r["plan"]["source"] == "default"


def test_holm_is_applied_over_the_secondaries(paper_sized_result):
    eps = paper_sized_result.results["endpoints"]
    sec = [e for e in eps if e["family"] == "secondary"]
    raw = np.array([e["p_val"] for e in sec])
    adj = np.array([e["p_adjusted"] for e in sec])
    # Holm's adjusted p-values are never below the raw ones, the smallest is multiplied by m.
    assert (adj >= raw - 1e-15).all()
    assert adj.min() == pytest.approx(min(1.0, len(sec) * raw.min()))
    statement = paper_sized_result.results["multiplicity"]["statement"]
    assert "Holm" in statement and "exploratory" in statement


def table_html(html):
    return " ".join(re.findall(r"<table.*?</table>", html, flags=re.S))


def test_p_values_are_formatted_and_no_none_is_printed(report_html, paper_sized_result):
    from analysis.report import _cell

    for name, frame in paper_sized_result.tables.items():
        for col in frame.columns:
            if col.startswith("p_") or col.endswith("p_val") or col == "min_attainable_p":
                shown = [_cell(v, col) for v in frame[col].tolist()]
                assert not any("e" in v for v in shown), (name, col, shown)
    tables = table_html(report_html)
    assert "None" not in tables and "nan" not in tables.lower()
    assert "&lt; 0.001" in tables
    assert format_p(5.578e-86) == "< 0.001" and format_p(0.0517) == "0.052"


def test_report_has_variance_components_per_reader_forest_and_both_conclusions(report_html, paper_sized_result):
    t = paper_sized_result.tables
    assert {"reader", "test_x_reader", "error", "cov1", "cov2", "cov3"} <= set(t["variance_components"].columns)
    assert len(t["per_reader"]) == 6  # six residents
    conclusions = set(t["conclusions"]["conclusion"])
    assert conclusions == {"random readers, random cases", "fixed readers, random cases",
                           "random readers, fixed cases"}
    assert 'id="fig-forest_primary"' in report_html
    assert "References" in report_html and "Obuchowski, N. A., &amp; Rockette" in report_html


def test_minimum_attainable_p_caveat_for_five_readers(paper_sized_result):
    # Five attendings: the exact signed-rank test cannot go below 2/2^5 = 0.0625 > 0.05.
    caveats = " ".join(paper_sized_result.results["caveats"])
    assert "cannot give p below 0.0625" in caveats


def test_identical_durations_give_no_p_value():
    # Used to print z = 9.95, p = 2.5e-23, "converged".
    study = simulate_study(seed=2)
    frames = frames_of(study)
    frames["assignments"]["duration_s"] = np.where(frames["assignments"]["duration_s"].notna(), 120.0, np.nan)
    r = run_analysis(tables_from_frames(frames, study.meta), n_boot=50).results
    time_eps = [e for e in r["endpoints"] if e["endpoint"] == "time_ratio"]
    assert time_eps and all(e.get("p_val") is None and e["error"] for e in time_eps)
    comp = r["duration"]["resident"]["comparisons"]["write_vs_edit_model"]
    assert "no variation" in comp["mixed_model"]["error"] and "no variation" in comp["or_hillis"]["error"]


def test_zero_duration_is_excluded_and_counted():
    study = simulate_study(seed=2)
    frames = frames_of(study)
    a = frames["assignments"]
    i = int(np.flatnonzero((a["reader_role"].eq("resident") & a["status"].eq("completed")).to_numpy())[0])
    a.loc[a.index[i], "duration_s"] = 0.0
    base = run_analysis(study, n_boot=50).results
    r = run_analysis(tables_from_frames(frames, study.meta), n_boot=50).results
    assert r["design"]["n_reads_zero_duration_excluded"] == 1
    assert r["design"]["zero_duration_assignment_ids"] == [a["assignment_id"].iloc[i]]
    assert r["endpoints"][0]["n_reads"] == base["endpoints"][0]["n_reads"] - 1
    assert any("zero duration" in c for c in r["caveats"])


def test_the_exports_frozen_plan_is_applied_and_a_tampered_one_refused():
    study = simulate_study(seed=2)
    table = default_plan().to_dict()
    table["secondary"] = table["secondary"][:1]
    plan = parse_plan(table)
    meta = {**study.meta, "analysis_plan": plan.to_dict(), "analysis_plan_sha256": plan.sha256,
            "analysis_plan_source": "design"}
    tables = tables_from_frames(frames_of(study), meta)
    r = run_analysis(tables, n_boot=50).results
    assert r["plan"]["source"] == "design" and r["plan"]["sha256"] == plan.sha256
    assert [e["family"] for e in r["endpoints"]] == ["primary", "secondary", "sensitivity"]
    assert r["endpoints"][1]["p_adjusted"] == pytest.approx(r["endpoints"][1]["p_val"])  # a family of one
    meta["analysis_plan"]["alpha"] = 0.1
    with pytest.raises(AnalysisInputError, match="changed after export"):
        run_analysis(tables_from_frames(frames_of(study), meta), n_boot=50)


def test_paper_numbers_sit_next_to_mrmc_conclusions_for_every_endpoint(paper_sized_result):
    r = paper_sized_result.results
    m = r["mrmc"]
    assert set(m["duration"]) == {"resident", "attending"}
    assert m["no_edit"]["attending"]["conclusions"]["random_readers_random_cases"]["ci_low"] is not None
    assert set(m["likert"]) == {"indication_applicability", "writing_efficiency", "interpretation_efficiency"}
    assert set(m["reasoning"]) == {"factuality", "causal_support"}
    assert "model_minus_reader" in m["preference"]["attending"]
    # Per-read (paper) numbers stay: mean ± SD per condition.
    assert paper_sized_result.tables["duration"]["mean_sd"].str.contains("±").all()
