"""Every question of any design reaches the analysis, scored by its own scale (issue #14): a 7-point Likert item, a
visual-analogue item and a custom choice question added to a simulated CheXOne study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisInputError, run_analysis, tables_from_frames, write_report
from analysis.plan import DEFAULT_PLAN_TABLE, plan_from_meta
from analysis.simulate import simulate_study
from analysis.tables import DEFAULT_QUESTIONS

CONFIDENCE = {"kind": "likert", "values": [str(i) for i in range(1, 8)],
              "labels": {str(i): f"level {i}" for i in range(1, 8)}, "min": 1.0, "max": 7.0, "neutral": 4.0}
QUALITY = {"kind": "vas", "values": [], "labels": {}, "min": 0.0, "max": 100.0, "step": 1.0, "neutral": 50.0,
           "min_label": "unusable", "max_label": "perfect"}
URGENCY = {"kind": "choice", "values": ["routine", "urgent"], "labels": {"routine": "Routine", "urgent": "Urgent"}}


def frames_of(tables):
    return {n: getattr(tables, n) for n in ("assignments", "answers", "drafts", "cases", "readers")}


def with_custom_questions(seed: int = 4, *, model_shift: float = 1.0):
    """The simulated study plus three questions answered after every completed edit: answers shifted up for
    model drafts by ``model_shift`` points (Likert), ten points (VAS), and more often 'urgent'."""
    study = simulate_study(n_readers=11, n_cases=80, seed=seed)
    rng = np.random.default_rng(seed)
    a = study.assignments
    edits = a.loc[a["task"].eq("edit") & a["status"].eq("completed")]
    model = edits["draft_source"].eq("model").to_numpy()
    n = len(edits)
    likert = np.clip(np.rint(4 + model_shift * model + rng.normal(0, 1.2, n)), 1, 7).astype(int)
    vas = np.clip(np.rint(55 + 10 * model + rng.normal(0, 12, n)), 0, 100).astype(int)
    urgent = rng.random(n) < np.where(model, 0.6, 0.3)
    extra = pd.concat([
        pd.DataFrame({"assignment_id": edits["assignment_id"].to_numpy(), "question_key": "confidence",
                      "label": [f"level {v}" for v in likert], "value": likert.astype(str)}),
        pd.DataFrame({"assignment_id": edits["assignment_id"].to_numpy(), "question_key": "image_quality",
                      "label": vas.astype(str), "value": vas.astype(str)}),
        pd.DataFrame({"assignment_id": edits["assignment_id"].to_numpy(), "question_key": "urgency",
                      "label": np.where(urgent, "Urgent", "Routine"), "value": np.where(urgent, "urgent", "routine")}),
    ])
    frames = frames_of(study)
    frames["answers"] = pd.concat([frames["answers"], extra.assign(answered_at=None)], ignore_index=True)
    meta = {**study.meta, "questions": {**DEFAULT_QUESTIONS, "confidence": CONFIDENCE, "image_quality": QUALITY,
                                        "urgency": URGENCY}}
    return frames, meta


@pytest.fixture(scope="module")
def custom_result():
    frames, meta = with_custom_questions()
    return run_analysis(tables_from_frames(frames, meta), n_boot=200)


def test_every_question_is_listed_with_its_scoring_and_where_it_is_analysed(custom_result):
    questions = custom_result.results["questions"]
    assert set(questions) == set(DEFAULT_QUESTIONS) | {"confidence", "image_quality", "urgency"}
    assert questions["confidence"]["scale"] == "7-point Likert, 1 to 7, neutral 4"
    assert questions["image_quality"]["scale"] == "visual-analogue 0 to 100, neutral 50"
    assert questions["urgency"]["analysed_in"] == "choices" and questions["confidence"]["n_answers"] > 100
    assert set(custom_result.tables["questions"]["question"]) == set(questions)


def test_a_seven_point_item_is_tested_against_its_own_neutral_point(custom_result):
    block = custom_result.results["likert"]["confidence"]["attending"]
    assert block["model"]["wilcoxon_vs_neutral"]["neutral"] == 4.0
    assert 4.5 < block["model"]["mean"] < 5.5 and 3.5 < block["reader"]["mean"] < 4.5
    mrmc = custom_result.results["mrmc"]["likert"]["confidence"]["attending"]
    rr = mrmc["difference"]["conclusions"]["random_readers_random_cases"]
    # Differences are first level - second: edit_reader - edit_model, the planted one point lower.
    assert mrmc["difference"]["levels"] == ["edit_reader", "edit_model"]
    assert -1.5 < rr["estimate"] < -0.5 and rr["ci_high"] < 0 and rr["p_val"] < 0.05
    assert mrmc["edit_model"]["conclusions"]["random_readers_random_cases"]["null"] == 4.0


def test_a_visual_analogue_item_is_bounded_by_its_scale(custom_result):
    block = custom_result.results["likert"]["image_quality"]["attending"]
    assert block["model"]["wilcoxon_vs_neutral"]["neutral"] == 50.0
    mean = custom_result.results["mrmc"]["likert"]["image_quality"]["attending"]["edit_model"]
    assert mean["conclusions"]["random_readers_random_cases"]["null"] == 50.0
    assert "truncated to [0, 100]" in " ".join(mean["notes"])
    assert "image_quality" in custom_result.results["icc"]["items"]


def test_a_custom_choice_question_has_shares_and_random_reader_intervals(custom_result):
    shares = custom_result.results["choices"]["urgency"]["attending"]
    assert shares["model"]["shares"]["urgent"]["share"] > shares["reader"]["shares"]["urgent"]["share"]
    assert shares["model"]["shares"]["urgent"]["label"] == "Urgent"
    digest = custom_result.results["mrmc"]["choices"]["urgency"]["attending"]["urgent"]
    assert digest["levels"] == ["edit_reader", "edit_model"] and digest["n_readers"] >= 2
    rows = custom_result.tables["choices"]
    assert set(rows["option"]) == {"routine", "urgent"} and rows["ci_low"].notna().all()


def test_the_report_shows_every_question(custom_result, tmp_path):
    html = write_report(custom_result, tmp_path).read_text(encoding="utf-8")
    assert "Other choice questions: the share of each option" in html
    assert "7-point Likert, 1 to 7, neutral 4" in html and "urgency" in html


def test_a_single_condition_endpoint_of_a_seven_point_item_is_tested_against_4():
    frames, meta = with_custom_questions(model_shift=0.0)
    table = {**DEFAULT_PLAN_TABLE, "secondary": [{"name": "model_confidence", "endpoint": "likert_mean",
                                                   "role": "attending", "item": "confidence",
                                                   "condition": "edit_model"}]}
    from analysis.plan import parse_plan

    plan = parse_plan(table)
    result = run_analysis(tables_from_frames(frames, meta), n_boot=100, plan=plan)
    [endpoint] = [e for e in result.results["endpoints"] if e["name"] == "model_confidence"]
    assert endpoint["null"] == 4.0 and endpoint["ci_low"] < 4.0 < endpoint["ci_high"]  # no shift: near neutral
    assert plan_from_meta({}).source == "default"


@pytest.mark.parametrize("key, value, words", [
    ("confidence", "8", "outside the question's scale (1, 2, 3, 4, 5, 6, 7)"),
    ("image_quality", "101", "outside the question's visual-analogue scale (0 to 100)"),
    ("urgency", "stat", "outside the question's options"),
])
def test_answers_off_their_scale_are_refused(key, value, words):
    frames, meta = with_custom_questions()
    answers = frames["answers"]
    row = answers.index[answers["question_key"].eq(key)][0]
    answers.loc[row, "value"] = value
    with pytest.raises(AnalysisInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        tables_from_frames(frames, meta)


def test_likert_answers_written_another_way_get_the_scales_code():
    frames, meta = with_custom_questions()
    meta["questions"]["half"] = {"kind": "likert", "values": ["0", "1.5", "3"], "labels": {}, "min": 0.0, "max": 3.0}
    first = frames["answers"]["assignment_id"].iloc[0]
    frames["answers"] = pd.concat([frames["answers"], pd.DataFrame(
        [{"assignment_id": first, "question_key": "half", "label": "x", "value": "1.50"}])], ignore_index=True)
    tables = tables_from_frames(frames, meta)
    assert tables.answers.loc[tables.answers["question_key"].eq("half"), "value"].tolist() == ["1.5"]


def test_no_icc_is_reported_from_two_shared_drafts():
    frames, meta = with_custom_questions()
    answers = frames["answers"]
    reads = frames["assignments"].set_index("assignment_id")
    # Keep the factuality ratings of only two reasoning items (a study just started).
    rated = answers.loc[answers["question_key"].eq("factuality")]
    per_case = pd.Series(reads.loc[rated["assignment_id"], "case_id"].to_numpy()).value_counts()
    keep_cases = per_case[per_case >= 2].index[:2]
    assert len(keep_cases) == 2
    frames["answers"] = answers.loc[~answers["question_key"].eq("factuality") | np.isin(
        reads.reindex(answers["assignment_id"])["case_id"].to_numpy(), keep_cases)]
    result = run_analysis(tables_from_frames(frames, meta), n_boot=100)
    item = result.results["icc"]["items"]["factuality"]
    assert item["error"].startswith("only 2 draft(s) rated by two or more readers") and item["n_targets_shared"] == 2


def test_the_report_says_what_produced_it(tmp_path):
    frames, meta = with_custom_questions()
    meta = {**meta, "design_sha256": "d" * 64, "cohort_sha256": "c" * 64, "exported_at": "2026-12-08T09:00:00.000Z",
            "package_version": "0.1.0"}
    result = run_analysis(tables_from_frames(frames, meta), n_boot=100)
    prov = result.results["provenance"]
    assert (prov["design_sha256"], prov["cohort_sha256"], prov["exported_at"]) == ("d" * 64, "c" * 64,
                                                                                   "2026-12-08T09:00:00.000Z")
    from importlib.metadata import version

    assert prov["analysis_software"] == version("readerstudy") and prov["dependencies"]["numpy"] == np.__version__
    assert prov["dependencies"]["pingouin"] == version("pingouin") and prov["analysed_at"].endswith("Z")
    html = write_report(result, tmp_path).read_text(encoding="utf-8")
    provenance = html[html.index("<h2>Provenance</h2>"):html.index("</table>", html.index("<h2>Provenance</h2>"))]
    assert "d" * 64 in provenance and "c" * 64 in provenance and "2026-12-08T09:00:00.000Z" in provenance
    assert f"numpy {np.__version__}" in provenance and "readerstudy 0.1.0" in provenance
    assert html.index("<h2>Provenance</h2>") < html.index("Primary endpoint")


def test_every_new_results_key_is_documented(custom_result):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text(encoding="utf-8")
    r = custom_result.results
    keys = set(r["questions"]["confidence"]) | set(r["provenance"]) | {"choices", "questions", "provenance"}
    keys |= set(r["choices"]["urgency"]["attending"]["model"]) | set(
        r["choices"]["urgency"]["attending"]["model"]["shares"]["urgent"])
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"undocumented results keys: {missing}"
