"""Inter-reader reliability: the six Shrout-Fleiss intraclass correlations and the one-way ICC for sparse designs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ICC_DESCRIPTIONS = {
    "ICC1": "one-way random, single rater",
    "ICC2": "two-way random, absolute agreement, single rater",
    "ICC3": "two-way mixed, consistency, single rater",
    "ICC1k": "one-way random, mean of k raters",
    "ICC2k": "two-way random, absolute agreement, mean of k raters",
    "ICC3k": "two-way mixed, consistency, mean of k raters",
}


def _refuse_duplicates(data: pd.DataFrame, targets: str, raters: str) -> None:
    dup = data.duplicated([targets, raters], keep=False)
    if dup.any():
        first = data.loc[dup].iloc[0]
        raise ValueError(
            f"rater {first[raters]} rated target {first[targets]} {int(dup.sum())} times; "
            "an ICC needs one rating per rater x target (duplicates are refused, not averaged)")


def intraclass_corr(data: pd.DataFrame, targets: str, raters: str, ratings: str,
                    confidence: float = 0.95) -> pd.DataFrame:
    """All six Shrout-Fleiss intraclass correlations of a fully crossed design.

    Parameters
    ----------
    data : pandas.DataFrame
        Long table, one row per rater x target.
    targets : str
        Column of the rated things (cases, drafts).
    raters : str
        Column of the readers.
    ratings : str
        Column of the numeric ratings.
    confidence : float
        Level of the F-based confidence intervals.

    Returns
    -------
    pandas.DataFrame
        Six rows (``ICC1``, ``ICC2``, ``ICC3``, ``ICC1k``, ``ICC2k``, ``ICC3k``), columns:

        * ``'Type'``: Shrout-Fleiss name
        * ``'Description'``: model and unit
        * ``'ICC'``: estimate
        * ``'F'``, ``'df1'``, ``'df2'``, ``'p_val'``: F test of ICC = 0
        * ``'ci_low'``, ``'ci_high'``: confidence interval (not rounded)

    Raises
    ------
    ValueError
        Duplicated rater x target, missing cells (not fully crossed: use
        :func:`icc_oneway`), fewer than 2 targets or 2 raters.

    Notes
    -----
    With :math:`n` targets, :math:`k` raters and the two-way ANOVA mean squares
    between targets (BMS), between raters (JMS), residual (EMS) and within targets
    (WMS = (SS_raters + SS_residual) / n(k-1)):

    * ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)
    * ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)
    * ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)
    * ICC(1,k) = (BMS - WMS) / BMS
    * ICC(2,k) = (BMS - EMS) / (BMS + (JMS - EMS) / n)
    * ICC(3,k) = (BMS - EMS) / BMS

    Confidence intervals follow Shrout & Fleiss (1979) and McGraw & Wong (1996)
    (Satterthwaite degrees of freedom for ICC(2,.)), as in pingouin and R's
    ``psych::ICC``. pingouin >= 0.6.1 names the two-way rows ``ICC(A,1)``,
    ``ICC(C,1)``, ``ICC(A,k)``, ``ICC(C,k)``; the formulas are computed here so
    results do not depend on those names.

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in
    assessing rater reliability. Psychological Bulletin, 86(2), 420-428.

    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass
    correlation coefficients. Psychological Methods, 1(1), 30-46.

    Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting
    intraclass correlation coefficients for reliability research. Journal of
    Chiropractic Medicine, 15(2), 155-163.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.stats import intraclass_corr
    >>> scores = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> df = pd.DataFrame([(t, j, s) for t, row in enumerate(scores) for j, s in enumerate(row)],
    ...                   columns=["target", "rater", "rating"])
    >>> intraclass_corr(df, "target", "rater", "rating")["ICC"].round(2).tolist()
    [0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
    """
    sub = data[[targets, raters, ratings]].dropna(subset=[ratings])
    _refuse_duplicates(sub, targets, raters)
    wide = sub.pivot(index=targets, columns=raters, values=ratings)
    if wide.isna().any().any():
        raise ValueError(
            f"design is not fully crossed ({int(wide.isna().sum().sum())} empty rater x target cells); "
            "the two-way ICCs need every rater on every target: use icc_oneway for sparse designs")
    y = wide.to_numpy(dtype=float)
    n, k = y.shape
    if n < 2 or k < 2:
        raise ValueError(f"need at least 2 targets and 2 raters, got {n} and {k}")
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_total = ((y - grand) ** 2).sum()
    ss_err = ss_total - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    wms = (ss_cols + ss_err) / (n * (k - 1))
    alpha = 1 - confidence
    fq = stats.f.ppf

    icc1 = (bms - wms) / (bms + (k - 1) * wms)
    icc2 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc3 = (bms - ems) / (bms + (k - 1) * ems)
    icc1k = (bms - wms) / bms
    icc2k = (bms - ems) / (bms + (jms - ems) / n)
    icc3k = (bms - ems) / bms

    f1 = bms / wms
    df1_1, df2_1 = n - 1, n * (k - 1)
    f1l = f1 / fq(1 - alpha / 2, df1_1, df2_1)
    f1u = f1 * fq(1 - alpha / 2, df2_1, df1_1)
    f3 = bms / ems
    df1_3, df2_3 = n - 1, (n - 1) * (k - 1)
    f3l = f3 / fq(1 - alpha / 2, df1_3, df2_3)
    f3u = f3 * fq(1 - alpha / 2, df2_3, df1_3)
    fj = jms / ems
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k ** 2 * icc2 ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f2u = fq(1 - alpha / 2, n - 1, v)
    f2l = fq(1 - alpha / 2, v, n - 1)
    lb2 = n * (bms - f2u * ems) / (f2u * (k * jms + (k * n - k - n) * ems) + n * bms)
    ub2 = n * (f2l * bms - ems) / (k * jms + (k * n - k - n) * ems + n * f2l * bms)
    p1 = stats.f.sf(f1, df1_1, df2_1)
    p3 = stats.f.sf(f3, df1_3, df2_3)
    rows = [
        ("ICC1", icc1, f1, df1_1, df2_1, p1, (f1l - 1) / (f1l + k - 1), (f1u - 1) / (f1u + k - 1)),
        ("ICC2", icc2, f3, df1_3, df2_3, p3, lb2, ub2),
        ("ICC3", icc3, f3, df1_3, df2_3, p3, (f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)),
        ("ICC1k", icc1k, f1, df1_1, df2_1, p1, 1 - 1 / f1l, 1 - 1 / f1u),
        ("ICC2k", icc2k, f3, df1_3, df2_3, p3, lb2 * k / (1 + lb2 * (k - 1)), ub2 * k / (1 + ub2 * (k - 1))),
        ("ICC3k", icc3k, f3, df1_3, df2_3, p3, 1 - 1 / f3l, 1 - 1 / f3u),
    ]
    out = pd.DataFrame(rows, columns=["Type", "ICC", "F", "df1", "df2", "p_val", "ci_low", "ci_high"])
    out.insert(1, "Description", out["Type"].map(ICC_DESCRIPTIONS))
    out[["ICC", "F", "df1", "df2", "p_val", "ci_low", "ci_high"]] = out[
        ["ICC", "F", "df1", "df2", "p_val", "ci_low", "ci_high"]].astype(float)
    out.attrs.update({"n_targets": int(n), "n_raters": int(k)})
    return out


def icc_oneway(data: pd.DataFrame, targets: str, raters: str, ratings: str,
               confidence: float = 0.95) -> pd.DataFrame:
    """One-way random-effects ICC(1) and ICC(1,k) for sparse, unbalanced designs.

    Parameters
    ----------
    data : pandas.DataFrame
        Long table, one row per rater x target; different targets may have
        different raters and different numbers of raters.
    targets, raters, ratings : str
        Column names. ``raters`` is used only to refuse duplicated ratings: the
        one-way model does not identify raters, which is why it fits designs where
        raters differ between targets.
    confidence : float

    Returns
    -------
    pandas.DataFrame
        Two rows (``ICC1``, ``ICC1k``), columns ``'Type'``, ``'Description'``,
        ``'ICC'``, ``'F'``, ``'df1'``, ``'df2'``, ``'p_val'``, ``'ci_low'``,
        ``'ci_high'``, ``'k0'`` (the effective number of ratings per target),
        ``'n_targets'``, ``'n_ratings'``.

    Raises
    ------
    ValueError
        Duplicated rater x target, or fewer than two targets with at least two ratings.

    Notes
    -----
    Only targets with at least two ratings enter. With :math:`g` targets, :math:`N`
    ratings, :math:`n_i` ratings of target :math:`i`,
    :math:`MSB = \\sum n_i(\\bar y_i - \\bar y)^2/(g-1)`,
    :math:`MSW = \\sum\\sum (y_{ij}-\\bar y_i)^2/(N-g)` and
    :math:`k_0 = (N - \\sum n_i^2/N)/(g-1)`:
    ICC(1) = (MSB - MSW) / (MSB + (k_0-1) MSW), ICC(1,k) = (MSB - MSW)/MSB.
    The interval uses the balanced-case F limits with :math:`k_0` (exact when
    balanced, where the result equals :func:`intraclass_corr`'s ICC1 / ICC1k).

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Psychological Bulletin, 86(2), 420-428.

    Donner, A. (1986). A review of inference procedures for the intraclass
    correlation coefficient in the one-way random effects model. International
    Statistical Review, 54(1), 67-82.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.stats import icc_oneway
    >>> df = pd.DataFrame({"case": [1, 1, 2, 2, 3, 3, 3], "reader": list("abcdefa"),
    ...                    "score": [5, 5, 0, -5, 10, 10, 5]})
    >>> round(float(icc_oneway(df, "case", "reader", "score")["ICC"].iloc[0]), 3)
    0.793
    """
    sub = data[[targets, raters, ratings]].dropna(subset=[ratings])
    _refuse_duplicates(sub, targets, raters)
    sizes = sub.groupby(targets, observed=True)[ratings].transform("size")
    sub = sub.loc[sizes >= 2]
    grouped = sub.groupby(targets, observed=True)[ratings]
    n_i = grouped.size().to_numpy(dtype=float)
    g = n_i.size
    if g < 2:
        raise ValueError(f"need at least 2 targets rated by 2 or more raters, got {g}")
    big_n = n_i.sum()
    means = grouped.mean().to_numpy(dtype=float)
    grand = sub[ratings].astype(float).mean()
    msb = (n_i * (means - grand) ** 2).sum() / (g - 1)
    within = sub[ratings].astype(float) - grouped.transform("mean").astype(float)
    msw = (within ** 2).sum() / (big_n - g)
    k0 = (big_n - (n_i ** 2).sum() / big_n) / (g - 1)
    alpha = 1 - confidence
    df1, df2 = g - 1, big_n - g
    with np.errstate(divide="ignore", invalid="ignore"):
        f = msb / msw
        icc1 = (msb - msw) / (msb + (k0 - 1) * msw)
        icc1k = (msb - msw) / msb
        fl = f / stats.f.ppf(1 - alpha / 2, df1, df2)
        fu = f * stats.f.ppf(1 - alpha / 2, df2, df1)
    p = float(stats.f.sf(f, df1, df2)) if np.isfinite(f) else float("nan")
    common = {"F": float(f), "df1": float(df1), "df2": float(df2), "p_val": p, "k0": float(k0),
              "n_targets": int(g), "n_ratings": int(big_n)}
    return pd.DataFrame([
        {"Type": "ICC1", "Description": ICC_DESCRIPTIONS["ICC1"], "ICC": float(icc1),
         "ci_low": float((fl - 1) / (fl + k0 - 1)), "ci_high": float((fu - 1) / (fu + k0 - 1)), **common},
        {"Type": "ICC1k", "Description": ICC_DESCRIPTIONS["ICC1k"], "ICC": float(icc1k),
         "ci_low": float(1 - 1 / fl), "ci_high": float(1 - 1 / fu), **common},
    ])[["Type", "Description", "ICC", "F", "df1", "df2", "p_val", "ci_low", "ci_high", "k0",
        "n_targets", "n_ratings"]]
