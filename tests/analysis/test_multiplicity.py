"""Holm and Bonferroni adjustment against R's p.adjust."""

import numpy as np
import pytest

from analysis.stats import adjust_pvalues

# R 4.2.2: p <- c(0.01, 0.04, 0.03, 0.005, 0.2, 0.0001); p.adjust(p, "holm"); p.adjust(p, "bonferroni")
P = [0.01, 0.04, 0.03, 0.005, 0.2, 0.0001]
R_HOLM = [0.0400, 0.0900, 0.0900, 0.0250, 0.2000, 0.0006]
R_BONFERRONI = [0.06, 0.24, 0.18, 0.03, 1.0, 0.0006]


def test_holm_and_bonferroni_match_r_p_adjust():
    assert adjust_pvalues(P, "holm") == pytest.approx(R_HOLM)
    assert adjust_pvalues(P, "bonferroni") == pytest.approx(R_BONFERRONI)
    assert adjust_pvalues(P, "none") == pytest.approx(P)


def test_an_untestable_endpoint_counts_in_the_family_and_stays_missing():
    adj = adjust_pvalues([0.01, np.nan, 0.04], "holm")
    assert np.isnan(adj[1])
    # m = 3, not 2: the missing endpoint still counts (R with p = 1 in its place gives 0.03, 0.08).
    assert adj[[0, 2]] == pytest.approx([0.03, 0.08])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues([0.1], "hochberg")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([1.2])
