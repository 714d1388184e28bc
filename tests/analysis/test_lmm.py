"""REML mixed model and Satterthwaite df against lmerTest, and the random-reader time ratio.

Reference values: `Rscript tests/analysis/data/lmer_reference.R` (R 4.2.2, lme4 1.1-31,
lmerTest 3.1-3, Debian packages) on `data/lmer_reference.csv`; the numbers below are what it printed.
R is not needed to run these tests.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.simulate import simulate_study
from analysis.stats import mixed_model, mixed_model_ratio

DATA = Path(__file__).parent / "data"

# Printed by lmer_reference.R (REMLcrit, VarCorr, summary(ddf = "Satterthwaite"); Kenward-Roger df
# for information: A 5.028223, B 10.69086, C 13.72269).
LMER = {
    "A": {"random": ("reader", "reader:condition", "case"), "remlcrit": 319.21066327,
          "var": {"case": 0.03740058361, "reader:condition": 0.03517265547, "reader": 0.05280156002,
                  "residual": 0.1374850103},
          "comparison": {"estimate": -0.4650639986, "se": 0.1185863307, "df": 5.028118357, "p_val": 0.01104017203},
          "intercept_df": 8.106679311},
    "B": {"random": ("reader", "reader:condition", "case", "case:condition"), "remlcrit": 181.47862322,
          "var": {"case:condition": 0.03433281485, "case": 0.08292813108, "reader:condition": 0.02548552705,
                  "reader": 0.1270457674, "residual": 0.07538974159},
          "comparison": {"estimate": -0.08096283825, "se": 0.1027703482, "df": 10.95765314, "p_val": 0.4475184687},
          "intercept_df": 12.18331638},
}


@pytest.fixture(scope="module")
def reference():
    return pd.read_csv(DATA / "lmer_reference.csv")


@pytest.mark.parametrize("dataset", ["A", "B"])
def test_variance_components_and_satterthwaite_df_match_lmertest(reference, dataset):
    ref = LMER[dataset]
    fit = mixed_model(reference[reference["dataset"] == dataset], "y", ref["random"], fixed="condition",
                      levels=("write", "edit_model"))
    assert fit.terms_dropped == []
    assert fit.deviance == pytest.approx(ref["remlcrit"], abs=1e-6)
    for term, value in ref["var"].items():
        assert fit.variance_components[term] == pytest.approx(value, rel=1e-4), term
    row = fit.fixed.set_index("term")
    for key, value in ref["comparison"].items():
        # Satterthwaite df to 1e-5: lmerTest differentiates numerically, we analytically.
        assert row.loc["comparison", key] == pytest.approx(value, rel=1e-5), key
    assert row.loc["intercept", "df"] == pytest.approx(ref["intercept_df"], rel=1e-5)


def test_intercept_only_crossed_model_matches_lmer(reference):
    # lmer(y ~ 1 + (1|case) + (1|reader)) on sparse ratings (each target rated by 2-3 of 7 readers).
    fit = mixed_model(reference[reference["dataset"] == "C"], "y", ("case", "reader"))
    assert fit.deviance == pytest.approx(824.55057603, abs=1e-6)
    assert fit.variance_components == pytest.approx({"case": 10.73038151, "reader": 1.598973679,
                                                     "residual": 7.388953174}, rel=1e-5)
    row = fit.fixed.iloc[0]
    assert (row["estimate"], row["se"], row["df"]) == pytest.approx((3.041096138, 0.6781900161, 14.24921525), rel=1e-5)


def test_terms_the_design_cannot_identify_are_dropped_with_a_reason(reference):
    a = reference[reference["dataset"] == "A"]
    # In data set A no case is read twice in a condition only rarely; make it never: keep the first
    # read of each case x condition, so case:condition is one observation per level... of the
    # condition-specific cases, i.e. confounded with the residual.
    once = a.drop_duplicates(["case", "condition"])
    fit = mixed_model(once, "y", ("reader", "reader:condition", "case", "case:condition"), fixed="condition",
                      levels=("write", "edit_model"))
    reasons = {d["term"]: d["reason"] for d in fit.terms_dropped}
    assert "case:condition" in reasons and "residual" in reasons["case:condition"]
    # Readers nested in conditions: reader:condition groups exactly as reader.
    nested = a.assign(reader=a["reader"] + "_" + a["condition"])
    fit = mixed_model(nested, "y", ("reader", "reader:condition", "case"), fixed="condition",
                      levels=("write", "edit_model"))
    assert any(d["term"] == "reader:condition" and "aliased" in d["reason"] for d in fit.terms_dropped)


def test_a_zero_variance_component_is_removed_before_the_df():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"reader": np.repeat([f"r{i}" for i in range(6)], 30), "case": np.tile(np.arange(30), 6)})
    df["y"] = rng.normal(size=len(df)) + df["case"].map(dict(enumerate(rng.normal(0, 1, 30))))
    fit = mixed_model(df, "y", ("reader", "case"))  # no reader effect was simulated
    if fit.variance_components["reader"] == 0:
        assert any(d["term"] == "reader" and "boundary" in d["reason"] for d in fit.terms_dropped)
    else:
        assert fit.variance_components["reader"] < 0.05
    assert np.isfinite(fit.fixed["df"].iloc[0])


def test_degenerate_durations_are_refused_never_given_a_p_value():
    reads = simulate_study(seed=1).counted_reads()
    res = reads[reads["reader_role"] == "resident"].dropna(subset=["duration_s"])
    with pytest.raises(ValueError, match="no variation"):
        mixed_model_ratio(res.assign(duration_s=120.0), "duration_s", "condition", ("write", "edit_model"))
    with pytest.raises(ValueError, match="<= 0"):
        mixed_model_ratio(res.assign(duration_s=res["duration_s"].where(res.index != res.index[0], 0.0)),
                          "duration_s", "condition", ("write", "edit_model"))
    one = res[(res["condition"] == "write") | (res["reader_id"] == res["reader_id"].iloc[0])]
    with pytest.raises(ValueError, match="at least 2"):
        mixed_model_ratio(one, "duration_s", "condition", ("write", "edit_model"))


@pytest.mark.parametrize("seed, ratio", [(1, 0.7), (2, 0.5)])
def test_known_time_ratio_inside_the_random_reader_ci(seed, ratio):
    reads = simulate_study(seed=seed, time_ratio=ratio, reader_condition_sd=0.2).counted_reads()
    residents = reads[reads["reader_role"] == "resident"]
    r = mixed_model_ratio(residents, "duration_s", "condition", ("write", "edit_model"))
    assert r["ci_low"] < ratio < r["ci_high"]
    assert r["converged"] and not r["subsampled"]
    # Readers differ in their benefit: the condition effect is judged against six residents, so its
    # df are of the order of the readers, not of the ~270 reads.
    assert r["var_reader_condition"] > 0 and r["df"] < 30


def test_large_data_is_fitted_on_a_seeded_case_subsample():
    reads = simulate_study(n_readers=12, n_cases=200, reads_per_reader=80, seed=4).counted_reads()
    residents = reads[reads["reader_role"] == "resident"]
    r1 = mixed_model_ratio(residents, "duration_s", "condition", ("write", "edit_model"), max_reads=250, seed=1)
    r2 = mixed_model_ratio(residents, "duration_s", "condition", ("write", "edit_model"), max_reads=250, seed=1)
    assert r1["subsampled"] and r1["n_reads"] < len(residents)
    assert r1["ratio"] == r2["ratio"]


def test_fit_does_not_stop_at_the_zero_variance_saddle():
    """Regression: optimising over theta (SD ratios), L-BFGS-B stopped at theta = (0, 0) on these ratings,
    a stationary point of every REML deviance (it depends on theta^2), 11.5 above the optimum. The fit must
    reach at least the best deviance of a coarse grid (an independent search)."""
    from analysis.stats.lmm import _REML, _term_codes

    rng = np.random.default_rng(434343)
    for _ in range(2):  # the second study this stream draws
        t = rng.normal(0, 2.0, 80)
        rows = [(i, j, t[i] + rng.normal(0, 3.0)) for i in range(80) for j in rng.choice(11, 3, replace=False)]
    d = pd.DataFrame(rows, columns=["target", "rater", "y"])
    fit = mixed_model(d, "y", ("target", "rater"))
    model = _REML(d["y"].to_numpy(), np.ones((len(d), 1)), {k: _term_codes(d, k) for k in ("target", "rater")})
    grid = min(model.evaluate(np.array([a, b]))[0] for a in np.linspace(0, 1.5, 31) for b in np.linspace(0, 0.5, 11))
    assert fit.variance_components["target"] > 1.0
    # The rater variance may sit at 0 (removed), so compare the deviances of the same model.
    full = model.evaluate(np.sqrt([fit.variance_components["target"] / fit.variance_components["residual"],
                                   fit.variance_components["rater"] / fit.variance_components["residual"]]))[0]
    assert full <= grid + 1e-6
