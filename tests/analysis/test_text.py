"""Text metrics: Levenshtein distances, BLEU and ROUGE-L on hand-worked and library-documented examples; recomputation of edit metrics when the export lacks them."""

import pandas as pd
import pytest

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


def test_edit_distances_on_hand_worked_report_edits():
    from analysis.stats.text import edit_distances

    # flaw -> lawn: delete f, insert n (the textbook pair with distance 2, Jurafsky & Martin ch. 2).
    assert levenshtein_chars("flaw", "lawn") == 2
    # A plural is one inserted character; a laterality swap "left" -> "right" is l->r, e->i, f->g, insert h = 4.
    assert levenshtein_chars("Small effusion.", "Small effusions.") == 1
    assert levenshtein_chars("left", "right") == 4
    # Words: delete "is", insert "no" and "effusion" = 3 (no alignment does it in fewer).
    assert levenshtein_words("heart size is normal", "heart size normal no effusion") == 3
    # The triple the export stores: re-wrapping is no edit, a changed word is one word and its characters.
    assert edit_distances("Heart size\nis normal.", "Heart size is normal.") == (0, 0, True)
    # Mild -> Moderate: keep M, i->o, l->d, d->e, insert r, a, t, e = 3 + 4 = 7 (4 insertions are forced by the
    # lengths, and no alignment keeps more than two letters of "Mild").
    assert edit_distances("Mild cardiomegaly.", "Moderate cardiomegaly.") == (7, 1, False)


def test_sentence_bleu_on_hand_computed_values():
    import math

    from analysis.stats import bleu

    # Hand-computed with Papineni et al. (2002)'s formula, tokens split on spaces (13a leaves these unchanged):
    # clipped precisions 5/6, 3/5, 2/4, 1/3, equal lengths (BP = 1): 100 * (5/6 * 3/5 * 2/4 * 1/3) ** (1/4).
    assert bleu("the cat sat on the mat", "the cat sat on a mat") == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-8)
    # Every precision 1, hypothesis 4 tokens against 6: BP = exp(1 - 6/4).
    assert bleu("the cat sat on", "the cat sat on the mat") == pytest.approx(100 * math.exp(-0.5), abs=1e-8)
    # Zero counts, sacreBLEU's 'exp' smoothing with effective order: p1 = 2/3, the first zero precision
    # (2-grams, 2 of them) becomes 1/(2*2), the second (3-grams, 1) 1/(4*1); no 4-gram in the hypothesis, so the
    # mean runs over 3 orders; hypothesis longer than the reference, BP = 1.
    assert bleu("no pleural effusion", "no effusion") == pytest.approx(100 * (2 / 3 * 1 / 4 * 1 / 4) ** (1 / 3),
                                                                        abs=1e-8)
    assert bleu("Heart size is normal.", "Heart size is normal.") == 100.0
    assert bleu("", "Heart size is normal.") == 0.0
    assert math.isnan(bleu(None, "Heart size is normal.")) and math.isnan(bleu("Heart.", float("nan")))
    # Case-sensitive, as sacreBLEU by default: "The" and "the" are different tokens.
    assert bleu("The lungs are clear", "the lungs are clear") < 100


def test_corpus_bleu_matches_sacrebleus_documented_example():
    """sacreBLEU's README ("Using SacreBLEU from Python") prints BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943
    ratio = 0.944 hyp_len = 17 ref_len = 18) for these texts and two reference streams; with its first stream only
    the counts are those summed by hand below."""
    from sacrebleu.metrics import BLEU

    from analysis.stats import corpus_bleu

    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
            ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
    documented = BLEU().corpus_score(hyps, refs)
    assert round(documented.score, 2) == 48.53 and [round(p, 1) for p in documented.precisions] == [82.4, 50.0, 45.5, 37.5]
    # Our wrapper, one reference per text: two hand-summed pairs (the first identical, 6 tokens with 13a:
    # "The dog bit the man ." against itself; the second "the cat sat on the mat" against "the cat sat on a mat").
    out = corpus_bleu(["The dog bit the man.", "the cat sat on the mat"], ["The dog bit the man.", "the cat sat on a mat"])
    # 1-grams (6 + 5) / 12, 2-grams (5 + 3) / 10, 3-grams (4 + 2) / 8, 4-grams (3 + 1) / 6; equal lengths.
    expected = 100 * (11 / 12 * 8 / 10 * 6 / 8 * 4 / 6) ** 0.25
    assert out["bleu"] == pytest.approx(expected, abs=1e-8) and out["n_pairs"] == 2 and out["bp"] == 1.0
    assert out["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert corpus_bleu(["x"], [None])["n_pairs"] == 0


def test_corpus_bleu_is_sacrebleus_corpus_score():
    """corpus_bleu sums the statistics of the sentence scores instead of tokenising twice: the same number as
    sacreBLEU's own corpus_score, with and without zero n-gram counts (the exp smoothing) and a brevity penalty."""
    from sacrebleu.metrics import BLEU

    from analysis.simulate import simulate_study
    from analysis.stats import corpus_bleu

    edits = simulate_study(seed=2).assignments.dropna(subset=["shown_text", "final_text"])
    edits = edits.loc[edits["task"].eq("edit")]
    for hyps, refs in ((edits["shown_text"].tolist(), edits["final_text"].tolist()),
                       (["no effusion", "the heart"], ["no pleural effusion seen here", "lungs"]),
                       (["a b c d e f"], ["a b c d e f g h i j"])):
        ours = corpus_bleu(hyps, refs)
        theirs = BLEU().corpus_score(hyps, [refs])
        assert ours["bleu"] == pytest.approx(theirs.score, abs=1e-9), (hyps, refs)
        assert ours["bp"] == pytest.approx(theirs.bp) and ours["sys_len"] == theirs.sys_len
        assert ours["precisions"] == pytest.approx(theirs.precisions)


def test_rouge_l_on_hand_computed_and_documented_values():
    import math

    from analysis.stats import rouge_l

    # rouge-score's README example (target "The quick brown fox jumps over the lazy dog", prediction "The quick
    # brown dog jumps on the log."): LCS "the quick brown jumps the" = 5 words, P = 5/8, R = 5/9.
    p, r = 5 / 8, 5 / 9
    assert rouge_l("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog") == \
        pytest.approx(2 * p * r / (p + r), abs=1e-12)
    # LCS 3 of a 3-word hypothesis and a 4-word reference: F = 2 * 1 * 3/4 / (1 + 3/4) = 6/7; symmetric.
    assert rouge_l("no acute process", "no acute cardiopulmonary process") == pytest.approx(6 / 7, abs=1e-12)
    assert rouge_l("no acute cardiopulmonary process", "no acute process") == pytest.approx(6 / 7, abs=1e-12)
    # Order matters (a subsequence), case and punctuation do not (the tokenizer lowercases, keeps a-z0-9).
    assert rouge_l("effusion pleural", "pleural effusion") == pytest.approx(0.5)
    assert rouge_l("Pleural effusion.", "pleural effusion") == 1.0
    assert rouge_l("", "pleural effusion") == 0.0 and math.isnan(rouge_l("pleural effusion", None))
