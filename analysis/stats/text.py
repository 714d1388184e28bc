"""Surface metrics between two report texts: character and word Levenshtein distances, sentence BLEU and ROUGE-L."""

from __future__ import annotations

import math
from functools import lru_cache

import pandas as pd
from rapidfuzz.distance import Levenshtein


def _missing(text) -> bool:
    return text is None or text is pd.NA or (isinstance(text, float) and text != text)


def _normalise(text) -> str:
    if _missing(text):
        return ""
    return " ".join(str(text).split())


def levenshtein_chars(shown, final) -> int:
    """Character-level Levenshtein distance between two texts after whitespace normalisation.

    Parameters
    ----------
    shown, final : str or None
        Draft shown in the editor and the submitted text; missing counts as "".

    Returns
    -------
    int
        Minimum number of single-character insertions, deletions and substitutions.

    Notes
    -----
    Runs of whitespace are collapsed to one space and ends stripped first, so
    re-wrapping lines is not an edit. Computed with ``rapidfuzz``.

    References
    ----------
    Levenshtein, V. I. (1966). Binary codes capable of correcting deletions,
    insertions, and reversals. Soviet Physics Doklady, 10(8), 707-710.

    Examples
    --------
    >>> from analysis.stats import levenshtein_chars
    >>> levenshtein_chars("kitten", "sitting")
    3
    """
    return int(Levenshtein.distance(_normalise(shown), _normalise(final)))


def levenshtein_words(shown, final) -> int:
    """Word-level Levenshtein distance (words = whitespace-separated tokens).

    Parameters
    ----------
    shown, final : str or None

    Returns
    -------
    int
        Minimum number of word insertions, deletions and substitutions.

    Notes
    -----
    The same dynamic programme as :func:`levenshtein_chars` on token sequences.

    References
    ----------
    Levenshtein, V. I. (1966). Soviet Physics Doklady, 10(8), 707-710.

    Examples
    --------
    >>> from analysis.stats import levenshtein_words
    >>> levenshtein_words("no acute cardiopulmonary process", "no acute process seen")
    2
    """
    return int(Levenshtein.distance(_normalise(shown).split(), _normalise(final).split()))


def edit_distances(shown, final) -> tuple[int, int, bool]:
    """The three edit metrics of one read: character and word distances, and whether the text was left unchanged.

    Parameters
    ----------
    shown, final : str or None
        The draft shown in the editor and the submitted text; missing counts as "".

    Returns
    -------
    tuple of (int, int, bool)
        :func:`levenshtein_chars`, :func:`levenshtein_words`, and whether the two texts are equal after
        whitespace normalisation. The one definition: the export computes its ``edit_chars``,
        ``edit_words`` and ``unchanged`` columns with it, and :func:`edit_metrics` fills missing ones with it.

    Notes
    -----
    All three compare the texts after whitespace normalisation (runs collapsed, ends stripped), so a
    re-wrapped line is neither an edit nor a change.

    References
    ----------
    Levenshtein, V. I. (1966). Soviet Physics Doklady, 10(8), 707-710.

    Examples
    --------
    >>> from analysis.stats.text import edit_distances
    >>> edit_distances("Heart normal.", "  Heart normal.")
    (0, 0, True)
    """
    a, b = _normalise(shown), _normalise(final)
    return int(Levenshtein.distance(a, b)), int(Levenshtein.distance(a.split(), b.split())), a == b


def edit_metrics(assignments: pd.DataFrame, recompute: bool = False) -> pd.DataFrame:
    """Fill ``edit_chars``, ``edit_words`` and ``unchanged`` where the export lacks them.

    Parameters
    ----------
    assignments : pandas.DataFrame
        Must hold ``shown_text`` and ``final_text``.
    recompute : bool
        Recompute every row even where the columns exist.

    Returns
    -------
    pandas.DataFrame
        Copy with columns ``edit_chars`` (int), ``edit_words`` (int) and ``unchanged``
        (bool: texts equal after whitespace normalisation). Rows without a
        ``final_text`` (nothing submitted) get missing values.

    Notes
    -----
    Only missing cells are filled unless ``recompute``; existing values from the
    export (computed by the platform at submit) are kept.

    References
    ----------
    Levenshtein, V. I. (1966). Soviet Physics Doklady, 10(8), 707-710.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.stats import edit_metrics
    >>> df = pd.DataFrame({"shown_text": ["Normal heart."], "final_text": ["Normal  heart."]})
    >>> out = edit_metrics(df)
    >>> int(out["edit_chars"][0]), int(out["edit_words"][0]), bool(out["unchanged"][0])
    (0, 0, True)
    """
    out = assignments.copy()
    has_final = out["final_text"].notna()
    for col in ("edit_chars", "edit_words", "unchanged"):
        if col not in out.columns or recompute:
            out[col] = pd.NA
    todo = has_final & (out["edit_chars"].isna() | out["edit_words"].isna() | out["unchanged"].isna())
    if todo.any():
        measured = [edit_distances(s, f) for s, f in zip(out.loc[todo, "shown_text"], out.loc[todo, "final_text"])]
        chars, words, same = ([m[i] for m in measured] for i in range(3))
        fill_chars = out.loc[todo, "edit_chars"].isna()
        fill_words = out.loc[todo, "edit_words"].isna()
        fill_same = out.loc[todo, "unchanged"].isna()
        idx = out.index[todo]
        out["edit_chars"] = out["edit_chars"].astype("Float64")
        out["edit_words"] = out["edit_words"].astype("Float64")
        out["unchanged"] = out["unchanged"].astype("boolean")
        out.loc[idx[fill_chars.to_numpy()], "edit_chars"] = [c for c, f in zip(chars, fill_chars) if f]
        out.loc[idx[fill_words.to_numpy()], "edit_words"] = [w for w, f in zip(words, fill_words) if f]
        out.loc[idx[fill_same.to_numpy()], "unchanged"] = [s for s, f in zip(same, fill_same) if f]
    out["edit_chars"] = pd.to_numeric(out["edit_chars"], errors="coerce").astype("Float64")
    out["edit_words"] = pd.to_numeric(out["edit_words"], errors="coerce").astype("Float64")
    out["unchanged"] = out["unchanged"].astype("boolean")
    return out


@lru_cache(maxsize=1)
def _bleu_metric():
    # sacreBLEU is imported here, not at module level: the export imports this module for edit_distances and the
    # server must start without it. One BLEU object serves every sentence (building one per call costs more than
    # scoring).
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


@lru_cache(maxsize=1)
def _rouge_scorer():
    # rouge-score imports nltk (about 1.5 s): only when a ROUGE-L is asked for.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


# Scores of recent text pairs: a study's corpus BLEU sums the n-gram statistics its sentence BLEUs already counted
# (n-gram extraction is most of the cost: 7 s of 100 readers x 5,000 cases), and an unedited draft's pair against
# the reference is the submitted text's pair too. Bounded, so a long-lived process does not grow with it.
_PAIR_CACHE = 1 << 16


@lru_cache(maxsize=_PAIR_CACHE)
def _sentence_bleu(hypothesis: str, reference: str):
    return _bleu_metric().sentence_score(hypothesis, [reference])


@lru_cache(maxsize=_PAIR_CACHE)
def _rouge_l_f(hypothesis: str, reference: str) -> float:
    return float(_rouge_scorer().score(reference, hypothesis)["rougeL"].fmeasure)


def bleu(hypothesis, reference) -> float:
    """Sentence-level BLEU of one text against one reference text, with sacreBLEU's defaults.

    Parameters
    ----------
    hypothesis : str or None
        The text scored (a draft, or the reader's final text).
    reference : str or None
        The text it is scored against (the reader's final text, or the reference findings).

    Returns
    -------
    float
        BLEU on sacreBLEU's 0-100 scale: 100 for identical token sequences, 0 when no word is shared. NaN when
        either text is missing (None/NaN); an empty text scores 0.

    Notes
    -----
    BLEU is the geometric mean of the clipped n-gram precisions :math:`p_n` (n = 1..4) of the hypothesis times
    a brevity penalty, :math:`\\mathrm{BP}\\,\\exp(\\frac{1}{N}\\sum_n \\log p_n)` with
    :math:`\\mathrm{BP} = \\min(1, e^{1 - r/c})` for hypothesis length c and reference length r (Papineni et al.
    2002). Computed by sacreBLEU (Post 2018) with the settings of its ``sentence_bleu``: the ``13a`` tokenizer
    (mteval's), case-sensitive, effective order (orders with no n-gram in the hypothesis are left out, so a
    three-word text is not scored 0) and the ``exp`` smoothing of zero counts (the k-th zero precision becomes
    :math:`1 / (2^k \\cdot \\text{total}_n)`). The signature of these settings is
    :func:`corpus_bleu`'s ``signature``. BLEU is asymmetric (precision of the hypothesis, brevity against the
    reference), and a surface measure: it counts shared word sequences, not whether a finding or its negation
    is right ("no pleural effusion" and "pleural effusion" share most n-grams).

    References
    ----------
    Papineni, K., Roukos, S., Ward, T., & Zhu, W.-J. (2002). BLEU: a method for automatic evaluation of machine
    translation. Proceedings of the 40th Annual Meeting of the ACL, 311-318.

    Post, M. (2018). A call for clarity in reporting BLEU scores. Proceedings of the Third Conference on Machine
    Translation: Research Papers, 186-191.

    Examples
    --------
    >>> from analysis.stats import bleu
    >>> round(bleu("the cat sat on the mat", "the cat sat on a mat"), 2)
    53.73
    >>> bleu("Heart size is normal.", "Heart size is normal.")
    100.0
    """
    if _missing(hypothesis) or _missing(reference):
        return math.nan
    return round(float(_sentence_bleu(str(hypothesis), str(reference)).score), 10)


def bleu_signature() -> str:
    """sacreBLEU's signature of the settings :func:`bleu` uses (``nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|
    version:...``), the string Post (2018) asks every reported BLEU to carry."""
    metric = _bleu_metric()
    # sacreBLEU knows the number of references only once it has scored something.
    metric.sentence_score("signature", ["signature"])
    return str(metric.get_signature())


def corpus_bleu(hypotheses, references) -> dict:
    """Corpus-level BLEU of many texts, each against its one reference, with sacreBLEU's defaults.

    Parameters
    ----------
    hypotheses, references : sequence of str
        Paired texts; pairs where either is missing are left out.

    Returns
    -------
    dict
        ``bleu`` (0-100), ``precisions`` (the four n-gram precisions, %), ``bp`` (brevity penalty), ``sys_len``,
        ``ref_len`` (tokens), ``n_pairs`` and ``signature`` (sacreBLEU's string of every setting and its
        version, for a methods section). With no pair: ``bleu`` NaN.

    Notes
    -----
    The n-gram counts of all pairs are summed before the precisions are taken (Papineni et al. 2002), so this
    is not the mean of :func:`bleu` over pairs: long texts weigh more, and smoothing is rarely needed. The same
    number as sacreBLEU's ``BLEU().corpus_score`` (Post 2018; ``13a`` tokenizer, case-sensitive, ``exp``
    smoothing): the per-pair statistics are those :func:`bleu` counted, summed and scored by sacreBLEU's own
    ``BLEU.compute_bleu``.

    References
    ----------
    Papineni, K., Roukos, S., Ward, T., & Zhu, W.-J. (2002). Proceedings of the 40th Annual Meeting of the ACL,
    311-318.

    Post, M. (2018). Proceedings of the Third Conference on Machine Translation, 186-191.

    Examples
    --------
    >>> from analysis.stats import corpus_bleu
    >>> out = corpus_bleu(["the cat sat on the mat", "no effusion"], ["the cat sat on a mat", "no effusion"])
    >>> round(out["bleu"], 2), out["n_pairs"]
    (55.84, 2)
    """
    from sacrebleu.metrics import BLEU

    pairs = [(str(h), str(r)) for h, r in zip(hypotheses, references) if not (_missing(h) or _missing(r))]
    if not pairs:
        return {"bleu": math.nan, "precisions": [], "bp": math.nan, "sys_len": 0, "ref_len": 0, "n_pairs": 0,
                "signature": None}
    # Sum each pair's n-gram statistics, as sacreBLEU's corpus_score does, from the sentence scores (tokenised the
    # same way); sacreBLEU's own formula turns the sums into the corpus score, without the sentence-level
    # effective order (corpus BLEU has every order).
    correct, total, sys_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for h, r in pairs:
        s = _sentence_bleu(h, r)
        correct = [a + b for a, b in zip(correct, s.counts)]
        total = [a + b for a, b in zip(total, s.totals)]
        sys_len, ref_len = sys_len + s.sys_len, ref_len + s.ref_len
    score = BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method="exp", effective_order=False)
    return {"bleu": float(score.score), "precisions": [float(p) for p in score.precisions], "bp": float(score.bp),
            "sys_len": int(sys_len), "ref_len": int(ref_len), "n_pairs": len(pairs), "signature": _corpus_signature()}


@lru_cache(maxsize=1)
def _corpus_signature() -> str:
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    metric.corpus_score(["signature"], [["signature"]])  # the signature knows nrefs only after a score
    return str(metric.get_signature())


def rouge_l(hypothesis, reference) -> float:
    """ROUGE-L F-measure of one text against one reference text (longest common subsequence of words).

    Parameters
    ----------
    hypothesis : str or None
        The text scored (a draft, or the reader's final text).
    reference : str or None
        The text it is scored against.

    Returns
    -------
    float
        F-measure from 0 (no word in common) to 1 (same words in the same order). NaN when either text is missing;
        an empty text scores 0.

    Notes
    -----
    With :math:`L` the length of the longest common subsequence of the two token sequences, :math:`m` the
    reference's length and :math:`n` the hypothesis's, precision is :math:`L/n`, recall :math:`L/m` and
    :math:`F = 2PR/(P+R)` (Lin 2004, with beta = 1). The words need not be adjacent, only in order, so
    reordered sentences lose and inserted words cost little. Computed by Google's ``rouge-score`` (``rougeL``,
    the whole text as one sequence, no stemming): its tokenizer lowercases and keeps only ``a-z`` and ``0-9``,
    so punctuation is ignored and a letter outside ASCII (an accented word) is dropped. Symmetric in its two
    arguments; a surface measure like :func:`bleu`.

    References
    ----------
    Lin, C.-Y. (2004). ROUGE: a package for automatic evaluation of summaries. Text Summarization Branches Out
    (ACL workshop), 74-81.

    Examples
    --------
    >>> from analysis.stats import rouge_l
    >>> round(rouge_l("no acute process", "no acute cardiopulmonary process"), 4)
    0.8571
    """
    if _missing(hypothesis) or _missing(reference):
        return math.nan
    return _rouge_l_f(str(hypothesis), str(reference))

