"""Edit metrics between the draft shown and the submitted text: character and word Levenshtein distances."""

from __future__ import annotations

import pandas as pd
from rapidfuzz.distance import Levenshtein


def _normalise(text) -> str:
    if text is None or (isinstance(text, float) and text != text) or text is pd.NA:
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
