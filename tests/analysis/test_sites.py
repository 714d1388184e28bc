"""Multi-site studies in the analysis: the site as a stratum of the summaries and a fixed effect of the
random-reader mixed model (docs/analysis.md, "Multi-site studies")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import run_analysis
from analysis.simulate import simulate_study
from analysis.stats import mixed_model_ratio

SITES = {"site_a": 1.0, "site_b": 1.6}


def two_site_study(seed=4, **kwargs):
    return simulate_study(n_readers=12, n_cases=80, seed=seed, time_ratio=0.7, site_time_ratios=SITES, **kwargs)


def test_simulated_sites_reach_the_reads_from_the_cases_and_readers_tables():
    tables = two_site_study()
    reads = tables.counted_reads()
    assert set(tables.cases["site"]) == set(SITES) and set(tables.readers["site"]) == set(SITES)
    assert set(reads["site"]) == set(SITES) and set(reads["reader_site"]) == set(SITES)
    site_of = dict(zip(tables.cases["case_id"], tables.cases["site"]))
    assert (reads["site"] == reads["case_id"].map(site_of)).all()
    # A study without sites has none (one site): nothing enters a model.
    assert simulate_study(seed=4).counted_reads()["site"].isna().all()


def test_the_mixed_model_recovers_the_planted_effect_and_site_effect_with_the_site_term():
    residents = two_site_study().counted_reads().query("reader_role == 'resident'")
    with_site = mixed_model_ratio(residents, "duration_s", "condition", ("write", "edit_model"))
    without = mixed_model_ratio(residents, "duration_s", "condition", ("write", "edit_model"), site=None)
    # The planted condition effect (0.7) lies in the interval; the planted site ratio (1.6) is recovered.
    assert with_site["ci_low"] < 0.7 < with_site["ci_high"]
    assert list(with_site["site_effects"]) == ["site_b"]
    assert abs(np.exp(with_site["site_effects"]["site_b"]) - 1.6) < 0.25
    assert without["site_effects"] == {}
    # Left out, the site's difference is carried by the case variance; taken in, the case variance shrinks.
    assert with_site["var_case"] < without["var_case"]


def test_a_site_effect_confounded_with_the_condition_biases_the_ratio_unless_the_site_is_in_the_model():
    """Residents write mostly on site_a's cases and edit mostly site_b's: the slow site makes editing look slower
    unless the model takes the site in (the case random effect alone is shrunk towards 0 and leaves part of it)."""
    reads = two_site_study(seed=9, case_sd=0.05).counted_reads().query("reader_role == 'resident'")
    keep = ((reads["condition"].eq("write") & reads["site"].eq("site_a"))
            | (reads["condition"].eq("edit_model") & reads["site"].eq("site_b"))
            | (np.arange(len(reads)) % 5 == 0))
    skewed = reads.loc[keep]
    with_site = mixed_model_ratio(skewed, "duration_s", "condition", ("write", "edit_model"))
    without = mixed_model_ratio(skewed, "duration_s", "condition", ("write", "edit_model"), site=None)
    assert with_site["ci_low"] < 0.7 < with_site["ci_high"]
    assert abs(np.log(with_site["ratio"] / 0.7)) < abs(np.log(without["ratio"] / 0.7))


def test_the_report_has_each_site_as_a_stratum():
    result = run_analysis(two_site_study(), n_boot=50)
    sites = result.results["sites"]
    assert sites["sites"] == ["site_a", "site_b"]
    counts = pd.DataFrame(sites["counts"]).set_index("site")
    assert counts["n_cases"].sum() == 80
    strata = result.tables["site_strata"]
    write = strata.query("role == 'resident' and condition == 'write'").set_index("site")["geometric_mean_s"]
    # site_b's cases were planted 1.6 times slower.
    assert 1.3 < write["site_b"] / write["site_a"] < 2.0
    ratios = result.tables["site_ratios"].query("role == 'resident' and comparison == 'write_vs_edit_model'")
    assert set(ratios["site"]) == set(SITES)
    assert ratios["ratio"].between(0.5, 0.95).all()
    assert "mixed_model_site_effect_ratio" in ratios.columns
    assert "2 sites (site_a, site_b)" in result.methods
    # A study without sites reports none.
    plain = run_analysis(simulate_study(seed=4), n_boot=50)
    assert plain.results["sites"] == {} and "site_strata" not in plain.tables
