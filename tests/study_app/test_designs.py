"""The design parser: the shipped CheXOne design, and every kind of bad design file refused by name."""

import pytest

from study_app.designs import DesignError, load_design, parse_design, shipped_design_path

MINIMAL = """
[study]
name = "Tiny"
[roles.resident]
[[arms]]
key = "scratch"
task = "write"
role = "resident"
"""


def test_shipped_chexone_design_has_the_protocol_arms():
    design = load_design(shipped_design_path("chexone"))
    assert [a.key for a in design.arms] == [
        "resident_scratch", "resident_edit_model", "attending_edit_resident",
        "attending_edit_model", "attending_compare", "reasoning_review",
    ]
    compare = design.arm("attending_compare")
    assert compare.task == "compare"
    assert [s.origin for s in compare.draft_sources] == ["model", "reader"]
    assert design.arm("attending_edit_resident").draft_sources[0].arm == "resident_scratch"
    assert design.distinct_case_per_reader and not design.allow_going_back
    edit_reason = design.questions["edit_reason"]
    assert [o.value for o in edit_reason.options] == ["none", "content", "style", "both"]
    likert = design.questions["writing_efficiency"]
    assert [int(o.value) for o in likert.options] == [10, 5, 0, -5, -10]
    assert [o.label for o in likert.options][0] == "Strongly agree"
    assert design.questions["preference"].options[2].value == "equivalent"


def test_design_hash_is_of_the_file_text():
    a = parse_design(MINIMAL)
    b = parse_design(MINIMAL + "\n# comment\n")
    assert a.sha256 != b.sha256 and len(a.sha256) == 64


def test_defaults_of_a_minimal_design():
    design = parse_design(MINIMAL)
    arm = design.arm("scratch")
    assert arm.readers_per_case == 1 and arm.cases is None and arm.timed
    assert design.idle_threshold_s == 60 and design.worklist_order == "random"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace('task = "write"', 'task = "dictate"'), "arms[1] (scratch).task: 'dictate' is not one of"),
        (lambda t: t.replace('role = "resident"', 'role = "fellow"'), "role: 'fellow' is not a role"),
        (lambda t: t.replace('key = "scratch"', 'key = "Scratch Arm"'), "is not a valid key"),
        (lambda t: t + 'readers_per_case = 0\n', "readers_per_case: must be at least 1"),
        (lambda t: t + 'cases = "some"\n', 'cases: expected "all" or a positive number'),
        (lambda t: t + 'draft = "model"\n', "a 'write' arm takes 0 draft source(s)"),
        (lambda t: t + 'questions = ["nope"]\n', "'nope' is not declared under [questions]"),
        (lambda t: t + 'colour = "red"\n', "unknown key(s) colour"),
        (lambda t: t.replace('name = "Tiny"', 'name = ""'), "study.name: must not be empty"),
        (lambda t: t + "[[arms]]\nkey = \"scratch\"\ntask = \"write\"\nrole = \"resident\"\n", "duplicate arm key(s) scratch"),
        (lambda t: t + "[[arms]]\nkey = \"e\"\ntask = \"edit\"\nrole = \"resident\"\ndraft = \"arm:ghost\"\n",
         "draft source arm 'ghost' does not exist"),
        (lambda t: t + "[[arms]]\nkey = \"c\"\ntask = \"compare\"\nrole = \"resident\"\ndrafts = [\"model\", \"model\"]\n",
         "one model draft and one reader draft"),
        (lambda t: t.replace("[study]", "[studdy]"), "unknown key(s) studdy"),
        (lambda t: t + "= broken", "not valid TOML"),
        (lambda t: t.replace('name = "Tiny"', 'name = "Tiny"\nidle_threshold_s = 1'), "idle_threshold_s"),
    ],
)
def test_bad_designs_are_refused_with_the_key_named(change, message):
    with pytest.raises(DesignError) as error:
        parse_design(change(MINIMAL))
    assert message in str(error.value)


def test_compare_arm_must_ask_preference():
    text = MINIMAL + (
        '[[arms]]\nkey = "c"\ntask = "compare"\nrole = "resident"\ndrafts = ["model", "arm:scratch"]\n'
    )
    with pytest.raises(DesignError, match="must ask 'preference'"):
        parse_design(text)


def test_likert_question_has_fixed_scale():
    text = MINIMAL.replace("[roles.resident]", '[roles.resident]\n[questions.q]\nkind = "likert"\nlabel = "L"\noptions = []')
    with pytest.raises(DesignError, match="fixed 5-point scale"):
        parse_design(text)


def test_unreadable_and_non_utf8_design_files(tmp_path):
    with pytest.raises(DesignError, match="cannot read the design file"):
        load_design(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("name = 'Caf\xe9'".encode("latin-1"))
    with pytest.raises(DesignError, match="not UTF-8"):
        load_design(bad)


def test_unknown_shipped_design_lists_the_available_ones():
    with pytest.raises(DesignError, match="available: chexone"):
        shipped_design_path("nope")


TWO_EDIT_ARMS = """
[study]
name = "Two sources"
[roles.resident]
[roles.attending]
[questions.q]
kind = "likert"
label = "Q"
[[arms]]
key = "scratch"
task = "write"
role = "resident"
[[arms]]
key = "edit_reader"
task = "edit"
role = "attending"
draft = "arm:scratch"
questions = ["q"]
instructions = "Edit the draft."
[[arms]]
key = "edit_model"
task = "edit"
role = "attending"
draft = "model"
questions = ["q"]
instructions = "Edit the draft."
"""


def test_arms_of_one_task_open_in_one_round_after_their_sources():
    design = parse_design(TWO_EDIT_ARMS)
    assert {a.key: a.reading_round for a in design.arms} == {"scratch": 1, "edit_reader": 2, "edit_model": 2}
    # An explicit round may delay an arm (and its peers follow), never bring it before its sources.
    later = parse_design(TWO_EDIT_ARMS.replace('draft = "model"\n', 'draft = "model"\nround = 3\n'))
    assert {a.key: a.reading_round for a in later.arms} == {"scratch": 1, "edit_reader": 3, "edit_model": 3}


def test_a_round_that_would_tell_the_source_is_refused_with_the_reason():
    with pytest.raises(DesignError, match=r"arms \(edit_model\)\.round: declared 1, but arm 'edit_reader' of the "
                                          r"same role and task opens in round 2; it must be round 2"):
        parse_design(TWO_EDIT_ARMS.replace('draft = "model"\n', 'draft = "model"\nround = 1\n'))
    with pytest.raises(DesignError, match=r"arm 'scratch' \(round 1\) supplies its drafts"):
        parse_design(TWO_EDIT_ARMS.replace('draft = "arm:scratch"\n', 'draft = "arm:scratch"\nround = 1\n'))


@pytest.mark.parametrize("change, differing", [
    (lambda t: t.replace('instructions = "Edit the draft."', 'instructions = "Edit the AI draft."', 1), "instructions"),
    (lambda t: t.replace('questions = ["q"]\ninstructions', 'questions = []\ninstructions', 1), "questions"),
    (lambda t: t.replace('draft = "model"\n', 'draft = "model"\ntimed = false\n'), "timed"),
])
def test_same_task_arms_with_drafts_from_different_sources_must_look_alike(change, differing):
    with pytest.raises(DesignError, match=rf"both are 'edit' arms of role 'attending' with drafts from different "
                                          rf"sources, but their {differing} differ"):
        parse_design(change(TWO_EDIT_ARMS))

def test_shipped_design_pre_specifies_its_analysis():
    design = load_design(shipped_design_path("chexone"))
    plan = design.analysis_plan
    assert plan is not None and plan.source == "design"
    assert (plan.primary.role, plan.primary.reference, plan.primary.comparison) == ("resident", "write", "edit_model")
    assert plan.multiplicity == "holm" and len(plan.secondary) == 4
    assert plan.power["effect"] == 0.8
    assert parse_design(MINIMAL).analysis_plan is None  # the shipped default applies, stated as such


@pytest.mark.parametrize(
    "plan, message",
    [
        ('[analysis]\nalpha = 2\n', "analysis.alpha: expected between 0 and 0.5"),
        ('[analysis.primary]\nname = "t"\nendpoint = "time_ratio"\nrole = "fellow"\nreference = "write"\n'
         'comparison = "edit_model"\n', "analysis.primary.role: 'fellow' is not a role"),
        ('[analysis.primary]\nname = "t"\nendpoint = "time_ratio"\nrole = "resident"\nreference = "write"\n'
         'comparison = "edit_model"\n', "no arm of role 'resident' produces condition 'edit_model'"),
    ],
)
def test_bad_analysis_plans_are_refused_with_the_key_named(plan, message):
    with pytest.raises(DesignError) as error:
        parse_design(MINIMAL.replace("[[arms]]", plan + "[[arms]]", 1) if plan.startswith("[analysis]\nalpha")
                     else MINIMAL + plan)
    assert message in str(error.value)
