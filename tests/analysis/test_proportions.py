"""Wilson intervals, sign test and McNemar against published values."""

import pytest

from analysis.stats import mcnemar_test, proportion_shares, sign_test, wilson_ci

# Newcombe (1998), Statistics in Medicine 17:857-872, worked examples table (81/263, 15/148, 0/20,
# 1/29), method 3: Wilson score interval without continuity correction, 95%, printed to 4 decimals.
NEWCOMBE_WILSON = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)),
                   ((0, 20), (0.0000, 0.1611)), ((1, 29), (0.0061, 0.1718))]


@pytest.mark.parametrize("counts, expected", NEWCOMBE_WILSON)
def test_wilson_matches_newcombe_table(counts, expected):
    low, high = wilson_ci(*counts)
    assert low == pytest.approx(expected[0], abs=6e-5)
    assert high == pytest.approx(expected[1], abs=6e-5)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson_ci(5, 3)


def test_mcnemar_matches_r_performance_example():
    # R ?mcnemar.test, Agresti (1990) p. 350: presidential approval, 1st vs 2nd survey,
    # matrix(c(794, 86, 150, 570), nrow = 2). R: McNemar's chi-squared = 16.818, df = 1,
    # p-value = 4.115e-05; with correct = FALSE: 17.356, p-value = 3.099e-05.
    r = mcnemar_test(150, 86)
    assert r["method"] == "chi2_corrected"
    assert r["chi2"] == pytest.approx(16.818, abs=5e-4)
    assert r["p_val"] == pytest.approx(4.115e-05, rel=1e-3)
    r = mcnemar_test(150, 86, correction=False)
    assert r["chi2"] == pytest.approx(17.356, abs=5e-4)
    assert r["p_val"] == pytest.approx(3.099e-05, rel=1e-3)


def test_mcnemar_is_exact_with_few_discordant_pairs():
    # 10 vs 2 discordant: exact two-sided binomial P(X<=2 or X>=10 | n=12, 1/2) = 2*79/4096 = 0.03857.
    r = mcnemar_test(10, 2)
    assert r["method"] == "exact"
    assert r["p_val"] == pytest.approx(2 * 79 / 4096)


def test_sign_test_matches_r_binom_test():
    # R ?binom.test (Conover 1971): 682 giant vs 243 dwarf, H0 p = 3/4.
    # R: p-value = 0.3825, 95 percent CI 0.7076683 0.7654066.
    r = sign_test(682, 243, p=0.75)
    assert r["p_val"] == pytest.approx(0.3825, abs=1e-4)
    assert r["ci_low"] == pytest.approx(0.7076683, abs=1e-6)
    assert r["ci_high"] == pytest.approx(0.7654066, abs=1e-6)


def test_shares_include_unobserved_categories_and_sum_to_one():
    out = proportion_shares(["none", "style", "none", None], ["none", "content", "style", "both"])
    assert out["count"].tolist() == [2, 0, 1, 0]
    assert out["share"].sum() == pytest.approx(1.0)
    assert (out["ci_low"] <= out["share"]).all() and (out["share"] <= out["ci_high"]).all()
