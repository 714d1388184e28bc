"""Multiplicity adjustment of a family of p-values (Holm's step-down, Bonferroni)."""

from __future__ import annotations

import numpy as np

METHODS = ("holm", "bonferroni", "none")


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Family-wise error adjusted p-values.

    Parameters
    ----------
    p : array_like of float
        Unadjusted p-values of one family. NaN (an endpoint that could not be
        tested) counts as 1 in the family size and stays NaN, so a missing result
        never makes the others look stronger.
    method : {'holm', 'bonferroni', 'none'}

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order, capped at 1.

    Notes
    -----
    Holm (1979): with :math:`m` p-values sorted :math:`p_{(1)} \\le \\dots \\le p_{(m)}`,
    :math:`\\tilde p_{(i)} = \\max_{j \\le i} \\min\\{1, (m - j + 1)\\,p_{(j)}\\}`;
    rejecting :math:`\\tilde p \\le \\alpha` controls the family-wise error rate at
    :math:`\\alpha` under any dependence. Bonferroni: :math:`\\min(1, m p)`. The
    same as R's ``p.adjust``.

    References
    ----------
    Holm, S. (1979). A simple sequentially rejective multiple test procedure.
    Scandinavian Journal of Statistics, 6(2), 65-70.

    Examples
    --------
    >>> from analysis.stats import adjust_pvalues
    >>> adjust_pvalues([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    p = np.asarray(p, dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    missing = np.isnan(p)
    if method == "none" or p.size == 0:
        return p.copy()
    filled = np.where(missing, 1.0, p)
    m = filled.size
    if method == "bonferroni":
        out = np.minimum(1.0, m * filled)
    else:
        order = np.argsort(filled, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * filled[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, stepped)
    out[missing] = np.nan
    return out
