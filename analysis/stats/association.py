"""Stratified permutation tests of association between a feature and a binary label (e.g. a draft's source)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats


def _within_stratum_ranks(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values), dtype=float)
    for stratum in np.unique(strata):
        where = np.flatnonzero(strata == stratum)
        ranks[where] = stats.rankdata(values[where])
    return ranks


def stratified_permutation_test(values, labels, strata, *, kind: str = "categorical", n_permutations: int = 5000,
                                seed: int = 0) -> dict:
    """Permutation test of whether a feature differs between two labels, within strata.

    Parameters
    ----------
    values : array-like
        The feature, one value per unit (e.g. per blinded case). Categorical values are compared for
        equality (anything hashable; missing values form a category of their own); numeric ones by rank.
    labels : array-like of bool or {0, 1}
        The label each unit carries (e.g. ``True`` for a model draft).
    strata : array-like
        The stratum of each unit (e.g. the reader); labels are permuted within strata only, so each
        stratum keeps its own count of each label.
    kind : {"categorical", "numeric"}
    n_permutations : int
        Monte-Carlo permutations when the exact distribution is out of reach (a stratum with more than
        50,000 arrangements); otherwise the p-value is exact.
    seed : int
        Seed of the Monte-Carlo permutations.

    Returns
    -------
    dict
        * ``'statistic'``: the observed statistic (see Notes)
        * ``'p_val'``: the share of arrangements with a statistic at least as large (exact: the strata's
          parts are independent, so the null distribution is the convolution of each stratum's), or
          :math:`(1 + \\#\\{T^* \\ge T\\}) / (1 + B)` for B Monte-Carlo permutations
        * ``'exact'``: whether every arrangement was enumerated
        * ``'n'``, ``'n_label'``, ``'n_strata'``, ``'n_informative_strata'``: units, units with the label,
          strata, and strata with both labels and more than one feature value (only these can show an
          association)
        * ``'min_p'``: the smallest p-value the design allows (one arrangement in all, or 1 / (1 + B))

    Notes
    -----
    Numeric features are ranked within each stratum (mid-ranks for ties); the statistic is van Elteren's
    (1960) stratified rank-sum: :math:`T = |\\sum_s (W_s - E W_s)| / \\sqrt{\\sum_s \\mathrm{Var}\\,W_s}`,
    where :math:`W_s` is the rank sum of the labelled units in stratum s, with
    :math:`E W_s = m_s (n_s + 1) / 2` and :math:`\\mathrm{Var}\\,W_s = m_s (n_s - m_s) (n_s + 1) / 12`
    (ties are left to the permutation distribution, which is exact for them).

    Categorical features use the stratified chi-square of the labelled units' counts,
    :math:`T = \\sum_s \\sum_c (O_{sc} - E_{sc})^2 / E_{sc}` with :math:`E_{sc} = m_s n_{sc} / n_s`, in the
    spirit of the Cochran-Mantel-Haenszel test; its null distribution is taken from the permutations, not
    from a chi-square approximation, so it is valid with the very small counts of a reader study.

    A feature that takes one value within every stratum cannot be associated with the label: p = 1.

    References
    ----------
    van Elteren, P. H. (1960). On the combination of independent two-sample tests of Wilcoxon. Bulletin of
    the International Statistical Institute, 37, 351-361.

    Mantel, N., & Haenszel, W. (1959). Statistical aspects of the analysis of data from retrospective
    studies of disease. Journal of the National Cancer Institute, 22(4), 719-748.

    Good, P. I. (2005). Permutation, Parametric, and Bootstrap Tests of Hypotheses (3rd ed.). Springer.

    Examples
    --------
    >>> from analysis.stats.association import stratified_permutation_test
    >>> r = stratified_permutation_test(["held", "held", "open", "open"], [1, 1, 0, 0], ["a", "a", "a", "a"])
    >>> round(r["p_val"], 4), r["exact"]
    (0.3333, True)
    """
    if kind not in ("categorical", "numeric"):
        raise ValueError(f"kind must be 'categorical' or 'numeric', not {kind!r}")
    labels = np.asarray(labels).astype(bool)
    strata = np.asarray(pd.Series(strata).astype(str))
    if not len(labels) == len(strata) == len(values):
        raise ValueError("values, labels and strata must have the same length")
    if kind == "numeric":
        numeric = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        if np.isnan(numeric).any():
            raise ValueError("a numeric feature has missing or non-numeric values; encode them first")
        encoded = _within_stratum_ranks(numeric, strata)
    else:
        codes, _ = pd.factorize(pd.Series(values, dtype=object).map(lambda v: "(missing)" if v is None else v))
        encoded = codes.astype(int)

    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    informative = [g for g in groups if 0 < labels[g].sum() < len(g) and len(np.unique(encoded[g])) > 1]
    result = {"n": int(len(labels)), "n_label": int(labels.sum()), "n_strata": len(groups),
              "n_informative_strata": len(informative)}
    if not informative:
        return {**result, "statistic": 0.0, "p_val": 1.0, "exact": True, "min_p": 1.0}

    def contribution(group: np.ndarray, chosen) -> float:
        """One stratum's part of the statistic: its centred rank sum, or its chi-square."""
        n, m = len(group), len(chosen)
        values = encoded[group]
        if kind == "numeric":
            return float(values[list(chosen)].sum() - m * (n + 1) / 2)
        categories, per_category = np.unique(values, return_counts=True)
        picked = values[list(chosen)]
        observed_counts = np.array([(picked == c).sum() for c in categories], dtype=float)
        expected = m * per_category / n
        return float(((observed_counts - expected) ** 2 / expected).sum())

    def combine(parts: list[float]) -> float:
        if kind == "numeric":
            variance = sum(m * (n - m) * (n + 1) / 12 for n, m in sizes)
            return abs(sum(parts)) / math.sqrt(variance) if variance > 0 else 0.0
        return float(sum(parts))

    sizes = [(len(g), int(labels[g].sum())) for g in informative]
    observed_parts = [contribution(g, np.flatnonzero(labels[g])) for g in informative]
    observed = combine(observed_parts)
    # A tolerance on ">=": sums of floats that are equal in exact arithmetic must count as equal.
    tolerance = 1e-9 * max(1.0, abs(observed))
    exact = _exact_distribution(informative, sizes, contribution)
    if exact is not None:
        # The statistic is a sum over strata of independent parts: its exact null distribution is the
        # convolution of each stratum's distribution over all its arrangements.
        total = sum(exact.values())
        at_least = sum(count for value, count in exact.items()
                       if combine([value]) >= observed - tolerance)
        largest = max(combine([value]) for value in exact)
        smallest = sum(count for value, count in exact.items() if combine([value]) >= largest - 1e-9 * max(1, largest))
        return {**result, "statistic": observed, "p_val": at_least / total, "exact": True, "min_p": smallest / total}
    rng = np.random.default_rng(seed)
    at_least = 0
    for _ in range(n_permutations):
        parts = [contribution(g, rng.choice(n, size=m, replace=False)) for g, (n, m) in zip(informative, sizes)]
        if combine(parts) >= observed - tolerance:
            at_least += 1
    return {**result, "statistic": observed, "p_val": (1 + at_least) / (1 + n_permutations), "exact": False,
            "min_p": 1 / (1 + n_permutations)}


# Exact enumeration while every stratum has at most this many arrangements and the convolution stays small.
_MAX_STRATUM_ARRANGEMENTS = 50_000
_MAX_SUPPORT = 200_000


def _exact_distribution(groups, sizes, contribution) -> dict[float, int] | None:
    """The exact null distribution of the summed statistic (value -> number of arrangements), or None when too big."""
    if any(math.comb(n, m) > _MAX_STRATUM_ARRANGEMENTS for n, m in sizes):
        return None
    combined: dict[float, int] = {0.0: 1}
    for group, (n, m) in zip(groups, sizes):
        stratum: dict[float, int] = {}
        for chosen in itertools.combinations(range(n), m):
            value = round(contribution(group, np.array(chosen, dtype=int)), 9)
            stratum[value] = stratum.get(value, 0) + 1
        merged: dict[float, int] = {}
        for total, count in combined.items():
            for value, ways in stratum.items():
                key = round(total + value, 9)
                merged[key] = merged.get(key, 0) + count * ways
        if len(merged) > _MAX_SUPPORT:
            return None
        combined = merged
    return combined
