"""Paired t-test and Wilcoxon signed-rank against R reference values; pairing by key."""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from analysis.stats import pair_by_key, paired_ttest, wilcoxon_signed_rank

# R `sleep` data (Cushny & Peebles 1905), extra hours of sleep, drug 1 and drug 2, 10 patients.
# R: t.test(extra ~ group, data = sleep, paired = TRUE)  ->  t = -4.0621, df = 9, p-value = 0.002833,
# 95 percent CI -2.4598858 -0.7001142, mean difference -1.58.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# Hollander & Wolfe (1973), p. 29f: Hamilton depression scale factor IV, first (x) and second (y)
# visit, 9 patients; R ?wilcox.test example. R: wilcox.test(x, y, paired = TRUE) -> V = 40,
# p-value = 0.03906; with alternative = "greater" -> V = 40, p-value = 0.01953.
HW_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
HW_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_paired_ttest_matches_r_sleep():
    r = paired_ttest(SLEEP_1, SLEEP_2).iloc[0]
    assert r["T"] == pytest.approx(-4.0621, abs=1e-4)
    assert r["dof"] == 9
    assert r["p_val"] == pytest.approx(0.002833, abs=1e-6)
    assert r["mean_diff"] == pytest.approx(-1.58)
    assert r["ci_low"] == pytest.approx(-2.4598858, abs=1e-6)
    assert r["ci_high"] == pytest.approx(-0.7001142, abs=1e-6)


def test_paired_ttest_refuses_unequal_lengths_instead_of_going_unpaired():
    # pingouin.ttest(paired=True) silently runs an unpaired test on unequal lengths.
    with pytest.raises(ValueError, match="equal length"):
        paired_ttest(SLEEP_1, SLEEP_2[:-1])


def test_pair_by_key_pairs_by_reader_not_by_position():
    # Reader b has no "edit" reads and reader c's reads come in shuffled order.
    df = pd.DataFrame({
        "reader_id": ["a", "a", "a", "b", "c", "c", "c"],
        "condition": ["write", "edit", "edit", "write", "edit", "write", "write"],
        "duration_s": [100.0, 50.0, 70.0, 90.0, 40.0, 80.0, 120.0],
    })
    paired = pair_by_key(df, "duration_s", "condition", "reader_id", ("write", "edit"))
    assert list(paired.index) == ["a", "c"]
    assert paired.loc["a", "edit"] == 60.0 and paired.loc["c", "write"] == 100.0
    assert paired.loc["a", "n_edit"] == 2
    assert paired.attrs["n_dropped"] == 1


def test_paired_ttest_on_pairs_agrees_with_pingouin_paired():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=12), rng.normal(size=12)
    ours = paired_ttest(x, y).iloc[0]
    theirs = pg.ttest(x, y, paired=True).iloc[0]
    assert ours["T"] == pytest.approx(theirs["T"])
    assert ours["p_val"] == pytest.approx(theirs.filter(like="val").iloc[0])


def test_wilcoxon_matches_r_depression_example():
    r = wilcoxon_signed_rank(HW_X, HW_Y).iloc[0]
    assert r["V"] == 40
    assert r["p_val"] == pytest.approx(0.03906, abs=1e-5)
    assert r["method"] == "exact" and r["zero_method"] == "wilcox"
    greater = wilcoxon_signed_rank(HW_X, HW_Y, alternative="greater").iloc[0]
    assert greater["p_val"] == pytest.approx(0.01953, abs=1e-5)


def test_wilcoxon_with_zeros_and_ties_uses_normal_approximation_and_says_so():
    # Likert-like differences: ties and zeros make the exact distribution invalid.
    d = np.array([5, 5, 0, 0, 10, -5, 5, 0, 10, 5, -5, 5])
    wil = wilcoxon_signed_rank(d, zero_method="wilcox").iloc[0]
    pratt = wilcoxon_signed_rank(d, zero_method="pratt").iloc[0]
    assert wil["method"] == "asymptotic" and pratt["method"] == "asymptotic"
    assert wil["n_zero"] == 3
    # Worked by hand (Hollander & Wolfe 1973, large-sample approximation with ties, R's
    # exact=FALSE, correct=TRUE): 9 non-zero |d|: seven 5s (mid-rank 4), two 10s (8.5);
    # V = 5*4 + 2*8.5 = 37; E = 9*10/4 = 22.5; Var = 9*10*19/24 - (7^3-7 + 2^3-2)/48 = 64.125;
    # z = (37 - 22.5 - 0.5)/sqrt(64.125) = 1.7483; p = 2*(1 - Phi(z)) = 0.08041.
    assert wil["V"] == 37
    assert wil["p_val"] == pytest.approx(0.08041, abs=1e-4)
    assert pratt["p_val"] != wil["p_val"]


def test_wilcoxon_all_zero_differences_returns_nan_not_error():
    r = wilcoxon_signed_rank([0, 0, 0]).iloc[0]
    assert np.isnan(r["p_val"]) and r["n_zero"] == 3
