"""Power of the primary analysis: the Hillis-Obuchowski-Berbaum formula against an independent paired-t
power computation, against seeded simulation through the analysis code, and the grid from a pilot."""

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower

from analysis.plan import default_plan
from analysis.power import (ORComponents, components_from_sds, or_power, power_grid, simulated_power)
from analysis.simulate import simulate_study


def test_without_covariances_the_formula_is_the_paired_t_power():
    # With Cov1 = Cov2 = Cov3 = 0 the OR/Hillis test is the one-sample t-test of the r reader differences,
    # each with variance 2V; statsmodels' TTestPower computes that power independently (noncentral t).
    c = ORComponents(var_tr=0.01, error=0.02, cov1=0.0, cov2=0.0, cov3=0.0, m=10, r=8)
    ours = or_power(np.log(0.8), 8, c)
    ref = TTestPower().power(effect_size=abs(np.log(0.8)) / np.sqrt(2 * 0.03), nobs=8, alpha=0.05)
    assert ours["power"] == pytest.approx(ref, rel=1e-6) and ours["ddf"] == pytest.approx(7)


def test_factorial_formula_reduces_to_hob_when_no_truncation():
    # Cov2 > Cov3: the denominator's expectation equals V and power = P(F'(1, ddf, lambda) > F_crit), HOB (2011)
    # eq. for the OR method; here checked against the direct noncentral-F computation.
    from scipy import stats

    c = ORComponents(var_tr=0.0002, error=0.0008, cov1=0.00035, cov2=0.00034, cov3=0.00024, m=114, r=5)
    res = or_power(0.044, 5, c)
    v = 0.0002 + 0.0008 - 0.00035 + 4 * (0.00034 - 0.00024)
    e = 0.0002 + 0.0008 - 0.00035 - 0.00034 + 0.00024
    ddf = v ** 2 / (e ** 2 / 4)
    assert res["ddf"] == pytest.approx(ddf)
    assert res["power"] == pytest.approx(stats.ncf.sf(stats.f.ppf(0.95, 1, ddf), 1, ddf, 5 * 0.044 ** 2 / (2 * v)))


@pytest.mark.parametrize("readers, cases", [(6, 80), (10, 160)])
def test_analytic_power_agrees_with_simulation_through_the_analysis(readers, cases):
    """300 seeded studies per point, each analysed by or_hillis: Monte-Carlo SE <= 2.9 points, so the
    analytic value must be within 3 SE (about 0.087)."""
    sds = {"reader_sd": 0.3, "reader_condition_sd": 0.15, "case_sd": 0.25, "residual_sd": 0.35}
    comp = components_from_sds(0.15, 0.25, 0.35, m=cases / readers, r=readers)
    analytic = or_power(np.log(0.8), readers, comp)["power"]
    sim = simulated_power(0.8, readers, cases, sds=sds, n_sim=300, seed=11)
    assert sim["n_failed"] == 0
    assert abs(analytic - sim["power"]) <= 3 * np.sqrt(0.25 / 300)


def test_grid_is_monotone_and_from_a_pilot_uses_its_components():
    plan = default_plan()
    g = power_grid(plan, readers=[4, 8], cases=[40, 160])
    assert g.attrs["source"] == "assumed" and len(g) == 4
    by = g.set_index(["n_readers", "n_cases"])["power"]
    assert by[(8, 160)] > by[(8, 40)] and by[(8, 40)] > by[(4, 40)]
    pilot = simulate_study(seed=4)
    gp = power_grid(plan, pilot=pilot, readers=[6, 12], cases=[80, 240])
    assert gp.attrs["source"] == "pilot" and gp.attrs["components"]["r"] == 6
    assert (gp["power"].between(0, 1)).all()


def test_non_time_primary_without_pilot_is_refused():
    table = default_plan().to_dict()
    table["primary"] = table["secondary"][1]
    from analysis.plan import parse_plan

    with pytest.raises(ValueError, match="needs a pilot export"):
        power_grid(parse_plan({**table, "secondary": []}))


def test_a_detection_auc_primary_is_planned_from_a_pilot_detection_study():
    """The pilot's averaged-over-findings AUC difference gives the OR components; the grid's power grows with
    readers and cases, and a larger planted difference needs fewer of them."""
    from analysis.plan import parse_plan
    from analysis.simulate import simulate_detection_study

    plan = parse_plan({"primary": {"name": "auc", "endpoint": "detection_auc", "role": "radiologist",
                                   "reference": "detect_none", "comparison": "detect_labels"}})
    pilot = simulate_detection_study(n_readers=5, n_cases=60, seed=9, auc={"none": 0.75, "labels": 0.80})
    # (Every reader reads every case in both modalities: the factorial allocation.)
    grid = power_grid(plan, pilot=pilot, readers=[5, 10], cases=[60, 240], effect=0.05, allocation="factorial")
    assert grid.attrs["source"] == "pilot" and grid.attrs["components"]["r"] == 5
    by = grid.set_index(["n_readers", "n_cases"])["power"]
    assert by[(10, 240)] > by[(10, 60)] > 0.05 and by[(10, 240)] > by[(5, 240)]
    assert (power_grid(plan, pilot=pilot, readers=[5], cases=[60], effect=0.10, allocation="factorial")["power"].iloc[0]
            > by[(5, 60)])
