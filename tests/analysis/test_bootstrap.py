"""Bootstrap CIs: BCa against SciPy's reference implementation, fallback, seeding, two-way coverage."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import bootstrap_ci, two_way_bootstrap_ratio


def test_bca_agrees_with_scipy_reference_implementation():
    # No published BCa value is reproducible without the same resamples; SciPy's BCa
    # (Efron & Tibshirani 1993, ch. 14) is the reference, with Monte Carlo tolerance.
    x = np.random.default_rng(5).lognormal(0, 0.8, 60)
    ours = bootstrap_ci(x, "mean", n_boot=20000, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="BCa", rng=np.random.default_rng(2))
    assert ours["ci_method"] == "bca"
    assert ours["ci_low"] == pytest.approx(ref.confidence_interval.low, rel=0.03)
    assert ours["ci_high"] == pytest.approx(ref.confidence_interval.high, rel=0.03)


def test_bca_for_median_uses_jackknife_and_is_finite():
    x = np.random.default_rng(6).normal(10, 2, 80)
    r = bootstrap_ci(x, "median", n_boot=500, seed=3)
    assert r["ci_method"] == "bca" and r["ci_low"] < np.median(x) < r["ci_high"]


def test_degenerate_data_falls_back_to_percentile_and_says_so():
    r = bootstrap_ci([120.0] * 15, n_boot=200)
    assert r["ci_method"] == "percentile_fallback"
    assert r["ci_low"] == r["ci_high"] == 120.0


def test_same_seed_same_interval_different_seed_different():
    x = np.random.default_rng(0).normal(size=40)
    assert bootstrap_ci(x, n_boot=300, seed=9) == bootstrap_ci(x, n_boot=300, seed=9)
    assert bootstrap_ci(x, n_boot=300, seed=9)["ci_low"] != bootstrap_ci(x, n_boot=300, seed=10)["ci_low"]


def test_default_is_1000_resamples():
    r = bootstrap_ci(np.arange(30.0))
    assert r["n_boot"] == 1000 and r["seed"] == 20240601


def test_two_way_bootstrap_is_wider_than_per_read_when_readers_vary():
    rng = np.random.default_rng(4)
    rows = []
    reader_effect = rng.normal(0, 0.5, 8)
    for r in range(8):
        for c in range(40):
            # Unbalanced: readers 0-3 mostly edit, 4-7 mostly write, so reader effects do not cancel.
            cond = "edit" if rng.random() < (0.8 if r < 4 else 0.2) else "write"
            rows.append((r, c, cond, np.exp(5 + reader_effect[r] + np.log(0.7) * (cond == "edit") + rng.normal(0, 0.2))))
    df = pd.DataFrame(rows, columns=["reader_id", "case_id", "condition", "duration_s"])
    two_way = two_way_bootstrap_ratio(df, "duration_s", "condition", ("write", "edit"), n_boot=400, seed=1)
    assert two_way["ci_low"] < 0.7 < two_way["ci_high"]
    assert two_way["n_valid"] == 400
    # A per-read bootstrap: every read its own "reader", one single case.
    per_read = two_way_bootstrap_ratio(df.assign(read_id=range(len(df)), one_case=0), "duration_s", "condition",
                                       ("write", "edit"), reader="read_id", case="one_case", n_boot=400, seed=1)
    assert two_way["ci_high"] - two_way["ci_low"] > 1.5 * (per_read["ci_high"] - per_read["ci_low"])


def test_two_way_bootstrap_refuses_non_positive_durations():
    df = pd.DataFrame({"reader_id": [1, 2], "case_id": [1, 2], "condition": ["write", "edit"], "d": [0.0, 3.0]})
    with pytest.raises(ValueError, match="positive"):
        two_way_bootstrap_ratio(df, "d", "condition", ("write", "edit"))
