"""ICC: the six Shrout-Fleiss forms on their published Table 2, pingouin cross-check, the sparse one-way form."""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from analysis.stats import icc_oneway, intraclass_corr

# Shrout & Fleiss (1979), Psychological Bulletin 86(2), Table 2: 6 targets rated by 4 judges.
SF_TABLE_2 = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
# Their worked example on these data reports: ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71, ICC(1,4)=.44, ICC(2,4)=.62, ICC(3,4)=.91.
SF_PUBLISHED = {"ICC1": 0.17, "ICC2": 0.29, "ICC3": 0.71, "ICC1k": 0.44, "ICC2k": 0.62, "ICC3k": 0.91}
# pingouin >= 0.6.1 row names for the same forms.
PINGOUIN_NAMES = {"ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)",
                  "ICC1k": "ICC(1,k)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}


@pytest.fixture
def sf_long():
    return pd.DataFrame([(t, j, s) for t, row in enumerate(SF_TABLE_2) for j, s in enumerate(row)],
                        columns=["target", "rater", "rating"])


def test_six_forms_match_shrout_fleiss_table(sf_long):
    out = intraclass_corr(sf_long, "target", "rater", "rating").set_index("Type")
    for typ, value in SF_PUBLISHED.items():
        assert out.loc[typ, "ICC"] == pytest.approx(value, abs=0.005), typ


# pingouin 0.7 calls a pandas method deprecated in pandas 3; not our code's warning.
@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_six_forms_and_cis_match_pingouin(sf_long):
    ours = intraclass_corr(sf_long, "target", "rater", "rating").set_index("Type")
    theirs = pg.intraclass_corr(sf_long, "target", "rater", "rating").set_index("Type")
    ci_col = [c for c in theirs.columns if c.upper().startswith("CI")][0]
    for typ, pname in PINGOUIN_NAMES.items():
        assert ours.loc[typ, "ICC"] == pytest.approx(theirs.loc[pname, "ICC"], abs=1e-9)
        assert ours.loc[typ, "F"] == pytest.approx(theirs.loc[pname, "F"], abs=1e-9)
        low, high = theirs.loc[pname, ci_col]
        # pingouin rounds its intervals to 2 decimals.
        assert ours.loc[typ, "ci_low"] == pytest.approx(low, abs=0.006)
        assert ours.loc[typ, "ci_high"] == pytest.approx(high, abs=0.006)


def test_oneway_equals_icc1_on_balanced_data(sf_long):
    one = icc_oneway(sf_long, "target", "rater", "rating").set_index("Type")
    full = intraclass_corr(sf_long, "target", "rater", "rating").set_index("Type")
    for typ in ("ICC1", "ICC1k"):
        for col in ("ICC", "F", "ci_low", "ci_high"):
            assert one.loc[typ, col] == pytest.approx(full.loc[typ, col], abs=1e-9)
    assert one.loc["ICC1", "k0"] == 4


def test_duplicated_rating_is_refused_not_averaged(sf_long):
    dup = pd.concat([sf_long, sf_long.iloc[[0]]])
    with pytest.raises(ValueError, match="duplicates are refused"):
        intraclass_corr(dup, "target", "rater", "rating")
    with pytest.raises(ValueError, match="duplicates are refused"):
        icc_oneway(dup, "target", "rater", "rating")


def test_sparse_design_is_refused_by_two_way_but_handled_one_way(sf_long):
    sparse = sf_long.drop(index=[1, 6, 11])
    with pytest.raises(ValueError, match="not fully crossed"):
        intraclass_corr(sparse, "target", "rater", "rating")
    assert np.isfinite(icc_oneway(sparse, "target", "rater", "rating")["ICC"].iloc[0])


def test_oneway_recovers_known_icc_in_a_sparse_unbalanced_design():
    # Simulated one-way model: true ICC = 1 / (1 + 1.5) = 0.4; 2 to 4 different raters per target.
    rng = np.random.default_rng(11)
    rows = []
    for t in range(1500):
        effect = rng.normal(0, 1.0)
        for r in rng.choice(200, size=rng.integers(2, 5), replace=False):
            rows.append((t, r, effect + rng.normal(0, np.sqrt(1.5))))
    df = pd.DataFrame(rows, columns=["target", "rater", "rating"])
    res = icc_oneway(df, "target", "rater", "rating").set_index("Type")
    assert res.loc["ICC1", "ci_low"] < 0.4 < res.loc["ICC1", "ci_high"]
    assert 2.5 < res.loc["ICC1", "k0"] < 3.5
