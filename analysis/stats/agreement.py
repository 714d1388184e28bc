"""Inter-reader reliability: the six Shrout-Fleiss intraclass correlations and the one-way ICC for sparse designs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.defaults import DEFAULT_SEED


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


def _connected(t_codes: np.ndarray, r_codes: np.ndarray) -> bool:
    """Whether every target and rater is linked through shared ratings (one connected design)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_t, n_r = t_codes.max() + 1, r_codes.max() + 1
    edges = coo_matrix((np.ones(t_codes.size), (t_codes, n_t + r_codes)), shape=(n_t + n_r, n_t + n_r))
    n_comp, _ = connected_components(edges, directed=False)
    return n_comp == 1


#: Above this many ratings the two-way ICC is estimated on a seeded random subset of whole
#: targets: the REML information matrix is computed with dense n x n matrices.
ICC_MAX_RATINGS = 3000


def icc_crossed(data: pd.DataFrame, targets: str, raters: str, ratings: str, *, k: float | None = None,
                confidence: float = 0.95, max_ratings: int | None = ICC_MAX_RATINGS,
                seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Two-way random-effects ICCs of a sparse, connected design from REML variance components.

    Parameters
    ----------
    data : pandas.DataFrame
        Long table, one row per rater x target; raters may differ between targets.
    targets, raters, ratings : str
        Column names.
    k : float, optional
        Number of raters whose mean ICC(A,k) describes (default: the average number
        of ratings per target, :math:`k_0` of :func:`icc_oneway`).
    confidence : float
    max_ratings : int or None
        Above this many ratings, estimate on a seeded random subset of whole targets
        (None: never); ``subsampled`` says so.
    seed : int
        Seed of that subset.

    Returns
    -------
    pandas.DataFrame
        Rows ``ICC(A,1)`` (absolute agreement, one rater), ``ICC(A,k)`` (mean of
        ``k`` raters), ``ICC(C,1)`` (consistency: rater offsets removed); columns
        ``Type``, ``Description``, ``ICC``, ``ci_low``, ``ci_high``, ``var_target``,
        ``var_rater``, ``var_residual``, ``k``, ``n_targets``, ``n_raters``,
        ``n_ratings``, ``subsampled``, ``note`` (a variance estimated at 0, or why no
        interval).

    Raises
    ------
    ValueError
        Duplicated rater x target, fewer than 2 targets or raters with repeated
        ratings, or a design that is not connected (raters and targets falling into
        separate groups that share no rating: the rater variance is then not
        separable from the target variance; use :func:`icc_oneway`).

    Notes
    -----
    REML fit of :math:`y_{ij} = \\mu + t_i + r_j + e_{ij}` with crossed random
    target and rater effects (:func:`~analysis.stats.mixed_model`);
    :math:`ICC(A,1) = \\sigma^2_t / (\\sigma^2_t + \\sigma^2_r + \\sigma^2_e)`,
    :math:`ICC(A,k) = \\sigma^2_t / (\\sigma^2_t + (\\sigma^2_r + \\sigma^2_e)/k)`,
    :math:`ICC(C,1) = \\sigma^2_t / (\\sigma^2_t + \\sigma^2_e)`. In a balanced,
    fully crossed design REML equals the ANOVA estimators, so ICC(A,1) and ICC(A,k)
    equal Shrout & Fleiss's ICC(2,1) and ICC(2,k). Intervals: Wald on the logit
    scale, :math:`\\mathrm{logit}\\,\\hat\\rho \\pm z\\,\\sqrt{g^\\top A g}`, with
    :math:`g` the gradient of the logit in the variances and :math:`A` their REML
    asymptotic covariance; ICC(A,1) and ICC(A,k) share the same logit standard
    error. Coverage is checked by simulation in the test suite.

    References
    ----------
    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass
    correlation coefficients. Psychological Methods, 1(1), 30-46.

    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in
    assessing rater reliability. Psychological Bulletin, 86(2), 420-428.

    Searle, S. R., Casella, G., & McCulloch, C. E. (1992). Variance Components.
    New York: Wiley (REML and its asymptotic covariance).

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.stats import icc_crossed
    >>> scores = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> df = pd.DataFrame([(t, j, s) for t, row in enumerate(scores) for j, s in enumerate(row)],
    ...                   columns=["target", "rater", "rating"])
    >>> icc_crossed(df, "target", "rater", "rating")["ICC"].round(2).tolist()[:2]
    [0.29, 0.62]
    """
    from analysis.stats.lmm import mixed_model

    sub = data[[targets, raters, ratings]].dropna(subset=[ratings])
    _refuse_duplicates(sub, targets, raters)
    sizes = sub.groupby(targets, observed=True)[ratings].transform("size")
    sub = sub.loc[sizes >= 2]
    subsampled = False
    if max_ratings is not None and len(sub) > max_ratings:
        keys = sub[targets].unique()
        n_keep = max(2, int(max_ratings / (len(sub) / len(keys))))
        keep = np.random.default_rng(seed).choice(keys, size=min(n_keep, len(keys)), replace=False)
        sub = sub.loc[sub[targets].isin(keep)]
        subsampled = True
    t_codes, t_levels = pd.factorize(sub[targets])
    r_codes, r_levels = pd.factorize(sub[raters])
    if len(t_levels) < 2 or len(r_levels) < 2:
        raise ValueError(f"need at least 2 targets rated twice and 2 raters, got {len(t_levels)} and {len(r_levels)}")
    if not _connected(t_codes, r_codes):
        raise ValueError("the design is not connected (groups of raters and targets share no rating), so rater "
                         "and target variances are not separable: use icc_oneway")
    frame = pd.DataFrame({"y": sub[ratings].astype(float).to_numpy(), "target": t_codes, "rater": r_codes})
    fit = mixed_model(frame, "y", ("target", "rater"))
    vc = fit.variance_components
    v_t, v_r, v_e = vc.get("target", 0.0), vc.get("rater", 0.0), vc["residual"]
    n_i = frame.groupby("target").size().to_numpy(dtype=float)
    big_n = n_i.sum()
    k0 = (big_n - (n_i ** 2).sum() / big_n) / (len(n_i) - 1)
    k = float(k0 if k is None else k)
    acov = fit.variance_covariance
    z = stats.norm.ppf(0.5 + confidence / 2)
    names = ["target", "rater", "residual"]
    note = "; ".join(f"{d['term']} variance {'estimated 0' if 'boundary' in d['reason'] else 'not estimable'}"
                     for d in fit.terms_dropped)

    def interval(icc, grad):
        if not (v_t > 0) or "target" not in acov.index:
            return float("nan"), float("nan")
        idx = [n for n in names if n in acov.index]
        g = np.array([grad[names.index(n)] for n in idx])
        var = float(g @ acov.loc[idx, idx].to_numpy() @ g)
        if not var > 0:
            return float("nan"), float("nan")
        logit = np.log(icc / (1 - icc))
        half = z * np.sqrt(var)
        return float(1 / (1 + np.exp(-(logit - half)))), float(1 / (1 + np.exp(-(logit + half))))

    noise = v_r + v_e
    icc_a1 = v_t / (v_t + noise)
    icc_ak = v_t / (v_t + noise / k)
    icc_c1 = v_t / (v_t + v_e)
    g_a = [1 / v_t if v_t > 0 else np.nan, -1 / noise, -1 / noise]
    g_c = [1 / v_t if v_t > 0 else np.nan, 0.0, -1 / v_e]
    rows = []
    for typ, descr, icc, grad in (
            ("ICC(A,1)", "two-way random, absolute agreement, single rater", icc_a1, g_a),
            ("ICC(A,k)", f"two-way random, absolute agreement, mean of {k:.3g} raters", icc_ak, g_a),
            ("ICC(C,1)", "two-way, consistency, single rater", icc_c1, g_c)):
        lo, hi = interval(icc, grad)
        rows.append({"Type": typ, "Description": descr, "ICC": float(icc), "ci_low": lo, "ci_high": hi,
                     "var_target": float(v_t), "var_rater": float(v_r), "var_residual": float(v_e), "k": k,
                     "n_targets": int(len(t_levels)), "n_raters": int(len(r_levels)), "n_ratings": int(len(frame)),
                     "subsampled": subsampled, "note": note if np.isfinite(lo) else (note or "target variance estimated 0: no interval")})
    return pd.DataFrame(rows)
