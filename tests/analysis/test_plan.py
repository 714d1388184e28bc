"""The pre-specified analysis plan: parsed with key paths in every error, round-trips, hashes and
refuses a plan changed after export."""

import copy

import pytest

from analysis.plan import (DEFAULT_PLAN_TABLE, check_plan_against_design, default_plan, parse_plan,
                           plan_from_meta, plan_sha256)


def test_default_plan_round_trips_and_is_marked_default():
    plan = default_plan()
    assert plan.source == "default" and plan.multiplicity == "holm" and plan.alpha == 0.05
    assert plan.primary.endpoint == "time_ratio" and plan.conclusion == "random_readers_random_cases"
    again = parse_plan(plan.to_dict())
    assert again.to_dict() == plan.to_dict() and again.sha256 == plan.sha256
    assert [f for f, _ in plan.endpoints()] == ["primary"] + ["secondary"] * 4 + ["sensitivity"]


def test_hash_changes_with_any_pre_specified_choice():
    a = parse_plan(DEFAULT_PLAN_TABLE)
    changed = copy.deepcopy(DEFAULT_PLAN_TABLE)
    changed["alpha"] = 0.025
    assert parse_plan(changed).sha256 != a.sha256
    assert a.sha256 == plan_sha256(a.to_dict()) and len(a.sha256) == 64


def edit(**primary):
    table = copy.deepcopy(DEFAULT_PLAN_TABLE)
    table["primary"].update(primary)
    return table


@pytest.mark.parametrize("table, message", [
    ({**DEFAULT_PLAN_TABLE, "alpha": 0.7}, "analysis.alpha: expected between 0 and 0.5"),
    ({**DEFAULT_PLAN_TABLE, "multiplicity": "hochberg"}, "analysis.multiplicity: 'hochberg' is not one of"),
    ({**DEFAULT_PLAN_TABLE, "readers": "fixed", "cases": "fixed"}, "cannot both be fixed"),
    ({**DEFAULT_PLAN_TABLE, "colour": 1}, "analysis: unknown key(s) colour"),
    ({k: v for k, v in DEFAULT_PLAN_TABLE.items() if k != "primary"}, "analysis: missing required key 'primary'"),
    (edit(endpoint="speed"), "analysis.primary.endpoint: 'speed' is not one of"),
    (edit(comparison=None), "analysis.primary: give both reference and comparison, or neither"),
    (edit(method="bootstrap"), "analysis.primary.method"),
    (edit(reference="edit_model"), "reference and comparison are the same condition"),
    (edit(item="q"), "only a likert_mean endpoint takes an item"),
    ({**DEFAULT_PLAN_TABLE, "secondary": [{"name": "x", "endpoint": "likert_mean", "role": "attending",
                                           "reference": "edit_reader", "comparison": "edit_model"}]},
     "analysis.secondary[1].item"),
    ({**DEFAULT_PLAN_TABLE, "secondary": [{"name": "x", "endpoint": "no_edit_share", "role": "attending",
                                           "reference": "edit_reader", "comparison": "edit_model",
                                           "method": "mixed_model"}]},
     "analysis.secondary[1].method: the mixed model is for time_ratio"),
    ({**DEFAULT_PLAN_TABLE, "secondary": [DEFAULT_PLAN_TABLE["primary"]]}, "endpoint name(s) used twice"),
    ({**DEFAULT_PLAN_TABLE, "power": {"readers": [1, 4]}}, "analysis.power.readers: expected a list of whole numbers"),
    (edit(endpoint="detection_auc", reference=None, comparison=None, condition="detect_labels", null=0.5),
     "analysis.primary: a detection_auc compares two conditions (reference and comparison)"),
])
def test_bad_plans_are_refused_with_the_key_path(table, message):
    table = {k: v for k, v in table.items() if v is not None}
    if "primary" in table:
        table["primary"] = {k: v for k, v in table["primary"].items() if v is not None}
    with pytest.raises(ValueError) as error:
        parse_plan(table)
    assert message in str(error.value)


def test_single_condition_likert_defaults_to_the_neutral_null():
    table = copy.deepcopy(DEFAULT_PLAN_TABLE)
    table["secondary"] = [{"name": "res_applicability", "endpoint": "likert_mean", "role": "resident",
                           "item": "indication_applicability", "condition": "edit_model"}]
    e = parse_plan(table).secondary[0]
    # The plan leaves the null to the item's own scale (0 on CheXOne's, 4 on a 1-7 scale): the export says it.
    assert e.null is None and e.condition == "edit_model" and "against the scale's neutral point" in e.describe()


def test_plan_is_checked_against_the_designs_roles_conditions_and_items():
    plan = default_plan()
    conditions = {"resident": {"write", "edit_model"}, "attending": {"edit_reader", "edit_model", "compare"}}
    check_plan_against_design(plan, conditions, {"indication_applicability"})
    with pytest.raises(ValueError, match=r"analysis.primary.role: 'resident' is not a role"):
        check_plan_against_design(plan, {"attending": conditions["attending"]}, {"indication_applicability"})
    with pytest.raises(ValueError, match=r"analysis.secondary\[1\].reference: no arm of role 'attending' produces "
                                         "condition 'edit_reader'"):
        check_plan_against_design(plan, {**conditions, "attending": {"edit_model", "compare"}},
                                  {"indication_applicability"})
    with pytest.raises(ValueError, match=r"analysis.secondary\[3\].item"):
        check_plan_against_design(plan, conditions, set())


def test_a_detection_auc_names_two_detect_conditions_of_the_design():
    primary = {"name": "auc", "endpoint": "detection_auc", "role": "attending", "reference": "detect_none",
               "comparison": "detect_labels"}
    plan = parse_plan({"primary": primary})
    assert "readers' empirical AUC of their detect marks, averaged over the study's findings" in plan.primary.describe()
    conditions = {"resident": {"write", "edit_model"}, "attending": {"detect_none", "detect_labels"}}
    check_plan_against_design(plan, conditions, set())
    with pytest.raises(ValueError, match=r"analysis.primary: an AUC is of detect reads' marks; 'edit_model' is not a "
                                         "detect condition"):
        check_plan_against_design(parse_plan({"primary": {**primary, "reference": "edit_model"}}),
                                  {"attending": {"edit_model", "detect_labels"}}, set())


def test_plan_from_meta_verifies_the_frozen_hash():
    plan = default_plan()
    meta = {"analysis_plan": plan.to_dict(), "analysis_plan_sha256": plan.sha256, "analysis_plan_source": "design"}
    assert plan_from_meta(meta).sha256 == plan.sha256 and plan_from_meta(meta).source == "design"
    tampered = copy.deepcopy(meta)
    tampered["analysis_plan"]["alpha"] = 0.1
    with pytest.raises(ValueError, match="changed after export"):
        plan_from_meta(tampered)
    assert plan_from_meta({}).source == "default"
