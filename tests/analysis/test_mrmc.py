"""Obuchowski-Rockette / Hillis MRMC analysis: Van Dyke to the published digits, MRMCaov's worked
examples, hand-computed small designs, and refusals of degenerate input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import empirical_auc, or_hillis

DATA = Path(__file__).parent / "data"
RRRC, FRRC, RRFC = "random_readers_random_cases", "fixed_readers_random_cases", "random_readers_fixed_cases"


@pytest.fixture(scope="module")
def vandyke():
    return pd.read_csv(DATA / "vandyke.csv", dtype={"reader": str, "treatment": str, "case": str,
                                                     "case2": str, "case3": str})


def row(frame, conclusion, **match):
    sub = frame.loc[frame["conclusion"] == conclusion]
    for k, v in match.items():
        sub = sub.loc[sub[k] == v]
    assert len(sub) == 1
    return sub.iloc[0]


def vd(data, case="case", **kw):
    return or_hillis(data, "rating", "treatment", "reader", case, fom="auc", truth="truth", **kw)


def test_van_dyke_reproduces_the_published_or_hillis_result_to_its_digits(vandyke):
    # Published (Hillis, Berbaum & Metz 2008; the source note in data/README.md): AUCs 0.8970 and
    # 0.9408, F = 4.456 on 1 and 15.26 df, p = 0.0517, 95% CI of the difference (-0.0880, 0.0004).
    res = vd(vandyke)
    assert res.design == "factorial"
    means = res.means.loc[res.means["conclusion"] == RRRC].set_index("test")["estimate"]
    assert round(means["1"], 4) == 0.8970 and round(means["2"], 4) == 0.9408
    test = row(res.tests, RRRC)
    assert round(test["value"], 3) == 4.456 and test["df1"] == 1 and round(test["df2"], 2) == 15.26
    assert round(test["p_val"], 4) == 0.0517
    d = row(res.differences, RRRC)
    assert round(d["estimate"], 4) == -0.0438
    assert (round(d["ci_low"], 4), round(d["ci_high"], 4)) == (-0.0880, 0.0004)


def test_van_dyke_variance_components_and_other_conclusions_match_mrmcaov(vandyke):
    # MRMCaov JSS manuscript, "Fixed readers" summary (jackknife, empirical AUC): the OR variance
    # components, the chi-square test, the difference and the per-test and per-reader intervals.
    res = vd(vandyke)
    vc = res.variance_components.set_index("component")["estimate"]
    expected = {"reader": 0.0015349993, "test_x_reader": 0.0002004025, "error": 0.0008022883,
                "cov1": 0.0003466137, "cov2": 0.0003440748, "cov3": 0.0002390284}
    for name, value in expected.items():
        assert vc[name] == pytest.approx(value, rel=1e-6), name
    fr = row(res.tests, FRRC)
    assert fr["value"] == pytest.approx(5.475953, rel=1e-6) and fr["p_val"] == pytest.approx(0.01927984, rel=1e-6)
    d = row(res.differences, FRRC)
    assert d["se"] == pytest.approx(0.01871748, rel=1e-6)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((-0.08048591, -0.00711473), rel=1e-6)
    m = res.means.loc[res.means["conclusion"] == FRRC].set_index("test")
    assert m.loc["1", "se"] == pytest.approx(0.02428971, rel=1e-6)
    assert (m.loc["2", "ci_low"], m.loc["2", "ci_high"]) == pytest.approx((0.9079564, 0.9737183), rel=1e-6)
    rd = res.reader_differences.set_index("reader")
    assert rd.loc["5", "estimate"] == pytest.approx(-0.10016103, rel=1e-6)
    assert rd.loc["5", "se"] == pytest.approx(0.04405746, rel=1e-6)
    assert rd.loc["2", "p_val"] == pytest.approx(0.07683102, rel=1e-5)
    single = res.readers.set_index(["test", "reader"])
    assert single.loc[("2", "4"), "se"] == pytest.approx(0.0007213348, rel=1e-5)
    assert single.loc[("1", "4"), "ci_high"] == 1.0  # truncated to the AUC's range, as MRMCaov
    # "Fixed cases" summary: F = 8.704 on 1 and 4 df, p = 0.04195875, SE 0.01484629.
    fc = row(res.tests, RRFC)
    assert fc["value"] == pytest.approx(8.704, rel=1e-6) and fc["df2"] == 4
    assert fc["p_val"] == pytest.approx(0.04195875, rel=1e-6)
    assert row(res.differences, RRFC)["se"] == pytest.approx(0.01484629, rel=1e-6)


def test_van_dyke_delong_covariance_matches_mrmcaov(vandyke):
    # MRMCaov JSS manuscript, "DeLong method" summary.
    res = vd(vandyke, cov="delong")
    t = row(res.tests, RRRC)
    assert t["value"] == pytest.approx(4.484854, rel=1e-6)
    assert t["df2"] == pytest.approx(15.06611, rel=1e-6) and t["p_val"] == pytest.approx(0.05123303, rel=1e-6)
    d = row(res.differences, RRRC)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((-0.0878671960, 0.0002665519), rel=1e-6)
    m = res.means.loc[res.means["conclusion"] == RRRC].set_index("test")
    assert m.loc["1", "se"] == pytest.approx(0.03307642, rel=1e-6)
    assert m.loc["1", "df"] == pytest.approx(12.59597, rel=1e-6)
    assert (m.loc["2", "ci_low"], m.loc["2", "ci_high"]) == pytest.approx((0.8942155, 0.9874592), rel=1e-6)
    vc = res.variance_components.set_index("component")["estimate"]
    assert vc["error"] == pytest.approx(0.0007921325, rel=1e-6) and vc["cov3"] == pytest.approx(0.0002358497, rel=1e-6)


def test_van_dyke_binary_sensitivity_matches_mrmcaov(vandyke):
    # MRMCaov JSS manuscript, "Binary Metrics": binary_sens(truth, rating >= 3).
    data = vandyke.assign(decision=(vandyke["rating"] >= 3).astype(int))
    res = or_hillis(data, "decision", "treatment", "reader", "case", fom="sensitivity", truth="truth")
    t = row(res.tests, RRRC)
    assert t["value"] == pytest.approx(6.689493, rel=1e-6) and t["df2"] == pytest.approx(15.71732, rel=1e-6)
    assert t["p_val"] == pytest.approx(0.02008822, rel=1e-6)
    m = res.means.loc[res.means["conclusion"] == RRRC].set_index("test")
    assert m.loc["1", "se"] == pytest.approx(0.05893747, rel=1e-6)
    assert m.loc["1", "df"] == pytest.approx(14.456811, rel=1e-6)
    assert m.loc["2", "df"] == pytest.approx(7.575855, rel=1e-6) and m.loc["2", "ci_high"] == 1.0
    vc = res.variance_components.set_index("component")["estimate"]
    assert vc["cov2"] == pytest.approx(0.0010145903, rel=1e-6)
    # Specificity is the same machinery on the negative cases with the decisions flipped.
    spec = or_hillis(data, "decision", "treatment", "reader", "case", fom="specificity", truth="truth")
    neg = data[data["truth"] == 0]
    by_cell = (1 - neg.groupby(["treatment", "reader"])["decision"].mean()).groupby("treatment").mean()
    got = spec.means.loc[spec.means["conclusion"] == RRRC].set_index("test")["estimate"]
    assert got.to_dict() == pytest.approx(by_cell.to_dict())


def test_van_dyke_split_plot_matches_mrmcaov(vandyke):
    # MRMCaov JSS manuscript, "Cases nested within readers" (case2): Cov2 = Cov3 = 0 because no
    # two readers share a case, so F = MS(T)/MS(T:R) = 8.704 on 1 and 4 df, p = 0.04195875; test
    # means with SE 0.02482994 and 0.01615303 on 4 df. (MRMCaov's error variance for this coding,
    # 8.079682e-04, differs from ours, 8.022883e-04 = the factorial value, because its jackknife
    # runs over all 570 case levels; that does not enter these statistics.)
    res = vd(vandyke, case="case2")
    assert res.design == "split_plot"
    vc = res.variance_components.set_index("component")["estimate"]
    assert vc["cov2"] == 0 and vc["cov3"] == 0
    t = row(res.tests, RRRC)
    assert t["value"] == pytest.approx(8.704, rel=1e-6) and t["df2"] == pytest.approx(4)
    assert t["p_val"] == pytest.approx(0.04195875, rel=1e-6)
    m = res.means.loc[res.means["conclusion"] == RRRC].set_index("test")
    assert m["se"].tolist() == pytest.approx([0.02482994, 0.01615303], rel=1e-6)


def test_van_dyke_cases_nested_in_treatments_derived_and_mrmcaovs_value_explained(vandyke):
    """case3: each treatment has its own 114 cases, so Cov1 = Cov3 = 0 and Cov2 is the factorial
    design's 0.0003440748 (same reads within a treatment). Derived: denominator = MS(T:R) + 5 Cov2
    = 0.0005510306 + 0.001720374 = 0.0022714046; F = 0.004796171 / 0.0022714046 = 2.11154;
    ddf = denominator^2 / (MS(T:R)^2 / 4) = 67.967.

    MRMCaov prints F = 2.104491, ddf = 68.42325 for this coding; its jackknife leaves out each of
    the 228 case levels of the whole study from each cell (a level absent from the cell leaves the
    AUC unchanged), which scales Cov2 by (227/228) / (113/114). Applying that factor to our Cov2
    gives its numbers exactly, so the two differ only by that convention."""
    res = vd(vandyke, case="case3")
    assert res.design == "cases_nested_in_tests"
    vc = res.variance_components.set_index("component")["estimate"]
    assert vc["cov1"] == 0 and vc["cov3"] == 0 and vc["cov2"] == pytest.approx(0.0003440748, rel=1e-6)
    t = row(res.tests, RRRC)
    assert t["value"] == pytest.approx(0.004796171 / 0.0022714046, rel=1e-6)
    assert t["df2"] == pytest.approx(0.0022714046 ** 2 / (0.0005510306 ** 2 / 4), rel=1e-6)
    factor = (227 / 228) / (113 / 114)
    denom = t["ms_tr"] + 5 * vc["cov2"] * factor
    assert t["ms_t"] / denom == pytest.approx(2.104491, rel=1e-6)
    assert denom ** 2 / (t["ms_tr"] ** 2 / 4) == pytest.approx(68.42325, rel=1e-6)


def test_empirical_auc_is_the_mann_whitney_statistic(vandyke):
    # Independent computation: scipy's Mann-Whitney U divided by m*n (ties count one half).
    one = vandyke[(vandyke["reader"] == "1") & (vandyke["treatment"] == "1")]
    u = stats.mannwhitneyu(one.loc[one.truth == 1, "rating"], one.loc[one.truth == 0, "rating"]).statistic
    assert empirical_auc(one["truth"], one["rating"]) == pytest.approx(u / (45 * 69))
    assert round(empirical_auc(one["truth"], one["rating"]), 7) == 0.9196457  # MRMCaov, reader 1, treatment 1


def small_factorial():
    # Two tests (x, y), readers a and b, the same cases 1-3 everywhere (factorial).
    rows = {("x", "a"): [1, 2, 3], ("x", "b"): [2, 4, 6], ("y", "a"): [2, 4, 3], ("y", "b"): [4, 6, 8]}
    return pd.DataFrame([(t, r, c + 1, v) for (t, r), vals in rows.items() for c, v in enumerate(vals)],
                        columns=["test", "reader", "case", "score"])


def test_hand_computed_factorial_example():
    """By hand. Cell means x: a 2, b 4; y: a 3, b 6. For a mean the jackknife deviations are
    y_k - mean, so Cov(a, b) = sum_k u_ak u_bk / (3 * 2):
    x_a (-1,0,1), x_b (-2,0,2), y_a (-1,1,0), y_b (-2,0,2).
    Var: 1/3, 4/3, 1/3, 4/3 -> error 5/6. Cov1: (x_a,y_a) 1/6, (x_b,y_b) 8/6 -> 3/4.
    Cov2: (x_a,x_b) 4/6, (y_a,y_b) 2/6 -> 1/2. Cov3: (x_a,y_b) 4/6, (x_b,y_a) 2/6 -> 1/2.
    MS(T) = 2 (0.75^2 + 0.75^2) = 2.25; MS(R) = 2 (2 * 1.25^2) = 6.25; interaction residuals
    +-0.25 -> MS(T:R) = 0.25.
    Random readers: denominator 0.25 + 2 max(0, 0) = 0.25, F = 9 on (1, 1), p = P(F(1,1) > 9).
    Fixed readers: denominator 5/6 - 3/4 + 0 = 1/12, X2 = 2.25 * 12 = 27, SE of x - y = sqrt(1/12).
    sigma2_R = (6.25 - 0.25)/2 - 3/4 + 1/2 = 2.75; sigma2_TR = 0.25 - 5/6 + 3/4 + 0 = 1/6.
    Mean of x, random readers: SE = sqrt(MS(R)_x/2 + Cov2_x) = sqrt(2/2 + 4/6), df = (2 + 2*4/6)^2/(2^2/1)."""
    res = or_hillis(small_factorial(), "score", "test", "reader", "case")
    assert res.design == "factorial"
    vc = res.variance_components.set_index("component")["estimate"]
    assert vc.to_dict() == pytest.approx({"reader": 2.75, "test_x_reader": 1 / 6, "error": 5 / 6, "cov1": 0.75,
                                          "cov2": 0.5, "cov3": 0.5})
    t = row(res.tests, RRRC)
    assert (t["value"], t["df2"]) == pytest.approx((9.0, 1.0))
    assert t["p_val"] == pytest.approx(stats.f.sf(9, 1, 1))
    assert row(res.tests, FRRC)["value"] == pytest.approx(27.0)
    d = row(res.differences, FRRC)
    assert (d["estimate"], d["se"]) == pytest.approx((-1.5, np.sqrt(1 / 12)))
    m = row(res.means, RRRC, test="x")
    assert (m["se"], m["df"]) == pytest.approx((np.sqrt(1 + 4 / 6), (2 + 4 / 3) ** 2 / 4))


def test_hand_computed_cheXOne_like_design_is_the_paired_t_on_reader_differences():
    """Each reader writes two cases and edits two others; the other reader has them the other way
    round, so cells of one reader share no case (Cov1 = 0), nor cells of one test (Cov2 = 0), and
    cells of different reader and test share two cases (Cov3 > 0). By hand: deviations write_a
    (-5, 5) on cases 1-2, write_b (-10, 10) on 3-4, edit_a (-5, 5) on 3-4, edit_b (-5, 5) on 1-2;
    with g = 2 each covariance is sum / 2: Var 25, 100, 25, 25 -> 43.75; Cov3: (write_a, edit_b)
    = 25, (write_b, edit_a) = 50 -> 37.5. Cov2 - Cov3 < 0 is truncated, so the random-reader
    analysis is MS(T:R) = 400 on 1 df: exactly the paired t-test of the reader differences
    (-10, 30), t = 0.5, which scipy computes independently. Fixed readers: Var(mean difference)
    = (Var d_a + Var d_b + 2 Cov(d_a, d_b)) / 4 = (50 + 125 - 150) / 4 = 6.25."""
    df = pd.DataFrame({
        "reader": ["a", "a", "b", "b", "a", "a", "b", "b"], "case": [1, 2, 3, 4, 3, 4, 1, 2],
        "test": ["write"] * 4 + ["edit"] * 4, "t": [10, 20, 30, 50, 20, 30, 5, 15]})
    res = or_hillis(df, "t", "test", "reader", "case", levels=("edit", "write"))
    assert res.design == "partially_paired"
    vc = res.variance_components.set_index("component")["estimate"]
    assert (vc["error"], vc["cov1"], vc["cov2"], vc["cov3"]) == pytest.approx((43.75, 0, 0, 37.5))
    d = row(res.differences, RRRC)
    ref = stats.ttest_rel([25, 10], [15, 40])
    assert d["estimate"] == pytest.approx(-10) and d["statistic"] == pytest.approx(ref.statistic)
    assert d["p_val"] == pytest.approx(ref.pvalue) and d["df"] == pytest.approx(1)
    assert row(res.differences, FRRC)["se"] == pytest.approx(2.5)


def test_readers_without_every_test_are_dropped_and_counted():
    df = small_factorial()
    extra = pd.DataFrame({"test": "x", "reader": "c", "case": [1, 2, 3], "score": [1.0, 2.0, 2.5]})
    res = or_hillis(pd.concat([df, extra]), "score", "test", "reader", "case")
    assert res.n_readers == 2 and res.n_readers_dropped == 1
    assert any("left out" in n for n in res.notes)


def test_single_test_means_are_tested_against_the_null():
    df = small_factorial()
    res = or_hillis(df[df["test"] == "x"], "score", "test", "reader", "case", null=0.0)
    assert res.tests.empty and res.differences.empty
    m = row(res.means, RRRC, test="x")
    # MS(R) = 2, Cov2 = 4/6 (see the factorial example): t = 3 / sqrt(2/2 + 4/6).
    assert m["statistic"] == pytest.approx(3 / np.sqrt(1 + 4 / 6))
    vc = res.variance_components.set_index("component")["estimate"]
    assert vc["reader"] == pytest.approx(2 - 5 / 6 + 4 / 6)  # MS(R) - error + Cov2


def test_degenerate_input_is_refused_or_gets_no_p_value():
    df = small_factorial()
    with pytest.raises(ValueError, match="no variation"):
        or_hillis(df.assign(score=120.0), "score", "test", "reader", "case")
    with pytest.raises(ValueError, match="fewer than 2 cases"):
        or_hillis(df[df["case"] == 1], "score", "test", "reader", "case")
    with pytest.raises(ValueError, match="missing score"):
        or_hillis(df.assign(score=df["score"].where(df.index != 0)), "score", "test", "reader", "case")
    with pytest.raises(ValueError, match="fom must be"):
        or_hillis(df, "score", "test", "reader", "case", fom="median")
    with pytest.raises(ValueError, match="DeLong"):
        or_hillis(df, "score", "test", "reader", "case", cov="delong")
    one = or_hillis(df[df["reader"] == "a"], "score", "test", "reader", "case")
    rr = row(one.tests, RRRC)
    assert np.isnan(rr["p_val"]) and "at least 2 readers" in rr["note"]
    assert np.isfinite(row(one.tests, FRRC)["p_val"])  # one reader: fixed-reader inference only
    # Identical readers and tests differing by a constant: no reader x test variation at all.
    same = df.copy()
    same["score"] = np.where(same["test"] == "x", same["case"], same["case"] + 1.0)
    res = or_hillis(same, "score", "test", "reader", "case")
    assert np.isnan(row(res.tests, RRRC)["p_val"]) and "MS(T:R) = 0" in row(res.tests, RRRC)["note"]


def test_stratum_and_versus_need_the_jackknife_and_an_roc_fom(vandyke):
    d = vandyke.assign(f="x", model=vandyke["rating"])
    with pytest.raises(ValueError, match="need the jackknife"):
        vd(d, cov="delong", stratum="f")
    with pytest.raises(ValueError, match="need the jackknife"):
        vd(d, cov="delong", versus="model")
    with pytest.raises(ValueError, match="stratum applies to the ROC FOMs"):
        or_hillis(d, "rating", "treatment", "reader", "case", stratum="f")


def test_a_stratum_a_cell_lacks_is_refused_by_name(vandyke):
    d = pd.concat([vandyke.assign(f="x"), vandyke.assign(f="y")])
    d = d.loc[~((d["f"] == "y") & (d["reader"] == "2") & (d["treatment"] == "1"))]
    with pytest.raises(ValueError, match="reader 2 has 0 case"):
        vd(d, stratum="f")


def test_versus_a_comparator_equal_to_the_reader_gives_zero_and_no_interval(vandyke):
    res = vd(vandyke.assign(model=vandyke["rating"]), versus="model", null=0.0)
    assert np.allclose(res.readers["estimate"], 0) and np.allclose(res.readers["se"], 0)
