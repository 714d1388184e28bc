"""Edit metrics: Levenshtein distances on textbook examples; recomputation when the export lacks them."""

import pandas as pd

from analysis.stats import edit_metrics, levenshtein_chars, levenshtein_words


def test_levenshtein_textbook_example():
    # kitten -> sitting: 2 substitutions + 1 insertion = 3 (the classic example of
    # Levenshtein 1966 as given in Jurafsky & Martin, Speech and Language Processing, ch. 2).
    assert levenshtein_chars("kitten", "sitting") == 3
    assert levenshtein_chars("", "abc") == 3


def test_word_distance_and_whitespace_normalisation():
    assert levenshtein_words("no acute cardiopulmonary process", "no acute process seen") == 2
    assert levenshtein_chars("Heart  normal.\n", " Heart normal.") == 0


def test_edit_metrics_recomputed_when_columns_missing_and_kept_when_present():
    df = pd.DataFrame({"shown_text": ["The lungs are clear.", "Small effusion.", ""],
                       "final_text": ["The lungs are clear.", "Small left effusion.", None]})
    out = edit_metrics(df)
    assert out["edit_chars"].tolist()[:2] == [0, 5]
    assert out["edit_words"].tolist()[:2] == [0, 1]
    assert out["unchanged"].tolist()[:2] == [True, False]
    assert pd.isna(out["edit_chars"].iloc[2])
    given = df.assign(edit_chars=[0, 99, None], edit_words=[0, 9, None], unchanged=[True, False, None])
    assert edit_metrics(given)["edit_chars"].iloc[1] == 99
