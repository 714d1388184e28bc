"""Seeded bootstrap confidence intervals: BCa with percentile fallback, and the two-way (reader x case) bootstrap."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy import special

from analysis.defaults import DEFAULT_SEED


# Bound the resample matrix (resamples x observations) held at once, so 1,000
# resamples of 100,000 reads stay at a few tens of MB.
_CELLS_PER_CHUNK = 4_000_000
# Above this size the jackknife for a non-mean statistic uses delete-a-group
# blocks: n leave-one-out refits would cost O(n^2).
_JACKKNIFE_MAX_N = 2_000


def _as_statistic(statistic: str | Callable) -> Callable:
    if callable(statistic):
        return statistic
    table = {"mean": np.mean, "median": np.median}
    if statistic not in table:
        raise ValueError(f"statistic must be 'mean', 'median' or a callable f(values, axis), got {statistic!r}")
    return table[statistic]


def _jackknife(x: np.ndarray, func: Callable, is_mean: bool) -> np.ndarray:
    n = x.size
    if is_mean:
        return (x.sum() - x) / (n - 1)
    if n <= _JACKKNIFE_MAX_N:
        mask = ~np.eye(n, dtype=bool)
        return np.array([func(x[mask[i]], axis=0) for i in range(n)], dtype=float)
    blocks = np.array_split(np.arange(n), _JACKKNIFE_MAX_N)
    keep = np.ones(n, dtype=bool)
    out = np.empty(len(blocks))
    for i, block in enumerate(blocks):
        keep[block] = False
        out[i] = func(x[keep], axis=0)
        keep[block] = True
    return out


def bootstrap_ci(x, statistic: str | Callable = "mean", *, n_boot: int = 1000, seed: int = DEFAULT_SEED,
                 confidence: float = 0.95, method: str = "bca") -> dict:
    """Bootstrap confidence interval of a one-sample statistic, BCa with percentile fallback.

    Parameters
    ----------
    x : array_like
        Observations (NaN dropped). Each resample draws ``len(x)`` of them with
        replacement.
    statistic : {'mean', 'median'} or callable
        A callable must accept ``(values, axis)`` like :func:`numpy.mean`.
    n_boot : int
        Number of resamples (1,000 by default).
    seed : int
        Seed of the :class:`numpy.random.Generator` (PCG64) drawing the resamples.
    confidence : float
    method : {'bca', 'percentile'}
        Requested interval. BCa falls back to percentile when its bias or
        acceleration is undefined (NaN), e.g. on constant data.

    Returns
    -------
    dict
        * ``'estimate'``: statistic on the original data
        * ``'ci_low'``, ``'ci_high'``: interval limits
        * ``'ci_method'``: ``'bca'``, ``'percentile'`` or ``'percentile_fallback'``
          (BCa requested but undefined)
        * ``'se_boot'``: standard deviation of the bootstrap distribution
        * ``'n_boot'``, ``'n'``, ``'seed'``

    Notes
    -----
    BCa limits are the bootstrap quantiles at
    :math:`\\Phi(z_0 + (z_0 + z_\\alpha)/(1 - a(z_0 + z_\\alpha)))` with bias
    :math:`z_0 = \\Phi^{-1}(\\#\\{\\theta^*_b < \\hat\\theta\\}/B)` and
    acceleration :math:`a = \\sum(\\bar\\theta_{(.)} - \\theta_{(i)})^3 /
    6[\\sum(\\bar\\theta_{(.)} - \\theta_{(i)})^2]^{3/2}` from the jackknife
    (exact leave-one-out for the mean; above 2,000 observations, other statistics
    use 2,000 delete-a-group blocks).

    References
    ----------
    Efron, B. (1987). Better bootstrap confidence intervals. Journal of the
    American Statistical Association, 82(397), 171-185.

    Efron, B., & Tibshirani, R. J. (1993). An Introduction to the Bootstrap.
    Chapman & Hall, chapter 14.

    Examples
    --------
    >>> from analysis.stats import bootstrap_ci
    >>> r = bootstrap_ci([3.0, 3.0, 3.0, 3.0])
    >>> r["ci_method"], r["ci_low"], r["ci_high"]
    ('percentile_fallback', 3.0, 3.0)
    """
    if method not in ("bca", "percentile"):
        raise ValueError("method must be 'bca' or 'percentile'")
    values = np.asarray(x, dtype=float).ravel()
    values = values[~np.isnan(values)]
    n = values.size
    base = {"n_boot": int(n_boot), "n": int(n), "seed": int(seed)}
    if n == 0:
        return {"estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                "ci_method": "none", "se_boot": float("nan"), **base}
    func = _as_statistic(statistic)
    is_mean = func is np.mean
    estimate = float(func(values, axis=0))
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = func(values[idx], axis=1)
    alpha = 1 - confidence
    used = "percentile"
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    if method == "bca":
        limits = _bca_limits(values, boot, estimate, func, is_mean, alpha)
        if limits is None:
            used = "percentile_fallback"
        else:
            low, high = limits
            used = "bca"
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high), "ci_method": used,
            "se_boot": float(boot.std(ddof=1)) if n_boot > 1 else float("nan"), **base}


def _bca_limits(values, boot, estimate, func, is_mean, alpha):
    if values.size < 3:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = special.ndtri(np.mean(boot < estimate))
        jack = _jackknife(values, func, is_mean)
        dev = jack.mean() - jack
        a = (dev ** 3).sum() / (6.0 * ((dev ** 2).sum()) ** 1.5)
        z = special.ndtri(np.array([alpha / 2, 1 - alpha / 2]))
        adj = special.ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    if not np.all(np.isfinite(adj)) or not np.isfinite(a):
        return None
    low, high = np.percentile(boot, 100 * adj)
    return float(low), float(high)


def two_way_bootstrap_ratio(data: pd.DataFrame, dv: str, condition: str, levels: tuple[str, str], *,
                            reader: str = "reader_id", case: str = "case_id", n_boot: int = 1000,
                            seed: int = DEFAULT_SEED, confidence: float = 0.95) -> dict:
    """Ratio of geometric means between two conditions with a two-way (reader x case) bootstrap CI.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per read.
    dv : str
        Positive measurement (e.g. ``'duration_s'``); non-positive values are refused.
    condition : str
        Column of the condition; ``levels = (reference, comparison)``.
    levels : tuple of str
    reader, case : str
        Crossed clustering columns; each resample draws readers and cases
        independently with replacement, and a read enters with weight
        (times its reader was drawn) x (times its case was drawn).
    n_boot, seed, confidence
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        * ``'ratio'``: geometric mean of ``levels[1]`` over that of ``levels[0]``
        * ``'ci_low'``, ``'ci_high'``: percentile interval over resamples
        * ``'ci_method'``: ``'percentile_two_way'``
        * ``'n_boot'``, ``'n_valid'`` (resamples in which both conditions were drawn),
          ``'n_reads'``, ``'n_readers'``, ``'n_cases'``, ``'seed'``

    Notes
    -----
    :math:`\\hat r = \\exp(\\overline{\\log y}_1 - \\overline{\\log y}_0)`; in
    resample :math:`b`, read :math:`(i,j)` gets weight :math:`w^R_{bi} w^C_{bj}`
    and the means are weighted. Resampling both crossed factors ("pigeonhole"
    bootstrap) keeps reader and case variability in the interval, which a per-read
    bootstrap ignores. Percentile limits are used: BCa's jackknife has no standard
    two-way form.

    References
    ----------
    Owen, A. B. (2007). The pigeonhole bootstrap. The Annals of Applied Statistics,
    1(2), 386-411.

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.stats import two_way_bootstrap_ratio
    >>> df = pd.DataFrame({"reader_id": list("aabb"), "case_id": list("xyxy"),
    ...                    "condition": ["write", "edit", "edit", "write"], "t": [100., 50., 60., 120.]})
    >>> round(two_way_bootstrap_ratio(df, "t", "condition", ("write", "edit"), n_boot=50)["ratio"], 3)
    0.5
    """
    sub = data.loc[data[condition].isin(levels), [dv, condition, reader, case]].dropna(subset=[dv])
    y = sub[dv].to_numpy(dtype=float)
    if (y <= 0).any():
        raise ValueError(f"{dv} must be positive for a ratio of geometric means")
    logy = np.log(y)
    second = sub[condition].to_numpy() == levels[1]
    first = ~second
    if not first.any() or not second.any():
        raise ValueError(f"both {levels[0]!r} and {levels[1]!r} need reads")
    ratio = float(np.exp(logy[second].mean() - logy[first].mean()))
    r_idx, r_codes = pd.factorize(sub[reader])
    c_idx, c_codes = pd.factorize(sub[case])
    n_r, n_c, n = len(r_codes), len(c_codes), y.size
    rng = np.random.default_rng(seed)
    boot = np.full(n_boot, np.nan)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    cols = np.stack([logy * first, first.astype(float), logy * second, second.astype(float)], axis=1)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        m = stop - start
        wr = np.stack([np.bincount(rng.integers(0, n_r, n_r), minlength=n_r) for _ in range(m)])
        wc = np.stack([np.bincount(rng.integers(0, n_c, n_c), minlength=n_c) for _ in range(m)])
        w = wr[:, r_idx].astype(float) * wc[:, c_idx]
        sums = w @ cols
        with np.errstate(divide="ignore", invalid="ignore"):
            boot[start:stop] = np.exp(sums[:, 2] / sums[:, 3] - sums[:, 0] / sums[:, 1])
    valid = boot[np.isfinite(boot)]
    alpha = 1 - confidence
    if valid.size:
        low, high = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    else:
        low = high = float("nan")
    return {"ratio": ratio, "ci_low": float(low), "ci_high": float(high), "ci_method": "percentile_two_way",
            "n_boot": int(n_boot), "n_valid": int(valid.size), "n_reads": int(n), "n_readers": int(n_r),
            "n_cases": int(n_c), "seed": int(seed)}
