"""REML linear mixed model with crossed variance components and Satterthwaite degrees of freedom, written out because statsmodels has neither the df nor a fast crossed fit."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse, stats

#: The Satterthwaite df use dense n x n matrices; above this many observations the
#: caller must subsample (mixed_model_ratio and icc_crossed do, by whole cases or targets).
MAX_OBSERVATIONS = 6000
#: A variance component whose REML estimate falls below this share of the total
#: variance is at the boundary (0): it is removed and the model refitted, so the
#: Satterthwaite df are computed where the likelihood is smooth (lmerTest's
#: numerical Hessian at the boundary is not reproducible either).
BOUNDARY_SHARE = 1e-6


def _one_blas_thread():
    """The matrices here are small (a few hundred rows): OpenBLAS's threads cost ten times the
    work on a busy machine, so the fit runs single-threaded (threadpoolctl comes with
    scikit-learn, a dependency of pingouin; without it the default threading is kept)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class _Fit:
    theta: np.ndarray
    sigma2: float
    beta: np.ndarray
    deviance: float
    converged: bool
    xvx: np.ndarray


def _term_codes(data: pd.DataFrame, term: str) -> np.ndarray:
    cols = term.split(":")
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"random term {term!r}: data lack column(s) {', '.join(missing)}")
    key = data[cols[0]].astype(str)
    for c in cols[1:]:
        key = key + "\x1f" + data[c].astype(str)
    return pd.factorize(key)[0]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two factors group the observations identically (aliased terms)."""
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return pairs.shape[0] == np.unique(a).size == np.unique(b).size


def _design_checks(terms: dict[str, np.ndarray], x: np.ndarray, n: int) -> tuple[dict, list]:
    """Keep the random terms the data can estimate; say why each other one was dropped."""
    kept, dropped = {}, []
    for name, codes in terms.items():
        levels = np.unique(codes).size
        if levels < 2:
            dropped.append({"term": name, "reason": f"only {levels} level: no variance to estimate"})
            continue
        if levels == n:
            dropped.append({"term": name, "reason": "one observation per level: confounded with the residual"})
            continue
        aliased = next((k for k, c in kept.items() if _same_partition(c, codes)), None)
        if aliased is not None:
            dropped.append({"term": name, "reason": f"groups the observations exactly as {aliased!r} (aliased)"})
            continue
        # A term nested in the fixed effect's levels with one level per fixed level adds nothing.
        kept[name] = codes
    return kept, dropped


class _REML:
    """Profiled REML deviance of y = X beta + sum_k Z_k b_k + e with b_k ~ N(0, s2 theta_k^2 I).

    Every term is one factor, so its own block of Z'Z is diagonal; the term with the most
    levels (the cases) is eliminated by a Schur complement and only the small rest is
    factorised, which makes an evaluation O(q_small^3 + q_small^2 q_large) instead of O(q^3).
    """

    def __init__(self, y, x, terms: dict[str, np.ndarray]):
        self.y, self.x = y, x
        self.n, self.p = x.shape
        self.names = list(terms)
        blocks = [sparse.csr_matrix((np.ones(self.n), (np.arange(self.n), c)), shape=(self.n, c.max() + 1))
                  for c in terms.values()]
        self.sizes = [b.shape[1] for b in blocks]
        self.z = sparse.hstack(blocks).tocsr()
        ztz = (self.z.T @ self.z).toarray()
        ztb = np.asarray(self.z.T @ np.column_stack([y, x]))
        self.xtx, self.xty, self.yty = x.T @ x, x.T @ y, float(y @ y)
        self.expand = np.repeat(np.arange(len(self.sizes)), self.sizes)
        self.big = int(np.argmax(self.sizes))
        in_big = self.expand == self.big
        self.small_terms = self.expand[~in_big]
        self.ztz_ss = ztz[np.ix_(~in_big, ~in_big)]
        self.ztz_sl = ztz[np.ix_(~in_big, in_big)]
        self.d_l = np.diag(ztz)[in_big]
        self.ztb_s, self.ztb_l = ztb[~in_big], ztb[in_big]

    def evaluate(self, theta):
        # The simplex polish is unbounded: the deviance depends on |theta| and beyond a relative SD of
        # 1e4 there is nothing left to fit, so theta is folded and clipped like the L-BFGS-B bounds.
        theta = np.minimum(np.abs(np.asarray(theta, dtype=float)), 1e4)
        t_big = theta[self.big]
        lam_s = theta[self.small_terms]
        a_ll = t_big ** 2 * self.d_l + 1.0
        b_l = t_big * self.ztb_l
        quad = b_l.T @ (b_l / a_ll[:, None])
        logdet_a = np.log(a_ll).sum()
        if lam_s.size:
            a_ss = lam_s[:, None] * self.ztz_ss * lam_s[None, :]
            a_ss[np.diag_indices_from(a_ss)] += 1.0
            a_sl = (lam_s[:, None] * self.ztz_sl) * t_big
            schur = a_ss - (a_sl / a_ll[None, :]) @ a_sl.T
            w = lam_s[:, None] * self.ztb_s - (a_sl / a_ll[None, :]) @ b_l
            chol = linalg.cho_factor(schur, lower=True, check_finite=False)
            quad = quad + w.T @ linalg.cho_solve(chol, w, check_finite=False)
            logdet_a += 2 * np.log(np.diag(chol[0])).sum()
        xvx = self.xtx - quad[1:, 1:]
        xvy = self.xty - quad[1:, 0]
        sign, logdet_x = np.linalg.slogdet(xvx)
        if sign <= 0:
            # Far out (a relative SD in the thousands) X'V^-1 X underflows: no optimum there.
            return 1e10 + float(theta @ theta), np.full(self.p, np.nan), np.nan, xvx
        beta = np.linalg.solve(xvx, xvy)
        r2 = self.yty - quad[0, 0] - beta @ xvy
        dof = self.n - self.p
        dev = logdet_a + logdet_x + dof * (1 + np.log(2 * np.pi * max(r2, 1e-300) / dof))
        return dev, beta, r2 / dof, xvx

    def woodbury_m(self, theta):
        """M = Lambda (Lambda Z'Z Lambda + I)^-1 Lambda, so that V^-1 = (I - Z M Z') / sigma^2."""
        lam = np.asarray(theta, dtype=float)[self.expand]
        ztz = (self.z.T @ self.z).toarray()
        a = lam[:, None] * ztz * lam[None, :]
        a[np.diag_indices_from(a)] += 1.0
        return lam[:, None] * linalg.cho_solve(linalg.cho_factor(a, lower=True), np.diag(lam))

    def fit(self, start=None, polish: bool = True) -> _Fit:
        k = len(self.names)
        x0 = np.ones(k) if start is None else np.asarray(start, dtype=float)
        # Bounded search over the variance ratios s = theta^2, not theta: the deviance depends on
        # theta^2, so in theta every theta_k = 0 is a stationary point where a gradient method can
        # stop at a saddle (it did: ICC fits stuck at s = 0 with a deviance 11 above the optimum);
        # in s the gradient at 0 says whether the variance should leave the boundary.
        res = optimize.minimize(lambda v: self.evaluate(np.sqrt(v))[0], x0 ** 2, method="L-BFGS-B",
                                bounds=[(0, 1e8)] * k, options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000})
        res.x = np.sqrt(res.x)
        best, converged = res, bool(res.success)
        if polish:
            # A polishing pass from the first optimum with a small simplex: L-BFGS-B's finite
            # differences stop short on flat REML surfaces, and the df are sensitive to the last
            # digits of theta (the deviance depends on theta^2 only, so the sign is free). Only
            # interior optima are polished: at theta = 0 the surface is flat and the term is removed.
            step = 1e-3 * np.maximum(np.abs(res.x), 0.05)
            simplex = np.vstack([res.x] + [res.x + np.eye(k)[i] * step[i] for i in range(k)])
            res2 = optimize.minimize(lambda th: self.evaluate(th)[0], res.x, method="Nelder-Mead",
                                     options={"xatol": 1e-7, "fatol": 1e-10, "maxfev": 150 * (k + 1),
                                              "initial_simplex": simplex})
            if res2.fun <= res.fun:
                best = res2
            # L-BFGS-B often ends "abnormally" on the finite-difference noise after reaching the
            # optimum; then the polish converging, or failing to improve the deviance by more
            # than 1e-7, is the criterion.
            converged = converged or bool(res2.success) or abs(res.fun - res2.fun) < 1e-7
        theta = np.minimum(np.abs(best.x), 1e4)
        dev, beta, s2, xvx = self.evaluate(theta)
        return _Fit(theta=theta, sigma2=float(s2), beta=beta, deviance=float(dev), converged=converged, xvx=xvx)


@dataclass
class LMMResult:
    """A fitted REML mixed model (see :func:`mixed_model`)."""

    fixed: pd.DataFrame
    variance_components: dict
    terms_dropped: list = field(default_factory=list)
    deviance: float = float("nan")
    n_obs: int = 0
    converged: bool = False
    levels: dict = field(default_factory=dict)
    variance_covariance: pd.DataFrame | None = None


def _satterthwaite(model: _REML, fit: _Fit, names: list[str]):
    """Covariance of beta and, for each fixed coefficient, Satterthwaite's df."""
    n = model.n
    s2 = fit.sigma2
    phi = np.append(s2 * fit.theta ** 2, s2)  # variances of the random terms, then the residual
    zd = model.z.toarray()
    m = model.woodbury_m(fit.theta)
    w = (np.eye(n) - zd @ m @ zd.T) / s2  # V^-1 by Woodbury
    wx = w @ model.x
    c = np.linalg.inv(model.x.T @ wx)
    p_mat = w - wx @ c @ wx.T
    py = p_mat @ model.y
    blocks = np.split(np.arange(zd.shape[1]), np.cumsum(model.sizes)[:-1])
    pz = [p_mat @ zd[:, b] for b in blocks]
    k = len(blocks)
    # Observed information of the variance parameters: Hessian of -2 log L_REML,
    # H_kl = -tr(P V_k P V_l) + 2 y'P V_k P V_l P y with V_k = Z_k Z_k' (residual: I).
    vk_py = [zd[:, b] @ (zd[:, b].T @ py) for b in blocks] + [py]
    pvk = pz + [p_mat]
    hess = np.empty((k + 1, k + 1))
    for i in range(k + 1):
        for j in range(i, k + 1):
            if i < k and j < k:
                trace = float(((zd[:, blocks[i]].T @ pz[j]) ** 2).sum())
            elif i < k:
                trace = float((pz[i] ** 2).sum())
            else:
                trace = float((p_mat ** 2).sum())
            quad = float(vk_py[i] @ p_mat @ vk_py[j])
            hess[i, j] = hess[j, i] = -trace + 2 * quad
    acov = 2 * np.linalg.inv(hess)
    # dC/dphi_k = C X'V^-1 V_k V^-1 X C.
    grads = []
    for b in blocks:
        zwx = zd[:, b].T @ wx
        grads.append(c @ zwx.T @ zwx @ c)
    grads.append(c @ wx.T @ wx @ c)
    df = []
    for j in range(model.p):
        g = np.array([gk[j, j] for gk in grads])
        denom = g @ acov @ g
        df.append(float(2 * c[j, j] ** 2 / denom) if denom > 0 else float("inf"))
    return c, np.array(df), phi, acov


def mixed_model(data: pd.DataFrame, dv: str, random: tuple[str, ...], *, fixed: str | None = None,
                levels: tuple[str, str] | None = None, covariates: tuple[str, ...] = (),
                confidence: float = 0.95) -> LMMResult:
    """REML linear mixed model with crossed random intercepts and Satterthwaite degrees of freedom.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per observation.
    dv : str
        Numeric response (e.g. log duration).
    random : tuple of str
        Random-intercept terms: a column (``'reader_id'``) or an interaction of
        columns joined by ``:`` (``'reader_id:condition'``, one effect per reader x
        condition). Terms the data cannot estimate are dropped and listed.
    fixed : str, optional
        A two-level condition column entering as intercept + indicator of
        ``levels[1]``; None for an intercept-only model.
    levels : tuple of str, optional
        ``(reference, comparison)`` for ``fixed``.
    covariates : tuple of str
        Categorical nuisance columns entering as fixed effects, one indicator per level after the first in
        sorted order (e.g. ``'reading_session'``, the period of a crossover); their coefficients are named
        ``column[level]``.
    confidence : float

    Returns
    -------
    LMMResult
        * ``fixed``: one row per coefficient (``intercept``, ``comparison``, then the covariates'),
          columns ``term``, ``estimate``, ``se``, ``df`` (Satterthwaite), ``t``,
          ``p_val``, ``ci_low``, ``ci_high``
        * ``variance_components``: ``{term: variance}`` including ``residual``;
          a term at the REML boundary (0) is reported as 0
        * ``terms_dropped``: ``[{'term', 'reason'}]`` (not estimable from this
          design, or estimated at 0 and removed before the df were computed)
        * ``deviance``: the REML criterion (lme4's ``REMLcrit``) of the final model
        * ``n_obs``, ``converged``, ``levels``
        * ``variance_covariance``: asymptotic covariance matrix of the estimated
          variances (:math:`A = 2H^{-1}`), indexed by term and ``residual``

    Raises
    ------
    ValueError
        Missing or non-finite values, no variation in ``dv``, or a fixed level
        without observations.

    Notes
    -----
    :math:`y = X\\beta + \\sum_k Z_k b_k + \\varepsilon`,
    :math:`b_k \\sim N(0, \\sigma^2_k I)`, :math:`\\varepsilon \\sim N(0, \\sigma^2 I)`.
    The REML deviance is profiled over :math:`\\sigma^2` as in lme4: with
    :math:`\\Lambda = \\mathrm{diag}(\\sigma_k/\\sigma)` and the Cholesky factor
    :math:`LL^\\top = \\Lambda Z^\\top Z\\Lambda + I`,
    :math:`d(\\theta) = \\log|L|^2 + \\log|X^\\top V_*^{-1}X| + (n-p)[1 + \\log(2\\pi r^2/(n-p))]`,
    minimised over :math:`\\theta \\ge 0` (L-BFGS-B, then Nelder-Mead polishing).
    Satterthwaite's df for coefficient :math:`j`:
    :math:`\\nu = 2\\,[C_{jj}]^2 / (g^\\top A g)`, where :math:`C = (X^\\top V^{-1}X)^{-1}`,
    :math:`g_k = \\partial C_{jj}/\\partial\\sigma^2_k = [C X^\\top V^{-1} V_k V^{-1} X C]_{jj}`
    and :math:`A = 2H^{-1}`, :math:`H` the observed Hessian of :math:`-2\\log L_R` in
    the variances, :math:`H_{kl} = -\\mathrm{tr}(PV_kPV_l) + 2y^\\top PV_kPV_lPy`.
    This is the df lmerTest computes (it differentiates numerically in the SD
    scale; at an interior optimum the two agree). A term estimated at 0 is
    removed and the model refitted (the estimates do not change).

    References
    ----------
    Patterson, H. D., & Thompson, R. (1971). Recovery of inter-block information
    when block sizes are unequal. Biometrika, 58(3), 545-554.

    Satterthwaite, F. E. (1946). An approximate distribution of estimates of
    variance components. Biometrics Bulletin, 2(6), 110-114.

    Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear
    mixed-effects models using lme4. Journal of Statistical Software, 67(1), 1-48.

    Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest
    package: tests in linear mixed effects models. Journal of Statistical
    Software, 82(13), 1-26.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from analysis.stats import mixed_model
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"reader": np.repeat(list("abcdef"), 20), "case": np.tile(np.arange(20), 6)})
    >>> df["y"] = rng.normal(size=120) + df["reader"].map(dict(zip("abcdef", rng.normal(0, 1, 6))))
    >>> fit = mixed_model(df, "y", ("reader", "case"))
    >>> sorted(fit.variance_components), fit.fixed["term"].tolist()
    (['case', 'reader', 'residual'], ['intercept'])
    """
    if dv not in data.columns:
        raise ValueError(f"data lack column {dv!r}")
    cols = list(dict.fromkeys([dv] + ([fixed] if fixed else []) + list(covariates)
                              + [c for t in random for c in t.split(":")]))
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"data lack column(s): {', '.join(missing)}")
    sub = data[cols].copy()
    if sub.isna().any().any():
        raise ValueError("missing values in the model's columns; filter them first")
    y = sub[dv].to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise ValueError(f"{dv} has non-finite values")
    if np.ptp(y) == 0:
        raise ValueError(f"{dv} has no variation (every value is {y[0]:g}); no model is fitted")
    if y.size > MAX_OBSERVATIONS:
        raise ValueError(f"{y.size} observations: the Satterthwaite df need dense {y.size} x {y.size} matrices; "
                         f"fit at most {MAX_OBSERVATIONS} (subsample whole cases)")
    x_cols = [np.ones(y.size)]
    names = ["intercept"]
    if fixed:
        if levels is None or len(levels) != 2:
            raise ValueError("fixed needs levels=(reference, comparison)")
        values = sub[fixed].astype(str).to_numpy()
        for lv in levels:
            if not (values == str(lv)).any():
                raise ValueError(f"no observation with {fixed} == {lv!r}")
        if not np.isin(values, [str(v) for v in levels]).all():
            raise ValueError(f"{fixed} has values outside {levels}")
        x_cols.append((values == str(levels[1])).astype(float))
        names.append("comparison")
    for column in covariates:
        values = sub[column].astype(str).to_numpy()
        for level in sorted(set(values))[1:]:
            x_cols.append((values == level).astype(float))
            names.append(f"{column}[{level}]")
    x = np.column_stack(x_cols)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("the fixed effects are aliased (a covariate's levels coincide with the condition's); "
                         "leave the covariate out")
    terms = {t: _term_codes(sub, t) for t in random}
    kept, dropped = _design_checks(terms, x, y.size)
    with _one_blas_thread():
        return _fit_and_summarise(y, x, names, kept, dropped, levels if fixed else None, confidence)


def _fit_and_summarise(y, x, names, kept, dropped, levels, confidence) -> LMMResult:
    # No random term left (every one dropped as not estimable): ordinary least squares below.
    model = _REML(y, x, kept) if kept else None
    fit = model.fit(polish=False) if kept else None
    if kept:
        total = fit.sigma2 * (1 + (fit.theta ** 2).sum())
        at_zero = [nm for nm, th in zip(model.names, fit.theta) if fit.sigma2 * th ** 2 < BOUNDARY_SHARE * total]
        dropped += [{"term": nm, "reason": "REML estimate 0 (boundary): removed before the df were computed"}
                    for nm in at_zero]
        start = [th for nm, th in zip(model.names, fit.theta) if nm not in at_zero]
        kept = {k: v for k, v in kept.items() if k not in at_zero}
        model = _REML(y, x, kept) if kept else None
        fit = model.fit(start=start, polish=True) if kept else None
    if fit is not None and not fit.sigma2 > 1e-10 * np.var(y):
        raise ValueError("the residual variance is estimated 0 (every observation is explained by the random "
                         "effects): the model is degenerate and no test is given")
    if fit is None:
        # Only the residual: ordinary least squares with n - p df.
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        dof = y.size - x.shape[1]
        s2 = float(((y - x @ beta) ** 2).sum() / dof)
        cov = s2 * np.linalg.inv(x.T @ x)
        df = np.full(x.shape[1], float(dof))
        vcomp = {"residual": s2}
        deviance, converged = float("nan"), True
        var_cov = pd.DataFrame([[2 * s2 ** 2 / dof]], index=["residual"], columns=["residual"])
    else:
        cov, df, phi, acov = _satterthwaite(model, fit, model.names)
        vnames = list(model.names) + ["residual"]
        var_cov = pd.DataFrame(acov, index=vnames, columns=vnames)
        beta = fit.beta
        vcomp = {nm: float(v) for nm, v in zip(model.names, phi[:-1])}
        vcomp["residual"] = float(phi[-1])
        deviance, converged = fit.deviance, fit.converged
    for d in dropped:
        if "boundary" in d["reason"]:
            vcomp[d["term"]] = 0.0
    se = np.sqrt(np.diag(cov))
    rows = []
    for j, nm in enumerate(names):
        tval = beta[j] / se[j]
        q = stats.t.ppf(0.5 + confidence / 2, df[j])
        rows.append({"term": nm, "estimate": float(beta[j]), "se": float(se[j]), "df": float(df[j]),
                     "t": float(tval), "p_val": float(2 * stats.t.sf(abs(tval), df[j])),
                     "ci_low": float(beta[j] - q * se[j]), "ci_high": float(beta[j] + q * se[j])})
    return LMMResult(fixed=pd.DataFrame(rows), variance_components=vcomp, terms_dropped=dropped,
                     deviance=deviance, n_obs=int(y.size), converged=converged,
                     levels={"reference": levels[0], "comparison": levels[1]} if levels else {},
                     variance_covariance=var_cov)
