"""Report-text metrics on simulated studies: the per-read table, the direction of a built-in difference recovered by
the random-reader summary, the reference findings used when the cohort has them, and the report's section."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import run_analysis, write_report
from analysis.simulate import simulate_study
from analysis.text_metrics import TABLE_COLUMNS, TEXT_COLUMNS, text_metrics_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"
# Model drafts edited more than resident drafts by construction: the simulated edit reason decides the text
# change (a content edit rewrites the last sentence, a style edit the wording), and here almost every model
# draft gets both while most resident drafts are left as they are.
MODEL_EDITED_MORE = {"model": {"none": 0.05, "content": 0.15, "style": 0.10, "both": 0.70},
                     "reader": {"none": 0.75, "content": 0.10, "style": 0.10, "both": 0.05}}


@pytest.fixture(scope="module")
def edited_more_study():
    return simulate_study(seed=11, edit_reasons=MODEL_EDITED_MORE, reference_findings=True)


@pytest.fixture(scope="module")
def edited_more_result(edited_more_study):
    return run_analysis(edited_more_study, n_boot=200, seed=5)


def test_the_per_read_table_has_one_row_per_edit_and_pair(edited_more_study, edited_more_result):
    reads = edited_more_study.counted_reads()
    table = edited_more_result.text_metrics
    assert list(table.columns) == TABLE_COLUMNS + TEXT_COLUMNS
    edits = reads.loc[reads["task"].eq("edit")]
    draft_final = table.loc[table["pair"].eq("draft_final")].set_index("assignment_id")
    assert sorted(draft_final.index) == sorted(edits["assignment_id"])
    # The draft-to-final distances are the export's columns: one definition of an edit distance.
    exported = edits.set_index("assignment_id").loc[draft_final.index]
    assert (draft_final["edit_chars"].astype(int) == exported["edit_chars"].astype(int)).all()
    assert (draft_final["edit_words"].astype(int) == exported["edit_words"].astype(int)).all()
    # An unedited draft: distance 0, BLEU 100, ROUGE-L 1; an edited one scores below.
    same = exported["unchanged"].astype(bool)
    assert same.any() and (~same).any()
    assert (draft_final.loc[same, ["edit_chars", "edit_words"]] == 0).all().all()
    assert (draft_final.loc[same, "bleu"] == 100).all() and (draft_final.loc[same, "rouge_l"] == 1).all()
    assert (draft_final.loc[~same, "bleu"] < 100).all() and (draft_final.loc[~same, "edit_chars"] > 0).all()
    # Against the reference: every submitted write and edit once, every distinct draft shown once.
    texts = reads.loc[reads["task"].isin(["write", "edit"])]
    assert table["pair"].eq("final_reference").sum() == len(texts)
    drafts = table.loc[table["pair"].eq("draft_reference")]
    assert drafts["draft_id"].is_unique and set(drafts["draft_id"]) == set(edits["draft_id"])
    assert set(table.loc[table["pair"].eq("final_reference"), "condition"]) == {"write", "edit_model", "edit_reader"}


def test_model_drafts_edited_more_is_recovered_with_its_random_reader_interval(edited_more_result):
    rr = edited_more_result.results["mrmc"]["text_metrics"]["draft_final"]["attending"]
    conclusion = "random_readers_random_cases"
    chars = rr["edit_chars"]["edit_model_minus_edit_reader"]["conclusions"][conclusion]
    words = rr["edit_words"]["edit_model_minus_edit_reader"]["conclusions"][conclusion]
    bleu = rr["bleu"]["edit_model_minus_edit_reader"]["conclusions"][conclusion]
    rouge = rr["rouge_l"]["edit_model_minus_edit_reader"]["conclusions"][conclusion]
    # More edits of the model drafts: larger distances, less of the draft surviving.
    assert chars["ci_low"] > 0 and words["ci_low"] > 0
    assert bleu["ci_high"] < 0 and rouge["ci_high"] < 0
    # Each condition's mean has its own random-reader interval, inside the metric's range.
    mean = rr["bleu"]["edit_model"]["means"]["edit_model"][conclusion]
    assert 0 <= mean["ci_low"] < mean["estimate"] < mean["ci_high"] <= 100
    per_read = edited_more_result.results["text_metrics"]["draft_final"]["attending"]
    assert per_read["edit_model"]["edit_chars"]["mean"] > per_read["edit_reader"]["edit_chars"]["mean"]
    # The report's difference table carries the same numbers.
    diffs = edited_more_result.tables["text_metrics_differences"]
    row = diffs.loc[diffs["pair"].eq("draft_final") & diffs["role"].eq("attending") & diffs["metric"].eq("edit_chars")]
    assert row["estimate"].iloc[0] == pytest.approx(chars["estimate"]) and row["ci_low"].iloc[0] > 0


def test_no_difference_when_both_sources_are_edited_alike():
    alike = {"model": {"none": 0.3, "content": 0.3, "style": 0.2, "both": 0.2}}
    alike["reader"] = alike["model"]
    result = run_analysis(simulate_study(seed=12, edit_reasons=alike), n_boot=100, seed=5)
    diff = result.results["mrmc"]["text_metrics"]["draft_final"]["attending"]["edit_chars"][
        "edit_model_minus_edit_reader"]["conclusions"]["random_readers_random_cases"]
    assert diff["ci_low"] < 0 < diff["ci_high"]


def test_without_reference_findings_only_drafts_against_final_texts():
    study = simulate_study(seed=4)
    assert study.cases["reference_findings"].isna().all()
    table = text_metrics_table(study.counted_reads(), study.cases)
    assert set(table["pair"]) == {"draft_final"}
    # A blank reference is no reference either.
    cases = study.cases.assign(reference_findings="  ")
    assert set(text_metrics_table(study.counted_reads(), cases)["pair"]) == {"draft_final"}


def test_a_study_without_texts_has_an_empty_table_and_no_section(tmp_path):
    from analysis.text_metrics import summarise_text_metrics

    study = simulate_study(seed=4)
    reads = study.counted_reads()
    table = text_metrics_table(reads.loc[reads["task"].isin(["compare", "rate_reasoning"])], study.cases)
    assert table.empty and list(table.columns) == TABLE_COLUMNS + TEXT_COLUMNS
    block, mrmc = summarise_text_metrics(table)
    assert block["draft_final"] == {} and block["reference_available"] is False
    assert mrmc == {"draft_final": {}, "final_reference": {}}
    # The report leaves the section out rather than print empty tables.
    result = run_analysis(study, n_boot=100)
    result.results["text_metrics"].update(draft_final={}, final_reference={}, draft_reference={})
    assert "id='text-metrics'" not in write_report(result, tmp_path).read_text()


def test_reference_metrics_follow_the_reference_text(edited_more_study):
    reads = edited_more_study.counted_reads()
    table = text_metrics_table(reads, edited_more_study.cases)
    # A reader text identical to the reference scores as identical; the table reads the reference per case.
    case = table.loc[table["pair"].eq("final_reference"), "case_id"].iloc[0]
    cases = edited_more_study.cases.copy()
    one = reads.loc[reads["case_id"].eq(case) & reads["task"].isin(["write", "edit"])].iloc[0]
    cases.loc[cases["case_id"].eq(case), "reference_findings"] = one["final_text"]
    row = text_metrics_table(reads, cases).set_index(["pair", "assignment_id"]).loc[
        ("final_reference", one["assignment_id"])]
    assert (row.edit_chars, row.edit_words, row.bleu, row.rouge_l) == (0, 0, 100.0, 1.0)


def test_report_has_the_section_the_csv_and_the_citations(edited_more_result, tmp_path):
    path = write_report(edited_more_result, tmp_path)
    html = path.read_text()
    start = html.index("id='text-metrics'")
    section = html[start:]
    assert "Report-text surface metrics" in section and "not whether a finding is right" in section
    assert "RadGraph F1" in section and "locally" in section
    assert "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:" in section
    assert "edit_model - edit_reader" in section and "per-draft bootstrap" in section
    # The per-read table beside the report, without the report texts.
    csv = pd.read_csv(tmp_path / "text_metrics.csv")
    assert list(csv.columns) == TABLE_COLUMNS and len(csv) == len(edited_more_result.text_metrics)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["text_metrics"]["reference_available"] is True
    for ref in ("Papineni, K.", "Lin, C.-Y. (2004)", "Post, M. (2018)", "Levenshtein, V. I. (1966)"):
        assert ref in html, ref
    assert "sacreBLEU (Post 2018" in edited_more_result.methods


def test_every_text_metrics_key_is_documented(edited_more_result):
    text = DOCS.read_text()
    tm = edited_more_result.results["text_metrics"]
    keys = set(tm) | set(tm["draft_final"]["attending"]["edit_model"]) | set(tm["draft_reference"]["model"])
    keys |= set(tm["draft_reference"]["model"]["corpus_bleu"]) | set(tm["draft_reference"]["model"]["bleu"])
    keys |= set(TABLE_COLUMNS)
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"undocumented text-metric keys: {missing}"


def test_json_has_no_nan(edited_more_result):
    def walk(obj):
        if isinstance(obj, dict):
            return any(walk(v) for v in obj.values())
        if isinstance(obj, list):
            return any(walk(v) for v in obj)
        return isinstance(obj, float) and not math.isfinite(obj)

    assert not walk(edited_more_result.results["text_metrics"])
