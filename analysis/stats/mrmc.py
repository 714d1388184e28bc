"""Obuchowski-Rockette analysis of any per-reader figure of merit, with Hillis degrees of freedom, for random or fixed readers and cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

FOMS = ("mean", "auc", "sensitivity", "specificity")
COV_METHODS = ("jackknife", "delong")
CONCLUSIONS = ("random_readers_random_cases", "fixed_readers_random_cases", "random_readers_fixed_cases")
CONCLUSION_LABELS = {
    "random_readers_random_cases": "random readers, random cases",
    "fixed_readers_random_cases": "fixed readers, random cases",
    "random_readers_fixed_cases": "random readers, fixed cases",
}
#: How cells (reader x test) share cases, as named in MRMCaov and Hillis (2014).
DESIGNS = {
    "factorial": "factorial: every reader reads the same cases in every test",
    "split_plot": "split-plot: cases nested within readers (each reader reads their own cases in every test)",
    "cases_nested_in_tests": "cases nested within tests (each test has its own cases, read by every reader)",
    "partially_paired": ("partially paired: cells share some of their cases; each covariance is estimated "
                         "from the cases two cells share and is 0 where they share none"),
}


@dataclass
class ORResult:
    """Everything an Obuchowski-Rockette analysis estimates; see :func:`or_hillis` for the columns.

    Attributes
    ----------
    fom, cov_method, design, design_description : str
    levels : tuple of str
        Tests in the order used by ``differences`` (``first - second``).
    readers : pandas.DataFrame
        Per reader x test estimates.
    variance_components, tests, differences, means, reader_differences : pandas.DataFrame
    n_readers, n_readers_dropped, n_cases : int
    notes : list of str
        Degenerate conclusions, truncations and dropped readers, in words.
    """

    fom: str
    cov_method: str
    design: str
    design_description: str
    levels: tuple
    readers: pd.DataFrame
    variance_components: pd.DataFrame
    tests: pd.DataFrame
    differences: pd.DataFrame
    means: pd.DataFrame
    reader_differences: pd.DataFrame
    n_readers: int
    n_readers_dropped: int
    n_cases: int
    covariance: np.ndarray = field(repr=False, default=None)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-friendly nested dict (tables as lists of records)."""
        def records(frame):
            return frame.to_dict(orient="records") if frame is not None else []
        return {
            "fom": self.fom, "cov_method": self.cov_method, "design": self.design,
            "design_description": self.design_description, "levels": list(self.levels),
            "n_readers": self.n_readers, "n_readers_dropped": self.n_readers_dropped, "n_cases": self.n_cases,
            "readers": records(self.readers), "variance_components": records(self.variance_components),
            "tests": records(self.tests), "differences": records(self.differences), "means": records(self.means),
            "reader_differences": records(self.reader_differences), "notes": list(self.notes),
        }


# --- figures of merit and their leave-one-case-out values -----------------------------------------


def _loo_mean(y: np.ndarray, cell: np.ndarray, case: np.ndarray, n_cell: int, n_case: int):
    """Mean of each cell and its value with each of the cell's cases left out (all its reads)."""
    key = cell.astype(np.int64) * n_case + case
    uniq, inv = np.unique(key, return_inverse=True)
    s = np.bincount(inv, weights=y)
    m = np.bincount(inv).astype(float)
    pc_cell, pc_case = uniq // n_case, uniq % n_case
    total = np.bincount(pc_cell, weights=s, minlength=n_cell)
    count = np.bincount(pc_cell, weights=m, minlength=n_cell)
    theta = total / count
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = (total[pc_cell] - s) / (count[pc_cell] - m)
    return theta, pc_cell, pc_case, loo


def _auc_components(pos: np.ndarray, neg: np.ndarray):
    """Structural components of the empirical AUC (DeLong): V10 per positive, V01 per negative."""
    neg_sorted = np.sort(neg)
    pos_sorted = np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, side="left")
    tie = np.searchsorted(neg_sorted, pos, side="right") - below
    v10 = (below + 0.5 * tie) / neg.size
    above = pos.size - np.searchsorted(pos_sorted, neg, side="right")
    tie_n = np.searchsorted(pos_sorted, neg, side="right") - np.searchsorted(pos_sorted, neg, side="left")
    v01 = (above + 0.5 * tie_n) / pos.size
    return v10, v01


def empirical_auc(truth, rating) -> float:
    """Empirical (trapezoidal) area under the ROC curve, ties counted one half.

    Parameters
    ----------
    truth : array_like of {0, 1}
        Reference standard (1 = diseased / positive).
    rating : array_like of float
        Reader's confidence ratings (higher = more likely positive).

    Returns
    -------
    float
        :math:`\\hat A`, the Mann-Whitney estimate of :math:`P(X > Y) + P(X = Y)/2`.

    Notes
    -----
    :math:`\\hat A = \\frac{1}{mn}\\sum_{i=1}^m\\sum_{j=1}^n \\psi(X_i, Y_j)` with
    :math:`\\psi = 1, 1/2, 0` for :math:`X > Y, X = Y, X < Y`, :math:`X` the ratings
    of the :math:`m` positive and :math:`Y` of the :math:`n` negative cases; equal to
    the trapezoidal area under the empirical ROC curve.

    References
    ----------
    Bamber, D. (1975). The area above the ordinal dominance graph and the area below
    the receiver operating characteristic graph. Journal of Mathematical Psychology,
    12(4), 387-415.

    Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the area under a
    receiver operating characteristic (ROC) curve. Radiology, 143(1), 29-36.

    Examples
    --------
    >>> from analysis.stats import empirical_auc
    >>> empirical_auc([0, 0, 1, 1], [1, 3, 3, 5])
    0.875
    """
    truth = np.asarray(truth)
    rating = np.asarray(rating, dtype=float)
    if truth.shape != rating.shape:
        raise ValueError("truth and rating must have the same length")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("truth must be coded 0 (negative) and 1 (positive)")
    pos, neg = rating[truth == 1], rating[truth == 0]
    if pos.size == 0 or neg.size == 0:
        raise ValueError("the AUC needs at least one positive and one negative case")
    v10, _ = _auc_components(pos, neg)
    return float(v10.mean())


# --- the analysis ---------------------------------------------------------------------------------


def _classify_design(shared: np.ndarray, g: np.ndarray, t: int, r: int) -> str:
    """Name the case-sharing pattern from the matrix of cases shared by each pair of cells."""
    idx = np.arange(t * r)
    ti, ri = idx // r, idx % r
    same_t = ti[:, None] == ti[None, :]
    same_r = ri[:, None] == ri[None, :]
    full = shared == np.minimum(g[:, None], g[None, :])
    full &= (g[:, None] == g[None, :])
    none = shared == 0
    off = ~np.eye(t * r, dtype=bool)
    if full[off].all():
        return "factorial"
    if r > 1 and none[~same_r].all() and (t == 1 or full[same_r & off].all()):
        return "split_plot"
    if t > 1 and none[~same_t].all() and (r == 1 or full[same_t & off].all()):
        return "cases_nested_in_tests"
    return "partially_paired"


def or_hillis(data: pd.DataFrame, value: str, test: str, reader: str, case: str, *, fom: str = "mean",
              truth: str | None = None, cov: str = "jackknife", levels: tuple | None = None,
              null: float | None = None, bounds: tuple[float, float] | None = None,
              confidence: float = 0.95, stratum: str | None = None, versus: str | None = None) -> ORResult:
    """Obuchowski-Rockette analysis of a per-reader figure of merit with Hillis degrees of freedom.

    One call gives the three conclusions side by side: random readers and random
    cases (the population of readers and cases), fixed readers and random cases
    (these readers), random readers and fixed cases (these cases).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per read (reader x case x test).
    value : str
        The read's measurement: any number for ``fom='mean'`` (e.g. log duration,
        Likert score, a 0/1 indicator), a confidence rating for ``'auc'``, a 0/1
        decision for ``'sensitivity'``/``'specificity'``.
    test, reader, case : str
        Columns naming the test (condition, modality), the reader and the case.
        A case is the unit of case sampling: all of a case's reads in a cell are
        left out together by the jackknife.
    fom : {'mean', 'auc', 'sensitivity', 'specificity'}
        The figure of merit of each reader x test cell: the mean of ``value``; the
        empirical AUC of ``value`` against ``truth``; the share of positive
        decisions on positive cases; the share of negative decisions on negative cases.
    truth : str, optional
        Reference standard column (0/1), needed by ``auc``, ``sensitivity``, ``specificity``.
    cov : {'jackknife', 'delong'}
        Estimator of the covariance of the cell FOMs over cases. ``'delong'``: empirical
        AUC in a factorial design only.
    levels : tuple of str, optional
        The tests to compare, in order; differences are ``first - second`` for every
        pair (default: sorted test values).
    null : float, optional
        Value each test's mean FOM is tested against in ``means`` (e.g. 0 for a
        Likert score, 0.5 for an AUC).
    bounds : tuple of float, optional
        Range of the FOM (default (0, 1) for AUC, sensitivity, specificity); CIs of
        test means and single readers are truncated to it, as in MRMCaov.
    confidence : float
    stratum : str, optional
        Column naming a stratum of the reads (a finding of a detection study: one rating per case and finding).
        With it, a cell's FOM is the mean over strata of the FOM computed within each stratum (e.g. the mean of a
        reader's per-finding AUCs), each stratum on its own cases (a case without a row in a stratum is left out of
        it), and the jackknife leaves a case out of every stratum at once. ROC FOMs only, jackknife only.
    versus : str, optional
        Column holding a fixed comparator's value on each read (a model's probability or its 0/1 call, repeated on
        every reader's row of the case): a cell's FOM is then the reader's FOM minus the comparator's on the same
        cases (and strata), with leave-one-case-out values differenced alike, so ``means`` tests readers minus
        comparator in each test (with ``null=0``). Jackknife only; bounds default to (-1, 1) for ROC FOMs.

    Returns
    -------
    ORResult
        * ``readers``: ``test``, ``reader``, ``estimate``, ``n_cases``, ``se``
          (:math:`\\sqrt{\\hat\\sigma^2_{ij}}` from the case covariance),
          ``ci_low``, ``ci_high`` (normal; the fixed-reader single-reader interval)
        * ``variance_components``: ``component`` (``reader``, ``test_x_reader``,
          ``error``, ``cov1``, ``cov2``, ``cov3``), ``estimate``, ``correlation``
          (``cov_k / error``)
        * ``tests``: one row per conclusion: ``conclusion``, ``statistic``
          (``F`` or ``X2``), ``value``, ``df1``, ``df2`` (inf for X2), ``p_val``,
          ``ms_t``, ``ms_tr``, ``denominator``, ``note`` (why a p-value is missing)
        * ``differences``: ``conclusion``, ``first``, ``second``, ``estimate``
          (first - second), ``se``, ``df`` (inf for normal), ``ci_low``, ``ci_high``,
          ``statistic`` (t or z), ``p_val``, ``note``
        * ``means``: ``conclusion``, ``test``, ``estimate``, ``se``, ``df``,
          ``ci_low``, ``ci_high``, ``ms_r``, ``cov2`` and, with ``null``,
          ``null``, ``statistic``, ``p_val``; ``note``
        * ``reader_differences`` (fixed readers): ``reader``, ``first``, ``second``,
          ``estimate``, ``se``, ``ci_low``, ``ci_high``, ``statistic`` (z), ``p_val``
        * ``design`` (``factorial``, ``split_plot``, ``cases_nested_in_tests``,
          ``partially_paired``), ``n_readers``, ``n_readers_dropped`` (readers
          without a read in every test), ``n_cases``, ``notes``

    Raises
    ------
    ValueError
        Missing columns, missing values, unknown ``fom``/``cov``, fewer than two
        cases in a cell, a case read twice in a cell (in a stratum) for an ROC FOM, no reader with
        every test, a stratum missing from a cell, ``stratum`` or ``versus`` with the DeLong covariance, or no
        variation at all.

    Notes
    -----
    The OR model for the FOM :math:`\\hat\\theta_{ij}` of test :math:`i` (of
    :math:`t`) and reader :math:`j` (of :math:`r`) is
    :math:`\\hat\\theta_{ij} = \\mu + \\tau_i + R_j + (\\tau R)_{ij} + \\epsilon_{ij}`
    with error covariances over case samples :math:`\\sigma^2_\\epsilon` (same cell),
    :math:`Cov_1` (same reader, different tests), :math:`Cov_2` (same test, different
    readers), :math:`Cov_3` (different readers and tests), each the mean of the
    corresponding entries of the estimated covariance matrix.

    *Covariance.* For each cell :math:`a` with :math:`g_a` cases, leave-one-case-out
    values :math:`\\hat\\theta_{a(k)}`, pseudo-deviations
    :math:`u_{ak} = (g_a - 1)(\\bar\\theta_{a(\\cdot)} - \\hat\\theta_{a(k)})` and
    :math:`\\widehat{Cov}(\\hat\\theta_a, \\hat\\theta_b) = \\sum_{k \\in a \\cap b}
    u_{ak}u_{bk} / \\sqrt{g_a(g_a-1)g_b(g_b-1)}`. When every cell has the same
    cases this is the usual jackknife :math:`\\frac{g-1}{g}\\sum_k(\\cdot)(\\cdot)`
    (Efron 1982); when two cells share no case their covariance is exactly 0, so
    split-plot and nested designs need no special coding. DeLong:
    :math:`S_{10}/m + S_{01}/n` from the AUC's structural components.

    *Strata* (``stratum``): with :math:`S` strata the cell FOM is
    :math:`\\hat\\theta_a = S^{-1}\\sum_s \\hat\\theta_{as}` and its leave-case-:math:`k`-out value
    :math:`S^{-1}\\sum_s \\hat\\theta_{as(k)}`, with :math:`\\hat\\theta_{as(k)} = \\hat\\theta_{as}` when case
    :math:`k` has no row in stratum :math:`s`; the cell's cases are those of any of its strata. The case, not
    the case x stratum, is the unit of case sampling, so the findings of one image are correlated as they
    should be. With one stratum this is exactly the unstratified analysis.
    *Comparator* (``versus``): :math:`\\hat\\theta_a = \\hat\\theta_a^{reader} - \\hat\\theta_a^{comparator}`
    and :math:`\\hat\\theta_{a(k)}` alike, the comparator computed on cell :math:`a`'s cases. With one test,
    ``means`` is then the single-test OR analysis of the reader-minus-comparator FOM, the "1T-RRRC" comparison
    of readers with a stand-alone algorithm (Chakraborty 2017; RJafroc ``StSignificanceTestingCadVsRad``).

    *Random readers, random cases* (Obuchowski & Rockette 1995; Hillis 2007, 2008):
    :math:`F = MS(T) / [MS(T{:}R) + r\\max(Cov_2 - Cov_3, 0)]` on :math:`t-1` and
    :math:`ddf_H = [MS(T{:}R) + r\\max(Cov_2 - Cov_3,0)]^2 / \\{MS(T{:}R)^2/[(t-1)(r-1)]\\}`
    degrees of freedom; a difference has :math:`SE = \\sqrt{2\\,\\text{denominator}/r}`
    and :math:`ddf_H`; a single test's mean has
    :math:`SE = \\sqrt{MS(R)/r + \\max(Cov_2, 0)}` and
    :math:`df = [MS(R) + r\\max(Cov_2,0)]^2/[MS(R)^2/(r-1)]`.
    *Fixed readers*: :math:`X^2 = (t-1)MS(T)/[\\sigma^2_\\epsilon - Cov_1 + (r-1)(Cov_2 - Cov_3)]`
    on :math:`t-1` df; normal intervals; per-reader differences have
    :math:`SE = \\sqrt{\\hat\\sigma^2_{1j} + \\hat\\sigma^2_{2j} - 2\\widehat{Cov}_{1j,2j}}`.
    *Fixed cases*: :math:`F = MS(T)/MS(T{:}R)` on :math:`t-1, (t-1)(r-1)` df.
    Variance components: :math:`\\sigma^2_R = [MS(R) - MS(T{:}R)]/t - Cov_1 + Cov_3`,
    :math:`\\sigma^2_{TR} = MS(T{:}R) - \\sigma^2_\\epsilon + Cov_1 + Cov_2 - Cov_3`.

    Per-reader FOMs computed on *different cases in each test* (as when each reader
    edits some cases and writes others) are covered without change: the within-reader
    covariance :math:`Cov_1` is then estimated as 0 because the cells share no case,
    and the analysis rests on the reader-to-reader variation of the differences
    (the marginal-mean view of the OR model, Hillis 2014). A conclusion whose
    denominator is not positive gets no p-value, and ``note`` says why.

    References
    ----------
    Obuchowski, N. A., & Rockette, H. E. (1995). Hypothesis testing of diagnostic
    accuracy for multiple readers and multiple tests: an ANOVA approach with
    dependent observations. Communications in Statistics - Simulation and
    Computation, 24(2), 285-308.

    Hillis, S. L. (2007). A comparison of denominator degrees of freedom methods for
    multiple observer ROC analysis. Statistics in Medicine, 26(3), 596-619.

    Hillis, S. L., Berbaum, K. S., & Metz, C. E. (2008). Recent developments in the
    Dorfman-Berbaum-Metz procedure for multireader ROC study analysis. Academic
    Radiology, 15(5), 647-661.

    Hillis, S. L. (2014). A marginal-mean ANOVA approach for analyzing multireader
    multicase radiological imaging data. Statistics in Medicine, 33(2), 330-360.

    DeLong, E. R., DeLong, D. M., & Clarke-Pearson, D. L. (1988). Comparing the areas
    under two or more correlated receiver operating characteristic curves: a
    nonparametric approach. Biometrics, 44(3), 837-845.

    Efron, B. (1982). The Jackknife, the Bootstrap and Other Resampling Plans.
    Philadelphia: SIAM.

    Smith, B. J., & Hillis, S. L. (2020). Multi-reader multi-case analysis of
    variance software for diagnostic performance comparison of imaging modalities.
    Proceedings of SPIE 11316, 113160K (the MRMCaov R package).

    Chakraborty, D. P. (2017). Observer Performance Methods for Diagnostic Imaging: Foundations, Modeling, and
    Applications with R-Based Examples. Boca Raton: CRC Press (chapter "Standalone CAD vs. radiologists").

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.stats import or_hillis
    >>> df = pd.DataFrame({"test": ["x"] * 6 + ["y"] * 6, "reader": list("aaabbbaaabbb"),
    ...                    "case": [1, 2, 3] * 4, "score": [1, 2, 3, 2, 4, 6, 2, 4, 3, 4, 6, 8]})
    >>> res = or_hillis(df, "score", "test", "reader", "case", levels=("y", "x"))
    >>> d = res.differences.set_index("conclusion").loc["random_readers_random_cases"]
    >>> float(d["estimate"]), float(d["statistic"]) ** 2, float(d["df"]), res.design
    (1.5, 9.0, 1.0, 'factorial')
    """
    if fom not in FOMS:
        raise ValueError(f"fom must be one of {', '.join(FOMS)}, got {fom!r}")
    if cov not in COV_METHODS:
        raise ValueError(f"cov must be one of {', '.join(COV_METHODS)}, got {cov!r}")
    if cov == "delong" and fom != "auc":
        raise ValueError("the DeLong covariance applies to the empirical AUC only")
    if cov == "delong" and (stratum is not None or versus is not None):
        raise ValueError("stratum and versus need the jackknife covariance (cov='jackknife')")
    if stratum is not None and fom == "mean":
        raise ValueError("stratum applies to the ROC FOMs (auc, sensitivity, specificity)")
    needed = ([value, test, reader, case] + ([truth] if fom != "mean" else []) + ([stratum] if stratum else [])
              + ([versus] if versus else []))
    if fom != "mean" and truth is None:
        raise ValueError(f"fom={fom!r} needs the reference standard column (truth=...)")
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks column(s): {', '.join(missing)}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    sub = data[needed].copy()
    na = sub.isna().any(axis=1)
    if na.any():
        col = sub.columns[sub.loc[na].isna().any()].tolist()
        raise ValueError(f"{int(na.sum())} read(s) have missing {', '.join(col)}; filter them before the analysis")
    for col in (value,) + ((versus,) if versus else ()):
        y = pd.to_numeric(sub[col], errors="coerce")
        if y.isna().any() or not np.isfinite(y.to_numpy(dtype=float)).all():
            raise ValueError(f"{col} must be finite numbers")
        sub[col] = y.astype(float)
    for col in (test, reader, case) + ((stratum,) if stratum else ()):
        sub[col] = sub[col].astype(str)
    if levels is None:
        levels = tuple(sorted(sub[test].unique()))
    levels = tuple(str(v) for v in levels)
    if len(set(levels)) != len(levels):
        raise ValueError("levels must be distinct")
    absent = [lv for lv in levels if lv not in set(sub[test])]
    if absent:
        raise ValueError(f"no read in test(s) {', '.join(absent)}")
    sub = sub.loc[sub[test].isin(levels)]
    if fom != "mean":
        tr = sub[truth]
        if not tr.isin([0, 1, True, False]).all():
            raise ValueError(f"{truth} must be 0/1")
        sub[truth] = tr.astype(int)
        if sub.groupby([case] + ([stratum] if stratum else []))[truth].nunique().max() > 1:
            raise ValueError(f"{truth} differs between reads of one case; the reference standard is a case property"
                             + (" (of each stratum)" if stratum else ""))
        if fom in ("sensitivity", "specificity"):
            for col in (value,) + ((versus,) if versus else ()):
                if not sub[col].isin([0.0, 1.0]).all():
                    raise ValueError(f"{fom} needs 0/1 decisions in {col}")
            keep = 1 if fom == "sensitivity" else 0
            sub = sub.loc[sub[truth] == keep]
            if fom == "specificity":
                sub[value] = 1.0 - sub[value]
                if versus:
                    sub[versus] = 1.0 - sub[versus]
    if bounds is None and fom != "mean":
        bounds = (-1.0, 1.0) if versus else (0.0, 1.0)

    # Readers need every test: the OR model compares tests within readers.
    per_reader = sub.groupby(reader)[test].nunique()
    complete = per_reader[per_reader == len(levels)].index
    n_dropped = int(per_reader.size - complete.size)
    notes: list[str] = []
    if n_dropped:
        notes.append(f"{n_dropped} reader(s) without a read in every test were left out")
    sub = sub.loc[sub[reader].isin(complete)]
    if sub.empty:
        raise ValueError("no reader has reads in every test")
    reader_levels = tuple(sorted(sub[reader].unique()))
    t, r = len(levels), len(reader_levels)
    t_idx = pd.Categorical(sub[test], categories=levels).codes
    r_idx = pd.Categorical(sub[reader], categories=reader_levels).codes
    c_idx, case_levels = pd.factorize(sub[case], sort=True)
    n_cell, n_case = t * r, len(case_levels)
    cell = t_idx.astype(np.int64) * r + r_idx
    yv = sub[value].to_numpy(dtype=float)
    s_idx, s_levels = pd.factorize(sub[stratum], sort=True) if stratum else (None, None)

    def cell_values(ratings):
        if fom == "mean":
            return (*_loo_mean(ratings, cell, c_idx, n_cell, n_case), None)
        if stratum:
            return (*_loo_stratified(ratings, sub[truth].to_numpy(), s_idx, cell, c_idx, n_cell, n_case, fom,
                                     (levels, reader_levels, tuple(s_levels))), None)
        return _loo_auc(ratings, sub[truth].to_numpy(), cell, c_idx, n_cell, fom)

    theta, pc_cell, pc_case, loo, v_deltas = cell_values(yv)
    if versus:
        # The same cells, cases and order (only the ratings differ), so the two sets of values pair up.
        theta_c, _, _, loo_c, _ = cell_values(sub[versus].to_numpy(dtype=float))
        theta, loo = theta - theta_c, loo - loo_c
    g = np.bincount(pc_cell, minlength=n_cell).astype(float)
    if (g < 2).any():
        bad = int(np.flatnonzero(g < 2)[0])
        raise ValueError(f"reader {reader_levels[bad % r]} has fewer than 2 cases in test {levels[bad // r]}; "
                         "the case-sampling variance needs at least 2")
    if np.ptp(yv) == 0 and fom == "mean":
        raise ValueError(f"{value} has no variation (every read is {yv[0]:g}): there is nothing to compare "
                         "and no variance to estimate")

    if cov == "jackknife":
        jack_mean = np.bincount(pc_cell, weights=loo, minlength=n_cell) / g
        u = (g[pc_cell] - 1) * (jack_mean[pc_cell] - loo)
        big_u = np.zeros((n_cell, n_case))
        big_u[pc_cell, pc_case] = u
        scale = np.sqrt(g * (g - 1))
        sigma = (big_u @ big_u.T) / np.outer(scale, scale)
    else:
        sigma = _delong_cov(v_deltas, n_cell)
    members = np.zeros((n_cell, n_case))
    members[pc_cell, pc_case] = 1.0
    shared = members @ members.T
    design = _classify_design(shared, g, t, r)
    if cov == "delong" and design != "factorial":
        raise ValueError("the DeLong covariance needs a factorial design (every reader reads every case in every test)")

    th = theta.reshape(t, r)
    readers = _reader_table(th, sigma, g, levels, reader_levels, confidence, bounds)
    comps = _components(th, sigma, t, r)
    vc = _variance_component_table(comps, t, r)
    tests, diffs = _global_and_differences(comps, th, t, r, levels, confidence)
    means = _means(th, sigma, t, r, levels, confidence, null, bounds)
    rdiff = _reader_differences(th, sigma, t, r, levels, reader_levels, confidence)
    if bounds is not None:
        notes.append(f"CIs of test means and single readers are truncated to [{bounds[0]:g}, {bounds[1]:g}]")
    return ORResult(fom=fom, cov_method=cov, design=design, design_description=DESIGNS[design], levels=levels,
                    readers=readers, variance_components=vc, tests=tests, differences=diffs, means=means,
                    reader_differences=rdiff, n_readers=r, n_readers_dropped=n_dropped, n_cases=int(n_case),
                    covariance=sigma, notes=notes)


def _loo_auc(rating, truth, cell, case, n_cell, fom):
    """AUC (or a mean over positive/negative cases for sens/spec) and leave-one-case-out values per cell."""
    thetas = np.full(n_cell, np.nan)
    pcs, pks, loos = [], [], []
    deltas = {}
    for a in range(n_cell):
        sel = cell == a
        cs, ys, ts = case[sel], rating[sel], truth[sel]
        if np.unique(cs).size != cs.size:
            raise ValueError("a case is read more than once in one reader x test cell; an ROC FOM needs one rating "
                             "per case")
        if fom != "auc":
            n = ys.size
            thetas[a] = ys.mean() if n else np.nan
            loos.append((ys.sum() - ys) / (n - 1) if n > 1 else np.full(n, np.nan))
            pcs.append(np.full(n, a))
            pks.append(cs)
            continue
        pos, neg = ts == 1, ts == 0
        m, n = int(pos.sum()), int(neg.sum())
        if m < 2 or n < 2:
            raise ValueError("each reader x test cell needs at least 2 positive and 2 negative cases for the AUC")
        v10, v01 = _auc_components(ys[pos], ys[neg])
        auc = v10.mean()
        thetas[a] = auc
        loo = np.empty(cs.size)
        loo[pos] = (m * auc - v10) / (m - 1)
        loo[neg] = (n * auc - v01) / (n - 1)
        loos.append(loo)
        pcs.append(np.full(cs.size, a))
        pks.append(cs)
        deltas[a] = (cs[pos], v10 - auc, cs[neg], v01 - auc)
    order_cell = np.concatenate(pcs)
    order_case = np.concatenate(pks)
    return thetas, order_cell, order_case, np.concatenate(loos), deltas


def _loo_stratified(rating, truth, stratum, cell, case, n_cell, n_case, fom, names):
    """The mean over strata of each cell's per-stratum FOM, and its value with each case left out of every stratum."""
    levels, reader_levels, strata = names
    total = np.zeros(n_cell)
    member = np.zeros((n_cell, n_case), dtype=bool)
    loo_sum = np.zeros((n_cell, n_case))
    for s, name in enumerate(strata):
        sel = stratum == s
        counts = np.bincount(cell[sel], minlength=n_cell)
        if (counts < 2).any():
            bad = int(np.flatnonzero(counts < 2)[0])
            r = len(reader_levels)
            raise ValueError(f"reader {reader_levels[bad % r]} has {counts[bad]} case(s) of stratum {name} in test "
                             f"{levels[bad // r]}; each cell needs at least 2 in every stratum")
        theta_s, pc, pk, loo_s, _ = _loo_auc(rating[sel], truth[sel], cell[sel], case[sel], n_cell, fom)
        total += theta_s
        # A case outside this stratum leaves its FOM as it is: the deviation is added where the case is.
        loo_sum[pc, pk] += loo_s - theta_s[pc]
        member[pc, pk] = True
    n_strata = len(strata)
    theta = total / n_strata
    pc_cell, pc_case = np.nonzero(member)
    loo = theta[pc_cell] + loo_sum[pc_cell, pc_case] / n_strata
    return theta, pc_cell, pc_case, loo


def _delong_cov(deltas, n_cell):
    pos_cases = deltas[0][0]
    neg_cases = deltas[0][2]
    order_p, order_n = np.argsort(pos_cases), np.argsort(neg_cases)
    d10 = np.empty((pos_cases.size, n_cell))
    d01 = np.empty((neg_cases.size, n_cell))
    for a in range(n_cell):
        pc, v10, nc, v01 = deltas[a]
        if not (np.array_equal(np.sort(pc), pos_cases[order_p]) and np.array_equal(np.sort(nc), neg_cases[order_n])):
            raise ValueError("the DeLong covariance needs a factorial design (every reader reads every case in every test)")
        d10[:, a] = v10[np.argsort(pc)]
        d01[:, a] = v01[np.argsort(nc)]
    m, n = d10.shape[0], d01.shape[0]
    return d10.T @ d10 / (m - 1) / m + d01.T @ d01 / (n - 1) / n


def _masks(t, r):
    idx = np.arange(t * r)
    ti, ri = idx // r, idx % r
    same_t = ti[:, None] == ti[None, :]
    same_r = ri[:, None] == ri[None, :]
    return ti, ri, same_t, same_r


def _mean_or_zero(values):
    return float(values.mean()) if values.size else 0.0


def _components(th, sigma, t, r) -> dict:
    ti, ri, same_t, same_r = _masks(t, r)
    grand = th.mean()
    ms_t = r * ((th.mean(axis=1) - grand) ** 2).sum() / (t - 1) if t > 1 else 0.0
    ms_r = t * ((th.mean(axis=0) - grand) ** 2).sum() / (r - 1) if r > 1 else 0.0
    resid = th - th.mean(axis=1, keepdims=True) - th.mean(axis=0, keepdims=True) + grand
    ms_tr = (resid ** 2).sum() / ((t - 1) * (r - 1)) if t > 1 and r > 1 else 0.0
    return {"ms_t": float(ms_t), "ms_r": float(ms_r), "ms_tr": float(ms_tr),
            "var": float(np.diag(sigma).mean()),
            "cov1": _mean_or_zero(sigma[~same_t & same_r]),
            "cov2": _mean_or_zero(sigma[same_t & ~same_r]),
            "cov3": _mean_or_zero(sigma[~same_t & ~same_r])}


def _variance_component_table(c, t, r) -> pd.DataFrame:
    rows = []
    if r > 1:
        if t > 1:
            rows.append(("reader", (c["ms_r"] - c["ms_tr"]) / t - c["cov1"] + c["cov3"]))
            rows.append(("test_x_reader", c["ms_tr"] - c["var"] + c["cov1"] + c["cov2"] - c["cov3"]))
        else:
            rows.append(("reader", c["ms_r"] - c["var"] + c["cov2"]))
    rows += [("error", c["var"]), ("cov1", c["cov1"]), ("cov2", c["cov2"]), ("cov3", c["cov3"])]
    out = pd.DataFrame(rows, columns=["component", "estimate"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["correlation"] = np.where(out["component"].str.startswith("cov"), out["estimate"] / c["var"], np.nan)
    return out


def _interval(est, se, df, confidence):
    q = stats.t.ppf(0.5 + confidence / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + confidence / 2)
    return est - q * se, est + q * se


def _p_two_sided(stat, df):
    if not np.isfinite(stat):
        return float("nan")
    return float(2 * (stats.t.sf(abs(stat), df) if np.isfinite(df) else stats.norm.sf(abs(stat))))


def _global_and_differences(c, th, t, r, levels, confidence):
    tests, diffs = [], []
    if t < 2:
        return pd.DataFrame(columns=["conclusion"]), pd.DataFrame(columns=["conclusion"])
    means = th.mean(axis=1)
    pairs = list(combinations(range(t), 2))
    for conclusion in CONCLUSIONS:
        note = ""
        if conclusion == "random_readers_random_cases":
            denom = c["ms_tr"] + r * max(c["cov2"] - c["cov3"], 0.0)
            df2 = denom ** 2 / (c["ms_tr"] ** 2 / ((t - 1) * (r - 1))) if r > 1 and c["ms_tr"] > 0 else float("nan")
            stat_name, df1 = "F", t - 1
            stat = c["ms_t"] / denom if denom > 0 else float("nan")
            p = float(stats.f.sf(stat, df1, df2)) if np.isfinite(stat) and np.isfinite(df2) else float("nan")
            se_diff, df_diff = np.sqrt(2 * denom / r) if denom > 0 else float("nan"), df2
            if r < 2:
                note = "random readers need at least 2 readers"
            elif not denom > 0 or not c["ms_tr"] > 0:
                note = ("no test x reader variation (MS(T:R) = 0): the Hillis degrees of freedom are undefined, "
                        "so no p-value is given")
        elif conclusion == "fixed_readers_random_cases":
            denom = c["var"] - c["cov1"] + (r - 1) * (c["cov2"] - c["cov3"])
            stat_name, df1, df2 = "X2", t - 1, float("inf")
            stat = (t - 1) * c["ms_t"] / denom if denom > 0 else float("nan")
            p = float(stats.chi2.sf(stat, df1)) if np.isfinite(stat) else float("nan")
            se_diff, df_diff = np.sqrt(2 * denom / r) if denom > 0 else float("nan"), float("inf")
            if not denom > 0:
                note = "no case-sampling variance of the differences: no p-value"
        else:
            denom = c["ms_tr"]
            df1, df2, stat_name = t - 1, (t - 1) * (r - 1), "F"
            stat = c["ms_t"] / denom if denom > 0 else float("nan")
            p = float(stats.f.sf(stat, df1, df2)) if np.isfinite(stat) and df2 > 0 else float("nan")
            se_diff, df_diff = np.sqrt(2 * denom / r) if denom > 0 else float("nan"), float(df2)
            if r < 2:
                note = "random readers need at least 2 readers"
            elif not denom > 0:
                note = "no test x reader variation (MS(T:R) = 0): no p-value"
        if note:
            stat = p = float("nan")
            se_diff = float("nan")
        tests.append({"conclusion": conclusion, "statistic": stat_name, "value": float(stat), "df1": float(df1),
                      "df2": float(df2), "p_val": p, "ms_t": c["ms_t"], "ms_tr": c["ms_tr"],
                      "cov1": c["cov1"], "cov2": c["cov2"], "cov3": c["cov3"], "denominator": float(denom),
                      "note": note})
        for i, j in pairs:
            est = float(means[i] - means[j])
            low, high = _interval(est, se_diff, df_diff, confidence) if np.isfinite(se_diff) else (np.nan, np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = est / se_diff if np.isfinite(se_diff) else float("nan")
            diffs.append({"conclusion": conclusion, "first": levels[i], "second": levels[j], "estimate": est,
                          "se": float(se_diff), "df": float(df_diff), "ci_low": float(low), "ci_high": float(high),
                          "statistic": float(z), "p_val": _p_two_sided(z, df_diff), "note": note})
    return pd.DataFrame(tests), pd.DataFrame(diffs)


def _truncate(low, high, bounds):
    if bounds is None:
        return low, high
    return max(bounds[0], low), min(bounds[1], high)


def _means(th, sigma, t, r, levels, confidence, null, bounds):
    rows = []
    ti, ri, same_t, same_r = _masks(t, r)
    for i, level in enumerate(levels):
        block = sigma[np.ix_(ti == i, ti == i)]
        var_i = float(np.diag(block).mean())
        off = block[~np.eye(r, dtype=bool)]
        cov2 = float(off.mean()) if off.size else 0.0
        est = float(th[i].mean())
        ms_r = float(th[i].var(ddof=1)) if r > 1 else float("nan")
        for conclusion in CONCLUSIONS:
            note = ""
            if conclusion == "random_readers_random_cases":
                se = np.sqrt(ms_r / r + max(cov2, 0.0)) if r > 1 else float("nan")
                df = ((ms_r + r * max(cov2, 0.0)) ** 2 / (ms_r ** 2 / (r - 1))) if r > 1 and ms_r > 0 else float("nan")
                if r < 2:
                    note = "random readers need at least 2 readers"
                elif not ms_r > 0:
                    note = "every reader has the same estimate (MS(R) = 0): the Hillis df are undefined"
            elif conclusion == "fixed_readers_random_cases":
                se = np.sqrt((var_i + (r - 1) * max(cov2, 0.0)) / r)
                df = float("inf")
                if not se > 0:
                    note = "no case-sampling variance: no interval"
            else:
                se = np.sqrt(ms_r / r) if r > 1 else float("nan")
                df = float(r - 1)
                if r < 2:
                    note = "random readers need at least 2 readers"
                elif not ms_r > 0:
                    note = "every reader has the same estimate (MS(R) = 0): no interval"
            if note:
                se, df = float("nan"), float("nan")
                low = high = float("nan")
            else:
                low, high = _truncate(*_interval(est, se, df, confidence), bounds)
            row = {"conclusion": conclusion, "test": level, "estimate": est, "se": float(se), "df": float(df),
                   "ci_low": float(low), "ci_high": float(high), "ms_r": ms_r, "cov2": cov2, "note": note}
            if null is not None:
                stat = (est - null) / se if np.isfinite(se) and se > 0 else float("nan")
                row.update(null=float(null), statistic=float(stat), p_val=_p_two_sided(stat, df))
            rows.append(row)
    return pd.DataFrame(rows)


def _reader_table(th, sigma, g, levels, reader_levels, confidence, bounds):
    t, r = th.shape
    z = stats.norm.ppf(0.5 + confidence / 2)
    se = np.sqrt(np.clip(np.diag(sigma), 0, None))
    rows = []
    for i, level in enumerate(levels):
        for j, rd in enumerate(reader_levels):
            a = i * r + j
            low, high = _truncate(th[i, j] - z * se[a], th[i, j] + z * se[a], bounds)
            rows.append({"test": level, "reader": rd, "estimate": float(th[i, j]), "n_cases": int(g[a]),
                         "se": float(se[a]), "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows)


def _reader_differences(th, sigma, t, r, levels, reader_levels, confidence):
    rows = []
    z = stats.norm.ppf(0.5 + confidence / 2)
    for i, k in combinations(range(t), 2):
        for j, rd in enumerate(reader_levels):
            a, b = i * r + j, k * r + j
            var = sigma[a, a] + sigma[b, b] - 2 * sigma[a, b]
            se = float(np.sqrt(var)) if var > 0 else float("nan")
            est = float(th[i, j] - th[k, j])
            stat = est / se if np.isfinite(se) else float("nan")
            rows.append({"reader": rd, "first": levels[i], "second": levels[k], "estimate": est, "se": se,
                         "ci_low": est - z * se, "ci_high": est + z * se, "statistic": stat,
                         "p_val": _p_two_sided(stat, float("inf"))})
    return pd.DataFrame(rows, columns=["reader", "first", "second", "estimate", "se", "ci_low", "ci_high",
                                       "statistic", "p_val"])
