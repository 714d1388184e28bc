"""The crossover's period (reading_session) as a fixed effect of the random-reader mixed model
(docs/analysis.md, "Crossover designs")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import mixed_model, mixed_model_ratio


def crossover_reads(seed: int, *, n_readers=8, n_cases=30, ratio=0.7, period_ratio=0.8, reader_sd=0.3,
                    case_sd=0.3, reader_condition_sd=0.1, sd=0.25) -> pd.DataFrame:
    """An AB/BA crossover: every reader reads every case in both conditions, half of each reader's cases
    unaided first; durations log-normal with a known condition ratio and a known period-2 ratio."""
    rng = np.random.default_rng(seed)
    reader_effect = rng.normal(0, reader_sd, n_readers)
    case_effect = rng.normal(0, case_sd, n_cases)
    benefit = rng.normal(0, reader_condition_sd, n_readers)
    rows = []
    for r in range(n_readers):
        for c in range(n_cases):
            unaided_first = (r + c) % 2 == 0
            for condition in ("write", "edit_model"):
                period = 1 if (condition == "write") == unaided_first else 2
                log_y = (np.log(120) + reader_effect[r] + case_effect[c]
                         + (np.log(ratio) + benefit[r] if condition == "edit_model" else 0.0)
                         + (np.log(period_ratio) if period == 2 else 0.0) + rng.normal(0, sd))
                rows.append({"reader_id": f"r{r}", "case_id": f"c{c}", "condition": condition,
                             "reading_session": period, "duration_s": float(np.exp(log_y))})
    return pd.DataFrame(rows)


def test_with_no_random_term_the_fixed_effects_are_ordinary_least_squares():
    # The reference: numpy's least squares on the same design matrix (intercept, condition, period 2).
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"condition": np.tile(["a", "b"], 20), "period": np.repeat(["1", "2"], 20),
                          "g": np.arange(40).astype(str)})
    frame["y"] = rng.normal(size=40) + (frame["condition"] == "b") * 0.5 + (frame["period"] == "2") * -0.3
    fit = mixed_model(frame, "y", ("g",), fixed="condition", levels=("a", "b"), covariates=("period",))
    x = np.column_stack([np.ones(40), (frame["condition"] == "b"), (frame["period"] == "2")]).astype(float)
    beta, *_ = np.linalg.lstsq(x, frame["y"].to_numpy(), rcond=None)
    assert fit.fixed["term"].tolist() == ["intercept", "comparison", "period[2]"]
    assert np.allclose(fit.fixed["estimate"].to_numpy(), beta, atol=1e-10)


def test_a_period_aliased_with_the_condition_is_refused():
    frame = pd.DataFrame({"condition": np.tile(["a", "b"], 10), "y": np.arange(20.0) % 7,
                          "g": np.repeat(list("abcde"), 4)})
    frame["period"] = np.where(frame["condition"] == "a", "1", "2")
    with pytest.raises(ValueError, match="aliased"):
        mixed_model(frame, "y", ("g",), fixed="condition", levels=("a", "b"), covariates=("period",))


def test_the_period_effect_is_recovered_and_the_condition_ratio_stays_unbiased():
    ratios, periods, covered = [], [], 0
    for seed in range(20):
        result = mixed_model_ratio(crossover_reads(seed), "duration_s", "condition", ("write", "edit_model"))
        ratios.append(result["ratio"])
        periods.append(np.exp(result["period_effects"]["2"]))
        covered += result["ci_low"] <= 0.7 <= result["ci_high"]
    assert abs(np.exp(np.mean(np.log(ratios))) - 0.7) < 0.02
    assert abs(np.exp(np.mean(np.log(periods))) - 0.8) < 0.02
    assert covered >= 17  # 95% intervals: at least 17 of 20 (binomial P(X < 17) = 0.016)


def test_a_period_left_out_biases_the_ratio_when_the_order_is_not_exactly_balanced():
    # Balance within one (an odd number of cases), a subsample of cases or missing reads leave more reads of one
    # order than of the other; here two thirds of every reader's cases are read unaided first.
    reads = crossover_reads(7, n_cases=30, period_ratio=0.6)
    unaided_first = reads.assign(k=reads["case_id"].str[1:].astype(int) % 3 != 0)
    reads["reading_session"] = np.where((reads["condition"] == "write") == unaided_first["k"], 1, 2)
    rng = np.random.default_rng(7)
    reads["duration_s"] = 120 * 0.7 ** (reads["condition"] == "edit_model") * 0.6 ** (reads["reading_session"] == 2) \
        * np.exp(rng.normal(0, 0.2, len(reads)) + reads["reader_id"].map({f"r{i}": rng.normal(0, 0.3) for i in range(8)}))
    with_period = mixed_model_ratio(reads, "duration_s", "condition", ("write", "edit_model"))
    without = mixed_model_ratio(reads, "duration_s", "condition", ("write", "edit_model"), period=None)
    assert without["period_effects"] == {}
    assert with_period["ci_low"] <= 0.7 <= with_period["ci_high"]
    assert not without["ci_low"] <= 0.7 <= without["ci_high"]  # (0.6 ** (1/3)) x 0.7 = 0.59: far off
    # A study without sessions (one period) fits the same model as before: no period term.
    one = reads.assign(reading_session=1)
    assert mixed_model_ratio(one, "duration_s", "condition", ("write", "edit_model"))["period_effects"] == {}
