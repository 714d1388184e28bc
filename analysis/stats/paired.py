"""Paired comparisons that pair by an explicit key: paired t-test and Wilcoxon signed-rank."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def pair_by_key(data: pd.DataFrame, dv: str, within: str, subject: str, levels: tuple[str, str],
                aggregate: str = "mean") -> pd.DataFrame:
    """Pair two conditions explicitly by a key, aggregating repeated reads per key.

    Parameters
    ----------
    data : pandas.DataFrame
        Long table, one row per read.
    dv : str
        Column with the measurement (e.g. ``'duration_s'``).
    within : str
        Column naming the condition (e.g. ``'condition'``).
    subject : str
        The pairing key (e.g. ``'reader_id'``: each reader's mean in each condition).
    levels : tuple of str
        ``(first, second)`` condition values to compare.
    aggregate : {'mean', 'median'}
        How a key's several reads in one condition are summarised.

    Returns
    -------
    pandas.DataFrame
        Index = key; columns ``first``, ``second`` (the two levels' aggregated
        values) and ``n_first``, ``n_second`` (reads behind each). Keys seen in only
        one condition are dropped; ``attrs['n_dropped']`` counts them.

    Notes
    -----
    Pairing is done here, by key, because ``pingouin.ttest(paired=True)`` on two
    vectors of unequal length silently runs an unpaired test, and zipping two
    vectors pairs whatever happens to share a position.
    """
    sub = data.loc[data[within].isin(levels), [subject, within, dv]].dropna(subset=[dv])
    grouped = sub.groupby([subject, within], observed=True)[dv]
    agg = grouped.agg(aggregate).unstack(within)
    counts = grouped.size().unstack(within)
    for level in levels:
        if level not in agg.columns:
            agg[level] = np.nan
            counts[level] = 0
    complete = agg[list(levels)].notna().all(axis=1)
    out = pd.DataFrame({
        levels[0]: agg.loc[complete, levels[0]], levels[1]: agg.loc[complete, levels[1]],
        f"n_{levels[0]}": counts.loc[complete, levels[0]].astype(int),
        f"n_{levels[1]}": counts.loc[complete, levels[1]].astype(int),
    })
    out.attrs["n_dropped"] = int((~complete).sum())
    return out


def paired_ttest(x, y, confidence: float = 0.95) -> pd.DataFrame:
    """Student's paired t-test on already-paired values.

    Parameters
    ----------
    x, y : array_like
        Paired measurements of equal length (position i of ``x`` is paired with
        position i of ``y``; build them with :func:`pair_by_key`). Pairs with a
        missing value are dropped.
    confidence : float
        Level of the confidence interval of the mean difference.

    Returns
    -------
    pandas.DataFrame
        One row, columns:

        * ``'T'``: t statistic of the mean difference ``x - y``
        * ``'dof'``: degrees of freedom (n_pairs - 1)
        * ``'p_val'``: two-sided p-value
        * ``'mean_diff'``: mean of ``x - y``
        * ``'ci_low'``, ``'ci_high'``: confidence interval of ``mean_diff``
        * ``'cohen_dz'``: mean difference over the SD of the differences
        * ``'n_pairs'``: pairs used

    Raises
    ------
    ValueError
        If the lengths differ (never falls back to an unpaired test) or fewer than
        two pairs remain.

    Notes
    -----
    With differences :math:`d_i = x_i - y_i`,
    :math:`t = \\bar d / (s_d/\\sqrt n)` with :math:`n-1` degrees of freedom
    and CI :math:`\\bar d \\pm t_{1-\\alpha/2,n-1}\\, s_d/\\sqrt n`.

    References
    ----------
    Student (1908). The probable error of a mean. Biometrika, 6(1), 1-25.

    Cushny, A. R., & Peebles, A. R. (1905). The action of optical isomers. II.
    Hyoscines. The Journal of Physiology, 32(5-6), 501-510 (R's ``sleep`` data).

    Examples
    --------
    >>> from analysis.stats import paired_ttest
    >>> g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    >>> g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    >>> round(float(paired_ttest(g1, g2)["T"].iloc[0]), 4)
    -4.0621
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have equal length, got {x.size} and {y.size}; pair by key first")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    n = d.size
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 complete pairs, got {n}")
    mean = d.mean()
    sd = d.std(ddof=1)
    se = sd / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    p = 2 * stats.t.sf(abs(t), n - 1) if np.isfinite(t) else float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * se
    return pd.DataFrame([{
        "T": float(t), "dof": int(n - 1), "p_val": float(p), "mean_diff": float(mean),
        "ci_low": float(mean - half), "ci_high": float(mean + half),
        "cohen_dz": float(mean / sd) if sd > 0 else float("nan"), "n_pairs": int(n),
    }])


def wilcoxon_signed_rank(x, y=None, zero_method: str = "wilcox", method: str = "auto",
                         alternative: str = "two-sided") -> pd.DataFrame:
    """Wilcoxon signed-rank test with an explicit treatment of zeros and p-value method.

    Parameters
    ----------
    x : array_like
        Paired measurements, or the differences when ``y`` is None (e.g. Likert
        scores tested against the neutral 0).
    y : array_like, optional
        Second paired sample, same length as ``x``.
    zero_method : {'wilcox', 'pratt'}
        ``'wilcox'`` drops zero differences before ranking (R's ``wilcox.test``);
        ``'pratt'`` ranks them and then drops their ranks (keeps information when
        many Likert answers are neutral).
    method : {'auto', 'exact', 'asymptotic'}
        ``'auto'`` uses the exact null distribution when there are no ties, no zeros
        and at most 50 non-zero differences (R's rule), otherwise the normal
        approximation with tie correction and continuity correction.
    alternative : {'two-sided', 'greater', 'less'}

    Returns
    -------
    pandas.DataFrame
        One row, columns:

        * ``'V'``: sum of ranks of positive differences (R's ``V``)
        * ``'W_min'``: min(V, sum of negative ranks) (SciPy's two-sided statistic)
        * ``'p_val'``: p-value
        * ``'n'``: non-missing pairs; ``'n_zero'``: zero differences
        * ``'zero_method'``, ``'method'``: what was actually used
        * ``'rbc'``: matched-pairs rank-biserial correlation (V - V_neg) / (V + V_neg)

    Notes
    -----
    :math:`V = \\sum_{d_i>0} R_i` where :math:`R_i` is the rank of
    :math:`|d_i|` among the retained differences. Exact p-values enumerate the
    :math:`2^n` sign assignments; the asymptotic one uses
    :math:`E[V]=n(n+1)/4` and the tie-corrected variance.

    References
    ----------
    Wilcoxon, F. (1945). Individual comparisons by ranking methods. Biometrics
    Bulletin, 1(6), 80-83.

    Pratt, J. W. (1959). Remarks on zeros and ties in the Wilcoxon signed rank
    procedures. Journal of the American Statistical Association, 54(287), 655-667.

    Hollander, M., & Wolfe, D. A. (1973). Nonparametric Statistical Methods.
    New York: John Wiley & Sons, pp. 29-30 (depression data of R's ``?wilcox.test``).

    Examples
    --------
    >>> from analysis.stats import wilcoxon_signed_rank
    >>> x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    >>> y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    >>> r = wilcoxon_signed_rank(x, y)
    >>> float(r["V"].iloc[0]), round(float(r["p_val"].iloc[0]), 5)
    (40.0, 0.03906)
    """
    if zero_method not in ("wilcox", "pratt"):
        raise ValueError("zero_method must be 'wilcox' or 'pratt'")
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError("method must be 'auto', 'exact' or 'asymptotic'")
    x = np.asarray(x, dtype=float)
    if y is not None:
        y = np.asarray(y, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"paired samples must have equal length, got {x.size} and {y.size}")
        d = x - y
    else:
        d = x
    d = d[~np.isnan(d)]
    n_zero = int((d == 0).sum())
    nonzero = d[d != 0]
    empty = {"V": float("nan"), "W_min": float("nan"), "p_val": float("nan"), "n": int(d.size),
             "n_zero": n_zero, "zero_method": zero_method, "method": "none", "rbc": float("nan")}
    if nonzero.size == 0:
        return pd.DataFrame([empty])
    ranked = d if zero_method == "pratt" else nonzero
    ranks = stats.rankdata(np.abs(ranked))
    v_pos = float(ranks[ranked > 0].sum())
    v_neg = float(ranks[ranked < 0].sum())
    has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
    if method == "auto":
        chosen = "exact" if (nonzero.size <= 50 and not has_ties and n_zero == 0) else "asymptotic"
    else:
        chosen = method
    if chosen == "exact":
        res = stats.wilcoxon(d, zero_method=zero_method, method="exact", alternative=alternative)
    else:
        res = stats.wilcoxon(d, zero_method=zero_method, method="asymptotic", correction=True,
                             alternative=alternative)
    total = v_pos + v_neg
    return pd.DataFrame([{
        "V": v_pos, "W_min": min(v_pos, v_neg), "p_val": float(res.pvalue), "n": int(d.size),
        "n_zero": n_zero, "zero_method": zero_method, "method": chosen,
        "rbc": (v_pos - v_neg) / total if total > 0 else float("nan"),
    }])
