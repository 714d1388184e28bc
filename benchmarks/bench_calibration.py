"""Monte-Carlo calibration of the primary analyses: type-I error and 95% CI coverage with and without reader x condition heterogeneity, and ICC interval coverage.

The test suite runs small seeded versions (tests/analysis/test_calibration.py, test_icc_crossed.py);
this runs the large ones and prints the figures docs/analysis.md and docs/benchmarks.md record.
Usage: python -m benchmarks calibration   (BENCH_CALIBRATION_N=2000 replications per scenario)
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

N = int(os.environ.get("BENCH_CALIBRATION_N", "2000"))
N_MIXED = int(os.environ.get("BENCH_CALIBRATION_N_MIXED", "1000"))
N_DETECTION = int(os.environ.get("BENCH_CALIBRATION_N_DETECTION", "1000"))


def _rate(hits: int, n: int) -> dict:
    p = hits / n
    return {"rate": round(p, 4), "mc_se": round(float(np.sqrt(p * (1 - p) / n)), 4), "n": n}


def time_scenarios() -> dict:
    """OR/Hillis, our mixed model and the intercepts-only mixed model on CheXOne-allocated resident studies."""
    from analysis.simulate import simulate_timed_reads
    from analysis.stats import mixed_model, mixed_model_ratio, or_hillis

    out = {}
    for rc in (0.0, 0.15):
        reject = {"or_hillis": 0, "or_fixed_readers": 0, "mixed_model": 0, "mixed_intercepts_only": 0}
        cover = {"or_hillis": 0, "mixed_model": 0}
        failed = 0
        started = time.perf_counter()
        for s in range(N):
            d = simulate_timed_reads(seed=100_000 + s, reader_condition_sd=rc)
            res = or_hillis(d.assign(value=np.log(d["duration_s"])), "value", "condition", "reader_id", "case_id",
                            levels=("edit_model", "write")).differences.set_index("conclusion")
            reject["or_hillis"] += res.loc["random_readers_random_cases", "p_val"] < 0.05
            reject["or_fixed_readers"] += res.loc["fixed_readers_random_cases", "p_val"] < 0.05
            alt = simulate_timed_reads(seed=200_000 + s, time_ratio=0.7, reader_condition_sd=rc)
            ra = or_hillis(alt.assign(value=np.log(alt["duration_s"])), "value", "condition", "reader_id",
                           "case_id", levels=("edit_model", "write")).differences.set_index("conclusion")
            row = ra.loc["random_readers_random_cases"]
            cover["or_hillis"] += np.exp(row["ci_low"]) < 0.7 < np.exp(row["ci_high"])
            if s < N_MIXED:
                try:
                    reject["mixed_model"] += mixed_model_ratio(d, "duration_s", "condition",
                                                               ("write", "edit_model"))["p_val"] < 0.05
                    m = mixed_model_ratio(alt, "duration_s", "condition", ("write", "edit_model"))
                    cover["mixed_model"] += m["ci_low"] < 0.7 < m["ci_high"]
                except ValueError:
                    failed += 1
                f = mixed_model(d.assign(log_y=np.log(d["duration_s"])), "log_y", ("reader_id", "case_id"),
                                fixed="condition", levels=("write", "edit_model"))
                reject["mixed_intercepts_only"] += f.fixed.set_index("term").loc["comparison", "p_val"] < 0.05
        key = f"reader_condition_sd_{rc:g}"
        out[key] = {
            "type_i": {k: _rate(int(v), N if k.startswith("or") else N_MIXED) for k, v in reject.items()},
            "coverage_at_ratio_0.7": {k: _rate(int(v), N if k.startswith("or") else N_MIXED) for k, v in cover.items()},
            "mixed_failed": failed, "seconds": round(time.perf_counter() - started, 1)}
    return out


def icc_scenarios() -> dict:
    """ICC(A,1) (two-way REML, logit Wald) and the one-way ICC(1) (F/k0) interval coverage."""
    import pandas as pd

    from analysis.stats import icc_crossed, icc_oneway

    def ratings(rng, rater_effects):
        t = rng.normal(0, 2.0, 80)
        r = rng.normal(0, 2.0, 11) if rater_effects else np.zeros(11)
        rows = [(i, j, t[i] + r[j] + rng.normal(0, 3.0)) for i in range(80) for j in rng.choice(11, 3, replace=False)]
        return pd.DataFrame(rows, columns=["target", "rater", "y"])

    out = {}
    n = max(200, N // 2)
    for label, rater_effects, truth in (("with_reader_effects", True, 4 / 17), ("no_reader_effects", False, 4 / 13)):
        rng = np.random.default_rng(424242 if rater_effects else 434343)
        two = one = no_interval = 0
        for _ in range(n):
            d = ratings(rng, rater_effects)
            row = icc_crossed(d, "target", "rater", "y").set_index("Type").loc["ICC(A,1)"]
            no_interval += not np.isfinite(row["ci_low"])
            two += bool(row["ci_low"] < truth < row["ci_high"])
            o = icc_oneway(d, "target", "rater", "y").set_index("Type").loc["ICC1"]
            one += bool(o["ci_low"] < truth < o["ci_high"])
        out[label] = {"true_icc": round(truth, 4), "icc_a1_coverage": _rate(two, n),
                      "icc1_oneway_coverage": _rate(one, n), "no_interval": no_interval}
    return out


def detection_scenarios() -> dict:
    """The detect task's averaged-over-findings AUC (5 readers, 60 cases, 3 findings; simulate_detection_reads):
    the aided-minus-unaided difference's type-I error and coverage, readers minus the model, the model alone."""
    from analysis.simulate import simulate_detection_reads
    from analysis.stats import or_hillis

    def fit(d, levels, **kw):
        return or_hillis(d, kw.pop("value", "confidence"), "ai_shown", "reader_id", "case_id", fom="auc",
                         truth="reference", stratum="finding", levels=levels, **kw)

    out = {}
    for rc in (0.0, 0.15):
        reject = cover = 0
        for s in range(N_DETECTION):
            null = simulate_detection_reads(n_readers=5, n_cases=60, seed=50_000 + s, reader_condition_sd=rc,
                                            auc={"none": 0.8, "labels": 0.8})
            reject += fit(null, ("labels", "none")).differences.set_index("conclusion").loc[
                "random_readers_random_cases", "p_val"] < 0.05
            alt = simulate_detection_reads(n_readers=5, n_cases=60, seed=60_000 + s, reader_condition_sd=rc,
                                           auc={"none": 0.8, "labels": 0.85})
            row = fit(alt, ("labels", "none")).differences.set_index("conclusion").loc["random_readers_random_cases"]
            cover += row["ci_low"] < 0.05 < row["ci_high"]
        out[f"auc_difference_reader_condition_sd_{rc:g}"] = {"type_i": _rate(int(reject), N_DETECTION),
                                                             "coverage_at_0.05": _rate(int(cover), N_DETECTION)}
    cover_vs = reject_vs = cover_model = 0
    for s in range(N_DETECTION):
        d = simulate_detection_reads(n_readers=5, n_cases=60, seed=90_000 + s, auc={"none": 0.8, "labels": 0.85},
                                     model_auc=0.85)
        unaided, aided = d.loc[d["ai_shown"] == "none"], d.loc[d["ai_shown"] == "labels"]
        m = fit(unaided, ("none",), versus="model_probability", null=0.0).means.set_index("conclusion").loc[
            "random_readers_random_cases"]
        cover_vs += m["ci_low"] < -0.05 < m["ci_high"]
        reject_vs += fit(aided, ("labels",), versus="model_probability", null=0.0).means.set_index("conclusion").loc[
            "random_readers_random_cases", "p_val"] < 0.05
        model = unaided.drop_duplicates(["case_id", "finding"]).assign(reader_id="model")
        r = fit(model, ("none",), value="model_probability").readers.iloc[0]
        cover_model += r["ci_low"] < 0.85 < r["ci_high"]
    out["readers_minus_model"] = {"coverage_at_-0.05": _rate(cover_vs, N_DETECTION),
                                  "type_i": _rate(int(reject_vs), N_DETECTION)}
    out["model_alone_coverage_at_0.85"] = _rate(int(cover_model), N_DETECTION)
    return out


def main() -> dict:
    """Run every scenario; returns the rates with their Monte-Carlo SEs."""
    started = time.perf_counter()
    figures = {"replications": N, "replications_mixed": N_MIXED, "time_ratio": time_scenarios(),
               "icc": icc_scenarios(), "detection": detection_scenarios()}
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
