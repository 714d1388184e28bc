"""Error annotation of drafts: the edits a reader annotates (hand-worked diffs) and the per-read counts."""

from __future__ import annotations

import pandas as pd

from analysis.draft_errors import ERROR_CATEGORIES, draft_error_counts, errors_per_read
from analysis.stats.text import edit_segments, report_sentences


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
