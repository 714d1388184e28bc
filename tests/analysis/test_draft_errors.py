"""Error annotation of drafts: the edits a reader annotates (hand-worked diffs) and the per-read counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.draft_errors import ERROR_CATEGORIES, draft_error_counts, edit_segments, errors_per_read, report_sentences


def _edits(shown, final):
    return [(s["kind"], s["draft"], s["final"], s["context"]) for s in edit_segments(shown, final)]


def test_sentences_split_at_sentence_ends_and_line_breaks_and_ignore_white_space():
    assert report_sentences("Heart normal.  No effusion;  lungs clear\n\nNo pneumothorax") == [
        "Heart normal.", "No effusion;", "lungs clear", "No pneumothorax"]
    assert report_sentences(None) == [] and report_sentences("   ") == []
    # A decimal point is not a sentence end (no white space after it).
    assert report_sentences("Nodule of 1.5 cm. Stable.") == ["Nodule of 1.5 cm.", "Stable."]


def test_an_unchanged_or_rewrapped_draft_has_no_edit():
    assert edit_segments("Heart normal. Lungs clear.", "Heart normal. Lungs clear.") == []
    assert edit_segments("Heart normal.\nLungs clear.", "  Heart   normal.  Lungs clear. ") == []


def test_a_changed_word_in_a_sentence_is_one_phrase_edit_with_its_sentence_as_context():
    # Worked by hand: sentence 1 differs only in "left" -> "right"; sentence 2 is equal; sentence 3 is added.
    assert _edits("Small left effusion. No pneumothorax.",
                  "Small right effusion. No pneumothorax. Heart size is normal.") == [
        ("replace", "left", "right", "Small left effusion."),
        ("insert", "", "Heart size is normal.", ""),
    ]


def test_two_changes_in_one_sentence_are_two_edits_and_adjacent_words_one():
    # "Mild" -> "Moderate" and "left" -> "right" are separated by an equal word: two edits, in text order.
    assert _edits("Mild cardiomegaly with left effusion.", "Moderate cardiomegaly with right effusion.") == [
        ("replace", "Mild", "Moderate", "Mild cardiomegaly with left effusion."),
        ("replace", "left", "right", "Mild cardiomegaly with left effusion."),
    ]
    # Adjacent changed words are one edit.
    assert _edits("Mild left effusion.", "Moderate right effusion.") == [
        ("replace", "Mild left", "Moderate right", "Mild left effusion.")]


def test_deleted_sentences_and_words_and_merged_sentences():
    assert _edits("Heart normal. Lungs clear. No effusion.", "Heart normal. No effusion.") == [
        ("delete", "Lungs clear.", "", "")]
    assert _edits("No acute cardiopulmonary process.", "No acute process.") == [
        ("delete", "cardiopulmonary", "", "No acute cardiopulmonary process.")]
    # Two sentences merged into one: runs of unequal length stay one edit.
    assert _edits("Heart normal. Lungs clear.", "Heart normal and lungs clear.") == [
        ("replace", "Heart normal. Lungs clear.", "Heart normal and lungs clear.", "")]
    # From nothing: the whole text is one added sentence per run.
    assert _edits("", "New opacity. Stable.") == [("insert", "", "New opacity. Stable.", "")]


def test_edits_are_numbered_from_one_in_text_order():
    segments = edit_segments("A b. C d. E f.", "A x. C d. E f. G h.")
    assert [s["segment"] for s in segments] == [1, 2]


def test_counts_have_every_category_and_significance_and_count_an_unchanged_draft_as_zero():
    assignments = pd.DataFrame({"assignment_id": [1, 2, 3], "draft_id": [10, 20, 30],
                                "errors_annotated": [True, True, None]})
    errors = pd.DataFrame({"assignment_id": [1, 1, 1], "segment": [1, 2, 3],
                           "category": ["wrong_severity", "wrong_severity", "not_an_error"],
                           "significant": [True, False, None]})
    counts = draft_error_counts(assignments, errors)
    assert len(counts) == 2 * len(ERROR_CATEGORIES) * 2  # reads 1 and 2; read 3 annotated nothing
    assert counts["n_errors"].sum() == 2
    per_read = errors_per_read(assignments, errors).set_index("assignment_id")
    assert per_read.loc[1, ["n_errors", "n_significant", "n_not_significant", "sig_wrong_severity"]].tolist() == [
        2, 1, 1, 1]
    assert per_read.loc[2, "n_errors"] == 0 and 3 not in per_read.index


def _true_difference(rates):
    # The simulated reader effect (SD 0.3 on the log rate) scales every mean by E[exp(N(0, 0.3))] = exp(0.045).
    return (rates["model"][0] - rates["reader"][0]) * np.exp(0.3 ** 2 / 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_more_significant_errors_in_model_drafts_are_recovered_within_the_random_reader_interval(seed):
    from analysis.draft_errors import analyse_draft_errors
    from analysis.simulate import simulate_study

    rates = {"model": (0.9, 0.5), "reader": (0.3, 0.5)}
    tables = simulate_study(seed=seed, n_readers=12, draft_errors=rates)
    result = analyse_draft_errors(tables.counted_reads(), tables.draft_errors, tables.answers)
    [row] = [r for r in result["comparisons"] if r["role"] == "attending"
             and r["measure"] == "clinically significant errors per draft"]
    assert row["ci_low"] <= _true_difference(rates) <= row["ci_high"]
    assert row["ci_low"] > 0, "a difference of 0.6 errors per draft is found"
    # The same method as every per-read endpoint: the OR/Hillis digest, random readers and random cases.
    digest = result["or"]["attending"]["n_significant"]
    assert digest["levels"] == ["edit_model", "edit_reader"] and digest["n_readers"] == row["n_readers"]
    by_source = {r["condition"]: r for r in result["by_source"] if r["role"] == "attending"}
    assert by_source["edit_model"]["significant_per_draft"] > by_source["edit_reader"]["significant_per_draft"]


def test_equal_error_rates_give_intervals_that_cover_zero_about_95_times_in_100():
    from analysis.draft_errors import analyse_draft_errors
    from analysis.simulate import simulate_study

    covered = 0
    for seed in range(20):
        tables = simulate_study(seed=seed, n_readers=12, draft_errors={"model": (0.5, 0.5), "reader": (0.5, 0.5)})
        result = analyse_draft_errors(tables.counted_reads(), tables.draft_errors, tables.answers)
        row = next(r for r in result["comparisons"] if r["role"] == "attending")
        covered += row["ci_low"] < 0 < row["ci_high"]
    # 95% intervals: P(fewer than 17 of 20 cover) = 0.016 under a binomial(20, 0.95).
    assert covered >= 17


def test_the_report_has_the_draft_errors_section_with_edit_reasons_and_times(tmp_path):
    from analysis import load_tables, run_analysis, write_report
    from analysis.simulate import simulate_study, write_export

    tables = simulate_study(seed=1, n_readers=8, n_cases=40, reads_per_reader=20,
                            draft_errors={"model": (0.9, 0.5), "reader": (0.3, 0.5)})
    write_export(tables, tmp_path / "export")  # round trip through the files the analysis reads
    back = load_tables(tmp_path / "export")
    assert len(back.draft_errors) == len(tables.draft_errors)
    result = run_analysis(back, n_boot=50)
    errors = result.results["draft_errors"]
    assert {r["edit_reason"] for r in errors["by_edit_reason"]} <= {"none", "content", "style", "both"}
    assert errors["by_edit_reason"] and {r["significant_errors"] for r in errors["by_time"]} <= {"0", "1", "2+"}
    html = write_report(result, tmp_path / "report").read_text()
    assert "id='draft-errors'" in html and "Patterns 2023;4(9):100802" in html
    assert "Model drafts minus reader drafts: errors per draft" in html
    # A study without annotation has no such section.
    plain = run_analysis(simulate_study(seed=1, n_readers=8, n_cases=40, reads_per_reader=20), n_boot=50)
    assert plain.results["draft_errors"] == {} and "draft_errors_comparisons" not in plain.tables


def test_the_loader_refuses_unknown_categories_duplicated_edits_and_errors_without_significance():
    from analysis.simulate import simulate_study
    from analysis.tables import AnalysisInputError, tables_from_frames

    t = simulate_study(seed=1, n_readers=8, n_cases=40, reads_per_reader=20,
                       draft_errors={"model": (0.9, 0.5), "reader": (0.3, 0.5)})
    frames = {n: getattr(t, n) for n in ("assignments", "answers", "drafts", "cases", "readers")}
    errors = t.draft_errors
    first_error = errors.index[errors["category"].ne("not_an_error")][0]
    for change, message in (
            (lambda e: e.assign(category=e["category"].where(e.index != 0, "typo")),
             r"draft_errors.category has value\(s\) outside the data dictionary: typo"),
            (lambda e: pd.concat([e, e.iloc[[0]]]), "is annotated more than once"),
            (lambda e: e.assign(significant=e["significant"].astype(object).where(e.index != first_error, None)),
             "an error without its clinical significance"),
            (lambda e: e.assign(assignment_id=e["assignment_id"].where(e.index != 0, "S9999999")),
             "unknown assignment_id S9999999")):
        with pytest.raises(AnalysisInputError, match=message):
            tables_from_frames({**frames, "draft_errors": change(errors.copy())}, t.meta)


def test_a_plan_can_make_the_significant_error_difference_its_primary_endpoint():
    from analysis import run_analysis
    from analysis.plan import check_plan_against_design, parse_plan
    from analysis.simulate import simulate_study

    primary = {"name": "sig", "endpoint": "significant_errors", "role": "attending", "reference": "edit_reader",
               "comparison": "edit_model"}
    plan = parse_plan({"primary": primary})
    with pytest.raises(ValueError, match="errors are annotated in the drafts of edits; 'write' is not an edit"):
        check_plan_against_design(parse_plan({"primary": {**primary, "role": "resident", "reference": "write"}}),
                                  {"resident": {"write", "edit_model"}}, set())
    rates = {"model": (0.9, 0.5), "reader": (0.3, 0.5)}
    result = run_analysis(simulate_study(seed=2, n_readers=12, draft_errors=rates), n_boot=50, plan=plan)
    [endpoint] = result.results["endpoints"]
    assert endpoint["error"] is None and endpoint["scale"] == "difference"
    assert endpoint["ci_low"] <= _true_difference(rates) <= endpoint["ci_high"] and endpoint["ci_low"] > 0
    # The same figure as the errors section's comparison: one method, one count.
    row = next(r for r in result.results["draft_errors"]["comparisons"] if r["role"] == "attending"
               and r["measure"] == "clinically significant errors per draft")
    assert endpoint["estimate"] == pytest.approx(row["estimate"])
    # Without annotations the endpoint says it cannot be estimated, and nothing fails.
    plain = run_analysis(simulate_study(seed=2, n_readers=12), n_boot=50, plan=plan)
    assert "cannot be estimated" in plain.results["endpoints"][0]["error"]


def test_the_reader_app_gets_the_edits_and_categories_without_pandas_or_scipy():
    """The page and the service cut the edits on every rerun; their module imports only the standard library."""
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import sys, analysis.draft_errors; "
             "print(','.join(m for m in ('pandas', 'scipy', 'rapidfuzz') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert loaded == ""
