"""The detect task's analysis: the averaged-over-findings AUC and the model alone by hand, Van Dyke through the
averaged path, a known AUC difference recovered, a seeded calibration of the random-reader difference, findings
that cannot be estimated, and the refusals of bad detection tables."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.detection import MEAN_SCOPE, analyse_detection, detection_reads
from analysis.simulate import simulate_detection_reads, simulate_detection_study
from analysis.stats import empirical_auc, or_hillis
from analysis.tables import AnalysisInputError, tables_from_frames

DATA = Path(__file__).parent / "data"
RRRC, FRRC = "random_readers_random_cases", "fixed_readers_random_cases"


def detection_frames(ratings: pd.DataFrame, findings: list[str], *, scale=(1, 5), labels: pd.DataFrame | None = None):
    """Export frames of a detect study from one row per reader x case x ai_shown x finding (``rating``, ``truth``,
    optional ``probability``)."""
    one = ratings.drop_duplicates(["reader", "case", "ai_shown"])
    a = pd.DataFrame({
        "assignment_id": [f"A{k}" for k in range(len(one))], "reader_id": one["reader"].to_numpy(),
        "reader_role": "radiologist", "case_id": one["case"].to_numpy(), "arm": "arm_" + one["ai_shown"].to_numpy(),
        "task": "detect", "status": "submitted", "ai_shown": one["ai_shown"].to_numpy(), "draft_id": None,
        "draft_source": None, "a_source": None, "b_source": None, "preferred": None, "preferred_source": None,
        "duration_s": 30.0, "shown_text": None, "final_text": None})
    ids = a.set_index(["reader_id", "case_id", "ai_shown"])["assignment_id"]
    marks = pd.DataFrame({"assignment_id": ids.loc[list(zip(ratings["reader"], ratings["case"],
                                                            ratings["ai_shown"]))].to_numpy(),
                          "finding": ratings["finding"].to_numpy(),
                          "present": (ratings["rating"] >= (scale[0] + scale[1]) / 2).to_numpy(),
                          "confidence": ratings["rating"].to_numpy(), "marked_at": "2024-01-01T00:00:00Z"})
    if labels is None:
        labels = ratings.drop_duplicates(["case", "finding"])
        probability = labels["probability"] if "probability" in labels else pd.Series(np.nan, index=labels.index)
        labels = pd.DataFrame({"case_id": labels["case"], "finding": labels["finding"], "reference": labels["truth"],
                               "model_probability": probability,
                               "model_present": np.where(probability.isna(), None, probability >= 0.5)})
    frames = {"assignments": a, "answers": pd.DataFrame(columns=["assignment_id", "question_key", "value"]),
              "drafts": pd.DataFrame(columns=["draft_id", "case_id", "source_kind"]),
              "cases": pd.DataFrame({"case_id": sorted(ratings["case"].unique())}),
              "readers": pd.DataFrame({"reader_id": sorted(ratings["reader"].unique()), "role": "radiologist"}),
              "detection_marks": marks, "case_labels": labels}
    meta = {"study_id": "detect-test", "detection": {
        "findings": findings, "confidence": {"min": scale[0], "max": scale[1], "min_label": "absent",
                                             "max_label": "present"},
        "model_threshold": 0.5, "reader_threshold": None}}
    return frames, meta


def pick(rows, **match):
    out = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(out) == 1, (match, len(out))
    return out[0]


# --- hand-computed examples ---------------------------------------------------------------------------------------


def small_study():
    """Two readers, two conditions, five cases, two findings. Finding F1: cases 1-2 positive; F2: cases 4-5."""
    truth = {"F1": [1, 1, 0, 0, 0], "F2": [0, 0, 0, 1, 1]}
    rating = {  # (reader, ai_shown) -> finding -> ratings of cases 1..5
        ("r1", "none"): {"F1": [5, 3, 3, 1, 2], "F2": [1, 2, 4, 5, 3]},
        ("r1", "labels"): {"F1": [5, 4, 2, 1, 2], "F2": [1, 1, 2, 5, 4]},
        ("r2", "none"): {"F1": [4, 2, 3, 2, 1], "F2": [2, 3, 3, 4, 2]},
        ("r2", "labels"): {"F1": [5, 5, 1, 2, 1], "F2": [1, 2, 1, 4, 5]},
    }
    prob = {"F1": [0.9, 0.4, 0.6, 0.1, 0.2], "F2": [0.3, 0.2, 0.7, 0.8, 0.6]}
    rows = [{"reader": r, "ai_shown": s, "case": f"c{k + 1}", "finding": f, "rating": float(v[f][k]),
             "truth": truth[f][k], "probability": prob[f][k]}
            for (r, s), v in rating.items() for f in ("F1", "F2") for k in range(5)]
    return pd.DataFrame(rows), truth, rating, prob


def test_averaged_auc_and_its_jackknife_by_hand():
    """Reader r1 unaided. F1: positives rated 5, 3 against negatives 3, 1, 2: pairs 5>3,5>1,5>2,3=3,3>1,3>2 give
    5.5/6. F2: positives 5, 3 against 1, 2, 4: 5 beats all three, 3 beats 1, 2: 5/6. The mean is (5.5 + 5)/12 =
    0.875. Its jackknife variance is recomputed here by brute force: each case left out of both findings."""
    d, truth, rating, _ = small_study()
    res = or_hillis(d, "rating", "ai_shown", "reader", "case", fom="auc", truth="truth", stratum="finding",
                    levels=("labels", "none"))
    r1 = res.readers.set_index(["test", "reader"]).loc[("none", "r1")]
    assert r1["estimate"] == pytest.approx(0.875)
    cases = np.arange(5)
    loo = []
    for k in cases:
        keep = cases != k
        loo.append(np.mean([empirical_auc(np.array(truth[f])[keep], np.array(rating[("r1", "none")][f])[keep])
                            for f in ("F1", "F2")]))
    loo = np.array(loo)
    var = (5 - 1) / 5 * ((loo - loo.mean()) ** 2).sum()
    assert r1["se"] ** 2 == pytest.approx(var)
    # The cell FOM of every reader x condition is the mean of its two per-finding AUCs.
    for (reader, shown), v in rating.items():
        expected = np.mean([empirical_auc(truth[f], v[f]) for f in ("F1", "F2")])
        assert res.readers.set_index(["test", "reader"]).loc[(shown, reader), "estimate"] == pytest.approx(expected)


def test_model_alone_auc_by_hand_and_readers_minus_model():
    """The model's F1 probabilities 0.9, 0.4 (positive) against 0.6, 0.1, 0.2: 0.9 beats all, 0.4 beats two: 5/6.
    F2: 0.8, 0.6 against 0.3, 0.2, 0.7: 0.8 beats all, 0.6 beats two: 5/6. Averaged 5/6. Readers minus the model
    per reader is each reader's AUC minus 5/6."""
    d, truth, rating, prob = small_study()
    out = analyse_detection(tables_from_frames(*detection_frames(d, ["F1", "F2"])))
    assert pick(out["model"], scope="F1", fom="auc")["estimate"] == pytest.approx(5 / 6)
    assert pick(out["model"], scope=MEAN_SCOPE, fom="auc")["estimate"] == pytest.approx(5 / 6)
    # Sensitivity at 0.5: F1 positives 0.9 (yes), 0.4 (no) -> 1/2; F2 positives 0.8, 0.6 -> 1.
    assert pick(out["model"], scope=MEAN_SCOPE, fom="sensitivity")["estimate"] == pytest.approx(0.75)
    vs = or_hillis(d.assign(model=d["probability"]), "rating", "ai_shown", "reader", "case", fom="auc",
                   truth="truth", stratum="finding", versus="model", levels=("none",))
    r1 = vs.readers.set_index("reader").loc["r1", "estimate"]
    assert r1 == pytest.approx(0.875 - 5 / 6)
    row = pick(out["readers_vs_model"], scope=MEAN_SCOPE, fom="auc", condition="none", conclusion=RRRC)
    per_reader = [np.mean([empirical_auc(truth[f], rating[(r, "none")][f]) for f in ("F1", "F2")]) - 5 / 6
                  for r in ("r1", "r2")]
    assert row["estimate"] == pytest.approx(np.mean(per_reader))


# --- Van Dyke through the averaged path ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vandyke():
    return pd.read_csv(DATA / "vandyke.csv", dtype={"reader": str, "treatment": str, "case": str})


def test_van_dyke_through_the_detection_analysis_with_one_finding_is_the_published_result(vandyke):
    # Published (Hillis, Berbaum & Metz 2008; data/README.md): AUCs 0.8970 (treatment 1) and 0.9408 (treatment 2),
    # difference 1 - 2 = -0.0438, 95% CI (-0.0880, 0.0004), F = 4.456 on 1 and 15.26 df, p = 0.0517. Here treatment 1
    # is the unaided condition and 2 the aided one, so aided - unaided is +0.0438 with the interval mirrored.
    d = vandyke.assign(ai_shown=vandyke["treatment"].map({"1": "none", "2": "labels"}), finding="Aortic dissection")
    out = analyse_detection(tables_from_frames(*detection_frames(d, ["Aortic dissection"])))
    assert out["averaged_findings"] == ["Aortic dissection"]
    diff = pick(out["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)
    assert round(diff["estimate"], 4) == 0.0438
    assert (round(diff["ci_low"], 4), round(diff["ci_high"], 4)) == (-0.0004, 0.0880)
    assert round(diff["df"], 2) == 15.26 and round(diff["p_val"], 4) == 0.0517
    assert round(diff["statistic"] ** 2, 3) == 4.456
    means = {r["condition"]: r["estimate"] for r in out["conditions"]
             if r["scope"] == MEAN_SCOPE and r["fom"] == "auc" and r["conclusion"] == RRRC}
    assert (round(means["none"], 4), round(means["labels"], 4)) == (0.8970, 0.9408)
    # The per-finding scope is the same analysis.
    assert pick(out["differences"], scope="Aortic dissection", fom="auc", conclusion=RRRC)["estimate"] == diff["estimate"]


def test_van_dyke_twice_as_two_identical_findings_gives_the_same_averaged_result(vandyke):
    """Two copies of one finding average to the same AUCs, and since both copies of a case leave together the
    jackknife is unchanged: the stratified path is the unstratified one, not an approximation of it."""
    one = or_hillis(vandyke, "rating", "treatment", "reader", "case", fom="auc", truth="truth")
    two = or_hillis(pd.concat([vandyke.assign(f="a"), vandyke.assign(f="b")]), "rating", "treatment", "reader",
                    "case", fom="auc", truth="truth", stratum="f")
    for col in ("estimate", "se", "df", "p_val"):
        assert two.differences[col].to_numpy() == pytest.approx(one.differences[col].to_numpy(), rel=1e-12)


# --- simulation: recovery and calibration -------------------------------------------------------------------------


def test_a_known_auc_difference_is_recovered_within_its_interval():
    """True readers' mean AUC 0.75 unaided and 0.85 with the labels shown, for each of three findings, so the
    averaged difference is 0.10; the model's true AUC is 0.85."""
    t = simulate_detection_study(n_readers=6, n_cases=120, seed=7, auc={"none": 0.75, "labels": 0.85})
    out = analyse_detection(t)
    diff = pick(out["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)
    assert diff["ci_low"] < 0.10 < diff["ci_high"]
    assert diff["ci_low"] > 0  # 120 cases and 6 readers detect a 0.10 difference
    model = pick(out["model"], scope=MEAN_SCOPE, fom="auc")
    assert model["ci_low"] < 0.85 < model["ci_high"]
    assert out["or"]["design"] == "factorial"


def test_the_plans_detection_auc_endpoint_is_the_detection_blocks_averaged_difference():
    """A pre-specified detection_auc (detect_labels vs detect_none, the design's conditions) gives the detection
    block's mean-over-findings AUC difference for random readers and cases, to the digit, and recovers a planted
    0.10 within its interval; the report's primary endpoint says so."""
    from analysis.plan import parse_plan
    from analysis.reader_study import run_analysis

    t = simulate_detection_study(n_readers=6, n_cases=120, seed=7, auc={"none": 0.75, "labels": 0.85})
    plan = parse_plan({"primary": {"name": "detection", "endpoint": "detection_auc", "role": "radiologist",
                                   "reference": "detect_none", "comparison": "detect_labels"}})
    result = run_analysis(t, seed=1, n_boot=50, plan=plan).results
    [primary] = [e for e in result["endpoints"] if e["family"] == "primary"]
    block = pick(result["detection"]["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)
    assert primary["error"] is None and primary["scale"] == "difference"
    for key in ("estimate", "ci_low", "ci_high", "p_val", "df"):
        assert primary[key] == pytest.approx(block[key], rel=1e-12), key
    assert primary["ci_low"] < 0.10 < primary["ci_high"] and primary["n_readers"] == 6
    assert primary["findings"] == list(t.detection.findings)
    other_role = parse_plan({"primary": {**plan.primary.to_dict(), "role": "attending"}})
    [missing] = [e for e in run_analysis(t, seed=1, n_boot=50, plan=other_role).results["endpoints"]
                 if e["family"] == "primary"]
    assert "no attending detect marks" in missing["error"]


def test_the_fast_simulation_is_the_exported_one():
    """simulate_detection_reads (used by the calibration) and simulate_detection_study (through tables_from_frames)
    draw the same study: their averaged-AUC differences agree."""
    fast = simulate_detection_reads(n_readers=4, n_cases=50, seed=3)
    res = or_hillis(fast, "confidence", "ai_shown", "reader_id", "case_id", fom="auc", truth="reference",
                    stratum="finding", levels=("labels", "none"))
    out = analyse_detection(simulate_detection_study(n_readers=4, n_cases=50, seed=3))
    exported = pick(out["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)
    assert exported["estimate"] == pytest.approx(res.differences.iloc[0]["estimate"])
    assert exported["p_val"] == pytest.approx(res.differences.iloc[0]["p_val"])


def band(p, n, k=3.0):
    sd = np.sqrt(p * (1 - p) / n)
    return p - k * sd, p + k * sd


def averaged_difference(seed, auc):
    d = simulate_detection_reads(n_readers=5, n_cases=60, seed=seed, auc=auc)
    res = or_hillis(d, "confidence", "ai_shown", "reader_id", "case_id", fom="auc", truth="reference",
                    stratum="finding", levels=("labels", "none"))
    return res.differences.set_index("conclusion").loc[RRRC]


def test_averaged_auc_difference_type_i_error_and_coverage():
    """300 null studies (AUC 0.80 in both conditions) and 300 with a true difference of 0.05 (0.80 vs 0.85): 5
    readers, 60 cases, 3 findings of prevalence 0.35, reader x condition SD 0.15. The type-I error must lie in
    5% +- 3 SD (1.2% to 8.8%) and the coverage reach 95% - 3 SD = 91.2%. The 1,000-replication figures are in
    docs/analysis.md."""
    n = 300
    rejections = sum(averaged_difference(70_000 + s, {"none": 0.8, "labels": 0.8})["p_val"] < 0.05 for s in range(n))
    low, high = band(0.05, n)
    assert low <= rejections / n <= high
    covered = 0
    for s in range(n):
        row = averaged_difference(80_000 + s, {"none": 0.8, "labels": 0.85})
        covered += row["ci_low"] < 0.05 < row["ci_high"]
    assert band(0.95, n)[0] <= covered / n <= 0.995


# --- findings that cannot be estimated, unknown references, conditions --------------------------------------------


def test_a_finding_without_positives_is_not_estimable_and_left_out_of_the_mean():
    t = simulate_detection_study(n_readers=3, n_cases=40, seed=5)
    frames = {n: getattr(t, n) for n in ("assignments", "answers", "drafts", "cases", "readers", "detection_marks",
                                         "case_labels")}
    labels = frames["case_labels"].copy()
    labels.loc[labels["finding"].eq("Edema"), "reference"] = 0
    first = labels.index[labels["finding"].eq("Cardiomegaly") & labels["reference"].eq(1)]
    labels.loc[labels["finding"].eq("Cardiomegaly"), "reference"] = 0
    labels.loc[first[0], "reference"] = 1  # one positive case
    out = analyse_detection(tables_from_frames({**frames, "case_labels": labels}, t.meta))
    assert out["averaged_findings"] == ["Pleural Effusion"]
    edema = pick(out["findings"], finding="Edema")
    assert not edema["estimable"] and edema["reasons"]["auc"] == "no positive reference case"
    assert "specificity" not in edema["reasons"]
    cardio = pick(out["findings"], finding="Cardiomegaly")
    assert "1 positive reference case" in cardio["reasons"]["sensitivity"]
    assert not [r for r in out["conditions"] if r["scope"] == "Edema" and r["fom"] in ("auc", "sensitivity")]
    assert not [r for r in out["model"] if r["scope"] == "Edema" and r["fom"] == "auc"]
    assert pick(out["not_estimable"], scope="Edema", fom="auc", analysis="all")["reason"] == "no positive reference case"
    assert [r for r in out["conditions"] if r["scope"] == "Edema" and r["fom"] == "specificity"]
    assert pick(out["averaged_excluded"], finding="Edema")["reason"] == "no positive reference case"


def test_unknown_references_leave_their_case_out_of_that_finding_only():
    t = simulate_detection_study(n_readers=3, n_cases=40, seed=6, unknown_reference=0.1)
    out = analyse_detection(t)
    labels = t.case_labels
    for row in out["findings"]:
        assert row["n_unknown"] == int(labels.loc[labels["finding"].eq(row["finding"]), "reference"].isna().sum())
    auc = pick(out["readers"], scope="Edema", fom="auc", condition="none", reader="R01")
    known = labels.loc[labels["finding"].eq("Edema") & labels["reference"].notna()]
    assert auc["n_cases"] == len(known)
    assert pick(out["readers"], scope=MEAN_SCOPE, fom="auc", condition="none", reader="R01")["n_cases"] == 40


def test_two_arms_showing_the_same_thing_are_two_conditions_named_by_arm():
    d, *_ = small_study()
    frames, meta = detection_frames(d, ["F1", "F2"])
    a = frames["assignments"]
    a.loc[a["ai_shown"].eq("labels") & a["reader_id"].eq("r2"), "arm"] = "arm_labels_b"
    reads = detection_reads(tables_from_frames(frames, meta))
    assert sorted(reads["condition"].unique()) == ["arm_labels", "arm_labels_b", "none"]


def test_a_study_without_detect_arms_has_no_detection_block():
    from analysis.simulate import simulate_study

    assert analyse_detection(simulate_study(seed=1)) == {}


def test_reader_threshold_makes_the_binary_call_from_the_confidence():
    d, *_ = small_study()
    frames, meta = detection_frames(d, ["F1", "F2"])
    meta["detection"]["reader_threshold"] = 4
    reads = detection_reads(tables_from_frames(frames, meta))
    assert (reads["call"] == (reads["confidence"] >= 4).astype(int)).all()


# --- bad tables ---------------------------------------------------------------------------------------------------


def _break(table, change):
    d, *_ = small_study()
    frames, meta = detection_frames(d, ["F1", "F2"])
    frames = {k: v.copy() for k, v in frames.items()}
    change(frames[table] if table != "meta" else meta, frames)
    return frames, meta


def _set(column, value, row=2):
    def change(frame, frames):
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[row], column] = value
    return change


BAD = [
    ("detection_marks", _set("assignment_id", "A999"), "detection_marks row 3 (assignment_id A999): unknown assignment_id"),
    ("detection_marks", _set("finding", "Edema"), "detection_marks row 3 (assignment_id A2): column finding 'Edema' is not one"),
    ("detection_marks", lambda f, fr: fr.update(detection_marks=pd.concat([f, f.iloc[[0]]], ignore_index=True)),
     "is marked more than once in one read"),
    ("detection_marks", _set("confidence", 7.0), "column confidence 7 is outside the design's scale (1 to 5"),
    ("detection_marks", _set("confidence", "high"), "detection_marks row 3 (assignment_id A2): column confidence 'high' is not a number"),
    ("detection_marks", _set("present", "maybe"), "detection_marks row 3 (assignment_id A2): column present 'maybe' is not true/false"),
    ("detection_marks", _set("present", None), "column present is empty"),
    ("detection_marks", _set("confidence", None), "detection_marks row 3 (assignment_id A2): column confidence is empty"),
    ("case_labels", _set("reference", 2), "case_labels row 3 (case_id c3): column reference 2 is not true/false"),
    ("case_labels", _set("model_probability", 1.5), "case_labels row 3 (case_id c3): column model_probability 1.5 is not a probability"),
    ("case_labels", _set("model_present", False), "case_labels row 3 (case_id c3): column model_present false disagrees with model_probability 0.6"),
    ("case_labels", _set("case_id", "c99"), "case_labels row 3 (case_id c99): column case_id c99 is not in cases"),
    ("case_labels", lambda f, fr: fr.update(case_labels=pd.concat([f, f.iloc[[1]]], ignore_index=True)),
     "is labelled more than once for one case"),
    ("assignments", _set("ai_shown", None, row=0), "assignments row 1 (assignment_id A0): a detect read without ai_shown"),
    ("assignments", _set("ai_shown", "heatmap", row=0), "assignments.ai_shown has value(s) outside the data dictionary: heatmap"),
    ("meta", lambda m, fr: m.pop("detection"), "detection_marks is exported but export_meta.json has no detection block"),
]


@pytest.mark.parametrize("table, change, message", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_detection_tables_are_refused_naming_table_row_and_column(table, change, message):
    frames, meta = _break(table, change)
    with pytest.raises(AnalysisInputError) as err:
        tables_from_frames(frames, meta)
    assert message in str(err.value)


def test_a_mark_on_a_read_of_another_task_is_refused():
    d, *_ = small_study()
    frames, meta = detection_frames(d, ["F1", "F2"])
    frames["assignments"].loc[0, ["task", "ai_shown"]] = ["write", None]
    with pytest.raises(AnalysisInputError, match="names a write read; only detect reads mark findings"):
        tables_from_frames(frames, meta)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_folder_with_the_two_tables_analyses_like_the_frames(tmp_path, fmt):
    """Written as an export (the booleans as text in a CSV, empty references as empty cells) and read back by
    load_tables, the study gives the same figures."""
    from analysis.simulate import write_export
    from analysis.tables import load_tables

    t = simulate_detection_study(n_readers=3, n_cases=40, seed=8, unknown_reference=0.1)
    write_export(t, tmp_path, fmt=fmt)
    back = load_tables(tmp_path)
    assert len(back.detection_marks) == len(t.detection_marks) and len(back.case_labels) == len(t.case_labels)
    a, b = analyse_detection(t), analyse_detection(back)
    assert pick(b["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)["estimate"] == pytest.approx(
        pick(a["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)["estimate"])
    assert b["findings"] == a["findings"]


def test_an_export_without_the_two_tables_still_loads(tmp_path):
    from analysis.simulate import simulate_study, write_export
    from analysis.tables import load_tables

    write_export(simulate_study(seed=2), tmp_path)
    t = load_tables(tmp_path)
    assert t.detection_marks is None and t.case_labels is None and t.detection is None

    # The platform's export writes both tables for every study: empty, with no detection block, they are absent.
    import pandas as pd

    pd.DataFrame(columns=["assignment_id", "finding", "present", "confidence", "marked_at"]).to_csv(
        tmp_path / "detection_marks.csv", index=False)
    pd.DataFrame(columns=["case_id", "finding", "reference", "model_probability", "model_present"]).to_csv(
        tmp_path / "case_labels.csv", index=False)
    t = load_tables(tmp_path)
    assert t.detection_marks is None and t.case_labels is None and t.detection is None


def test_every_aided_condition_is_compared_with_the_unaided_one():
    t = simulate_detection_study(n_readers=3, n_cases=40, seed=9, conditions=("none", "labels", "draft",
                                                                             "labels_and_draft"))
    out = analyse_detection(t)
    pairs = {(r["first"], r["second"]) for r in out["differences"]}
    assert pairs == {("draft", "none"), ("labels", "none"), ("labels_and_draft", "none")}
    assert out["conditions"][0]["scope"] == MEAN_SCOPE  # the study-level figure comes first


def test_a_study_with_one_condition_says_there_is_no_difference_to_estimate():
    t = simulate_detection_study(n_readers=3, n_cases=40, seed=10, conditions=("labels",))
    out = analyse_detection(t)
    assert out["differences"] == [] and out["conditions"]
    assert pick(out["not_estimable"], analysis="aided minus unaided")["reason"] == \
        "the study has no unaided (ai_shown none) condition"


def test_a_reader_without_the_unaided_condition_is_left_out_of_the_difference_and_said_so():
    t = simulate_detection_study(n_readers=4, n_cases=40, seed=11)
    a = t.assignments
    gone = a.loc[a["reader_id"].eq("R01") & a["ai_shown"].eq("none"), "assignment_id"]
    frames = {n: getattr(t, n) for n in ("answers", "drafts", "cases", "readers", "case_labels")}
    frames["assignments"] = a.loc[~a["assignment_id"].isin(gone)]
    frames["detection_marks"] = t.detection_marks.loc[~t.detection_marks["assignment_id"].isin(gone)]
    out = analyse_detection(tables_from_frames(frames, t.meta))
    row = pick(out["differences"], scope=MEAN_SCOPE, fom="auc", conclusion=RRRC)
    assert row["n_readers"] == 3 and row["readers_dropped"] == "1 reader(s) without both conditions left out"


def test_marks_without_case_labels_say_there_is_no_reference():
    d, *_ = small_study()
    frames, meta = detection_frames(d, ["F1", "F2"])
    del frames["case_labels"]
    out = analyse_detection(tables_from_frames(frames, meta))
    assert out["averaged_findings"] == [] and out["conditions"] == [] and out["model"] == []
    assert any("no case_labels" in r["reason"] for r in out["not_estimable"])


def test_run_analysis_reports_the_detection_section_with_its_figure_methods_and_references(tmp_path):
    import json

    from analysis import run_analysis, write_report
    from analysis.methods_text import cited

    result = run_analysis(simulate_detection_study(n_readers=4, n_cases=60, seed=12))
    det = result.results["detection"]
    assert det["averaged_findings"] and det["differences"]
    for name in ("detection_findings", "detection_conditions", "detection_differences", "detection_model",
                 "detection_readers"):
        assert not result.tables[name].empty, name
    assert result.tables["detection_differences"].iloc[0]["scope"] == MEAN_SCOPE
    page = write_report(result, tmp_path).read_text()
    assert page.index("id='detection'") < page.index('id="fig-detection_readers"')
    assert "Aided minus unaided" in page and "The model alone on the same cases" in page
    assert "Chakraborty 2017" in result.methods and "Hanley & McNeil 1982" in result.methods
    refs = " ".join(cited(result.results))
    assert "Standalone CAD vs. radiologists" in refs and "Obuchowski, N. A., & Rockette" in refs
    json.loads((tmp_path / "results.json").read_text())  # every number JSON-safe


def test_the_models_jackknife_interval_of_one_finding_is_delongs_to_within_two_percent():
    """The model alone uses the jackknife (it also serves the mean over findings); for one finding's AUC it is
    DeLong's variance (checked against MRMCaov in test_mrmc.py) to about 1% at 100 cases."""
    t = simulate_detection_study(n_readers=2, n_cases=100, seed=13)
    out = analyse_detection(t)
    reads = detection_reads(t)
    for finding in t.detection.findings:
        one = reads.loc[reads["finding"].eq(finding)].drop_duplicates("case_id").assign(
            reader_id="model", condition="model", reference=lambda x: x["reference"].astype(int))
        delong = or_hillis(one, "model_probability", "condition", "reader_id", "case_id", fom="auc",
                           truth="reference", cov="delong").readers.iloc[0]
        jack = pick(out["model"], scope=finding, fom="auc")
        assert jack["estimate"] == pytest.approx(delong["estimate"])
        assert jack["se"] == pytest.approx(delong["se"], rel=0.02)
