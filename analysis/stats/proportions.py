"""Proportions and paired binary outcomes: Wilson intervals, shares, sign test, McNemar."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def wilson_ci(count: int, nobs: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score confidence interval of a binomial proportion.

    Parameters
    ----------
    count : int
        Successes.
    nobs : int
        Trials.
    confidence : float
        Confidence level.

    Returns
    -------
    tuple of float
        ``(ci_low, ci_high)``; ``(nan, nan)`` when ``nobs`` is 0.

    Notes
    -----
    With :math:`\\hat p = x/n` and :math:`z = \\Phi^{-1}(1-\\alpha/2)`:

    .. math:: \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    References
    ----------
    Wilson, E. B. (1927). Probable inference, the law of succession, and
    statistical inference. Journal of the American Statistical Association,
    22(158), 209-212.

    Newcombe, R. G. (1998). Two-sided confidence intervals for the single
    proportion: comparison of seven methods. Statistics in Medicine, 17(8), 857-872.

    Examples
    --------
    >>> from analysis.stats import wilson_ci
    >>> [round(v, 4) for v in wilson_ci(81, 263)]
    [0.2553, 0.3662]
    """
    if nobs < 0 or count < 0 or count > nobs:
        raise ValueError(f"need 0 <= count <= nobs, got {count} of {nobs}")
    if nobs == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = count / nobs
    denom = 1 + z * z / nobs
    centre = (p + z * z / (2 * nobs)) / denom
    half = z * np.sqrt(p * (1 - p) / nobs + z * z / (4 * nobs * nobs)) / denom
    # At x = 0 (x = n) the limit is exactly 0 (1); floating point leaves ~1e-17.
    low = 0.0 if count == 0 else max(0.0, centre - half)
    high = 1.0 if count == nobs else min(1.0, centre + half)
    return float(low), float(high)


def proportion_shares(values, categories, confidence: float = 0.95) -> pd.DataFrame:
    """Share of each category with its Wilson interval.

    Parameters
    ----------
    values : array_like
        Observed categorical values (missing values are dropped).
    categories : sequence of str
        Categories to report, in order; a category never observed gets share 0.
    confidence : float

    Returns
    -------
    pandas.DataFrame
        One row per category, columns ``'category'``, ``'count'``, ``'n'``,
        ``'share'``, ``'ci_low'``, ``'ci_high'`` (Wilson).

    Notes
    -----
    Each share is :math:`x_c / n` with :math:`n` the non-missing values; each
    interval is the marginal Wilson interval (no multiplicity adjustment).

    References
    ----------
    Wilson, E. B. (1927). Journal of the American Statistical Association, 22(158), 209-212.

    Examples
    --------
    >>> from analysis.stats import proportion_shares
    >>> proportion_shares(["model", "reader", "model"], ["model", "reader", "equivalent"])["count"].tolist()
    [2, 1, 0]
    """
    series = pd.Series(values).dropna().astype(str)
    n = int(series.size)
    counts = series.value_counts()
    rows = []
    for cat in categories:
        c = int(counts.get(cat, 0))
        low, high = wilson_ci(c, n, confidence)
        rows.append({"category": cat, "count": c, "n": n, "share": c / n if n else float("nan"),
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def sign_test(n_positive: int, n_negative: int, p: float = 0.5, alternative: str = "two-sided") -> dict:
    """Exact sign (binomial) test on the non-tied outcomes.

    Parameters
    ----------
    n_positive, n_negative : int
        Counts of the two outcomes (ties already removed, e.g. "equivalent").
    p : float
        Probability of a positive outcome under the null hypothesis.
    alternative : {'two-sided', 'greater', 'less'}

    Returns
    -------
    dict
        ``'n_positive'``, ``'n_negative'``, ``'n'``, ``'share_positive'``,
        ``'ci_low'``, ``'ci_high'`` (Clopper-Pearson exact interval of the share),
        ``'p_val'`` (exact binomial).

    Notes
    -----
    :math:`P = \\sum_{k: f(k) \\le f(x)} \\binom{n}{k} p^k (1-p)^{n-k}` for the
    two-sided test (the method of ``binom.test`` in R and ``scipy.stats.binomtest``).

    References
    ----------
    Conover, W. J. (1999). Practical Nonparametric Statistics (3rd ed.). Wiley,
    section 3.4 (the sign test).

    Clopper, C. J., & Pearson, E. S. (1934). The use of confidence or fiducial
    limits illustrated in the case of the binomial. Biometrika, 26(4), 404-413.

    Examples
    --------
    >>> from analysis.stats import sign_test
    >>> round(sign_test(9, 1)["p_val"], 5)
    0.02148
    """
    n = int(n_positive + n_negative)
    if n == 0:
        return {"n_positive": 0, "n_negative": 0, "n": 0, "share_positive": float("nan"),
                "ci_low": float("nan"), "ci_high": float("nan"), "p_val": float("nan")}
    res = stats.binomtest(int(n_positive), n, p=p, alternative=alternative)
    ci = res.proportion_ci(confidence_level=0.95, method="exact")
    return {"n_positive": int(n_positive), "n_negative": int(n_negative), "n": n,
            "share_positive": n_positive / n, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "p_val": float(res.pvalue)}


def mcnemar_test(b: int, c: int, exact: bool | None = None, correction: bool = True) -> dict:
    """McNemar's test of a paired 2 x 2 table, exact when discordant pairs are few.

    Parameters
    ----------
    b, c : int
        The two discordant counts (yes/no and no/yes).
    exact : bool, optional
        Force the exact (binomial) or the chi-squared version. Default: exact when
        ``b + c < 25``, the usual rule for the chi-squared approximation.
    correction : bool
        Edwards' continuity correction for the chi-squared version (R's default).

    Returns
    -------
    dict
        ``'b'``, ``'c'``, ``'n_discordant'``, ``'method'`` (``'exact'`` or
        ``'chi2'``/``'chi2_corrected'``), ``'chi2'`` (NaN when exact), ``'dof'``,
        ``'p_val'``.

    Notes
    -----
    :math:`\\chi^2 = (|b-c| - 1)^2 / (b+c)` with one degree of freedom (without the
    ``-1`` when uncorrected). Exact: two-sided binomial test of :math:`b` out of
    :math:`b+c` with :math:`p=1/2`.

    References
    ----------
    McNemar, Q. (1947). Note on the sampling error of the difference between
    correlated proportions or percentages. Psychometrika, 12(2), 153-157.

    Agresti, A. (1990). Categorical Data Analysis. Wiley, pp. 350-354
    (presidential approval data, R's ``?mcnemar.test``).

    Examples
    --------
    >>> from analysis.stats import mcnemar_test
    >>> r = mcnemar_test(150, 86)
    >>> round(r["chi2"], 3), r["method"]
    (16.818, 'chi2_corrected')
    """
    b, c = int(b), int(c)
    n = b + c
    if exact is None:
        exact = n < 25
    if n == 0:
        return {"b": b, "c": c, "n_discordant": 0, "method": "none", "chi2": float("nan"),
                "dof": 1, "p_val": float("nan")}
    if exact:
        return {"b": b, "c": c, "n_discordant": n, "method": "exact", "chi2": float("nan"), "dof": 1,
                "p_val": float(stats.binomtest(b, n, 0.5).pvalue)}
    diff = abs(b - c) - (1 if correction else 0)
    chi2 = max(diff, 0) ** 2 / n
    return {"b": b, "c": c, "n_discordant": n, "method": "chi2_corrected" if correction else "chi2",
            "chi2": float(chi2), "dof": 1, "p_val": float(stats.chi2.sf(chi2, 1))}
