"""Per-read descriptive summaries (mean, SD, median, quartiles) as reported in the paper."""

from __future__ import annotations

import numpy as np
import pandas as pd


def describe(x) -> dict:
    """Mean, standard deviation and quartiles of one sample, ignoring missing values.

    Parameters
    ----------
    x : array_like
        Values; NaN (missing) values are dropped before anything is computed.

    Returns
    -------
    dict
        * ``'n'``: number of non-missing values
        * ``'mean'``: arithmetic mean
        * ``'sd'``: sample standard deviation (``ddof=1``; NaN when n < 2)
        * ``'median'``, ``'q1'``, ``'q3'``: median and quartiles (linear interpolation)
        * ``'min'``, ``'max'``

    Notes
    -----
    :math:`\\bar x = \\frac1n\\sum x_i`, :math:`s = \\sqrt{\\frac{1}{n-1}\\sum (x_i-\\bar x)^2}`;
    quartiles use Hyndman & Fan type 7 (R's default).

    References
    ----------
    Hyndman, R. J., & Fan, Y. (1996). Sample quantiles in statistical packages.
    The American Statistician, 50(4), 361-365.

    Examples
    --------
    >>> from analysis.stats import describe
    >>> d = describe([1.0, 2.0, 3.0, 4.0, float("nan")])
    >>> d["n"], d["mean"], round(d["sd"], 4)
    (4, 2.5, 1.291)
    """
    values = pd.to_numeric(pd.Series(np.asarray(x, dtype=float).ravel()), errors="coerce").dropna().to_numpy()
    n = int(values.size)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "sd": float("nan"), "median": float("nan"),
                "q1": float("nan"), "q3": float("nan"), "min": float("nan"), "max": float("nan")}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "n": n,
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if n > 1 else float("nan"),
        "median": float(median), "q1": float(q1), "q3": float(q3),
        "min": float(values.min()), "max": float(values.max()),
    }
