"""The stratified permutation test of association the blinding audit uses, against exact values computed
by hand and by scipy's exact Mann-Whitney and permutation tests."""

import numpy as np
import pytest
from scipy import stats

from analysis.stats.association import stratified_permutation_test


def test_one_stratum_categorical_by_hand():
    # Four cases, two per label; the observed split puts both "held" with the label. Of the C(4, 2) = 6
    # arrangements, 2 give the same chi-square (2.0: both "held" labelled, or both "open"): p = 2/6.
    result = stratified_permutation_test(["held", "held", "open", "open"], [1, 1, 0, 0], ["r1"] * 4)
    assert result["exact"] and result["statistic"] == pytest.approx(2.0)
    assert result["p_val"] == pytest.approx(1 / 3)


def test_one_stratum_numeric_equals_the_exact_mann_whitney_test():
    x = np.array([1.2, 3.4, 2.2, 5.0, 4.1, 0.3, 2.9])
    label = np.array([1, 1, 0, 1, 0, 0, 0])
    ours = stratified_permutation_test(x, label, ["r"] * 7, kind="numeric")
    theirs = stats.mannwhitneyu(x[label == 1], x[label == 0], method="exact", alternative="two-sided")
    assert ours["exact"] and ours["p_val"] == pytest.approx(theirs.pvalue)


def test_strata_combine_exactly_by_convolution():
    # Two readers; the exact p by brute force over all C(5,2) x C(4,2) = 60 arrangements of the labels.
    import itertools

    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.0, 6.0, 5.0, 3.5]
    strata = ["a"] * 5 + ["b"] * 4
    labels = [1, 0, 1, 0, 0, 0, 1, 1, 0]

    def statistic(lab):
        total, variance = 0.0, 0.0
        for s in ("a", "b"):
            idx = [i for i, t in enumerate(strata) if t == s]
            ranks = stats.rankdata([values[i] for i in idx])
            m, n = sum(lab[i] for i in idx), len(idx)
            total += sum(r for r, i in zip(ranks, idx) if lab[i]) - m * (n + 1) / 2
            variance += m * (n - m) * (n + 1) / 12
        return abs(total) / np.sqrt(variance)

    observed = statistic(labels)
    count = total = 0
    for a in itertools.combinations(range(5), 2):
        for b in itertools.combinations(range(4), 2):
            lab = [0] * 9
            for i in a:
                lab[i] = 1
            for i in b:
                lab[5 + i] = 1
            total += 1
            count += statistic(lab) >= observed - 1e-12
    result = stratified_permutation_test(values, labels, strata, kind="numeric")
    assert result["exact"] and result["p_val"] == pytest.approx(count / total)


def test_perfect_separation_within_four_readers_reaches_the_smallest_p_the_design_allows():
    values, labels, strata = [], [], []
    for reader in range(4):
        values += ["to do"] * 3 + ["held"] * 3
        labels += [1, 1, 1, 0, 0, 0]
        strata += [reader] * 6
    result = stratified_permutation_test(values, labels, strata)
    assert result["exact"] and result["p_val"] == pytest.approx((2 / 20) ** 4) == result["min_p"]


def test_a_feature_constant_within_readers_cannot_be_associated():
    result = stratified_permutation_test(["a", "a", "b", "b"], [1, 0, 1, 0], ["r1", "r1", "r2", "r2"])
    assert result["p_val"] == 1.0 and result["n_informative_strata"] == 0


def test_monte_carlo_when_a_stratum_is_too_large_and_bad_input_is_refused():
    rng = np.random.default_rng(1)
    values = rng.normal(size=60)
    labels = np.r_[np.ones(30), np.zeros(30)]
    result = stratified_permutation_test(values, labels, ["r"] * 60, kind="numeric", n_permutations=999, seed=3)
    assert not result["exact"] and 0 < result["p_val"] <= 1 and result["min_p"] == pytest.approx(1 / 1000)
    assert abs(result["p_val"] - stats.mannwhitneyu(values[:30], values[30:]).pvalue) < 0.08
    with pytest.raises(ValueError, match="same length"):
        stratified_permutation_test([1, 2], [1], ["a", "a"])
    with pytest.raises(ValueError, match="numeric feature has missing"):
        stratified_permutation_test(["x", 2], [1, 0], ["a", "a"], kind="numeric")
    with pytest.raises(ValueError, match="kind must be"):
        stratified_permutation_test([1, 2], [1, 0], ["a", "a"], kind="ordinal")
