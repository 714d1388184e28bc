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


def with_question(body: str) -> str:
    return MINIMAL.replace("[roles.resident]", "[roles.resident]\n[questions.q]\n" + body)


def test_a_likert_question_without_a_scale_is_the_chexone_five_points():
    q = parse_design(with_question('kind = "likert"\nlabel = "L"')).questions["q"]
    assert [(o.value, o.label) for o in q.options] == [("10", "Strongly agree"), ("5", "Agree"), ("0", "Neutral"),
                                                       ("-5", "Disagree"), ("-10", "Strongly disagree")]
    assert q.scoring()["min"] == -10 and q.scoring()["max"] == 10 and q.scoring()["neutral"] == 0


def test_a_seven_point_likert_scale_with_labels_is_scored_one_to_seven():
    labels = ", ".join(f'"level {i}"' for i in range(1, 8))
    q = parse_design(with_question(f'kind = "likert"\nlabel = "L"\npoints = 7\nlabels = [{labels}]')).questions["q"]
    assert [o.value for o in q.options] == ["1", "2", "3", "4", "5", "6", "7"]
    assert q.options[0].label == "level 1"
    assert q.scoring() == {"kind": "likert", "values": ["1", "2", "3", "4", "5", "6", "7"],
                           "labels": {str(i): f"level {i}" for i in range(1, 8)}, "min": 1.0, "max": 7.0,
                           "neutral": 4.0}


def test_a_likert_scale_given_as_scored_options_keeps_their_order_and_neutral():
    q = parse_design(with_question(
        'kind = "likert"\nlabel = "L"\nneutral = 1\noptions = [{score = 3, label = "Always"}, '
        '{score = 1.5, label = "Sometimes"}, {score = 0, label = "Never"}]')).questions["q"]
    assert [(o.value, o.label) for o in q.options] == [("3", "Always"), ("1.5", "Sometimes"), ("0", "Never")]
    assert q.scoring()["neutral"] == 1.0


def test_a_visual_analogue_question_has_its_range_and_anchors():
    q = parse_design(with_question('kind = "vas"\nlabel = "Confidence"\nmin_label = "none"\nmax_label = "certain"'))\
        .questions["q"]
    assert q.numeric and q.options == ()
    assert q.scoring() == {"kind": "vas", "values": [], "labels": {}, "min": 0.0, "max": 100.0, "step": 1.0,
                           "neutral": 50.0, "min_label": "none", "max_label": "certain"}


@pytest.mark.parametrize("body, message", [
    ('kind = "likert"\nlabel = "L"\noptions = []', "a Likert scale has 2 to 21 points"),
    ('kind = "likert"\nlabel = "L"\npoints = 7\nlabels = ["a", "b"]', "give 7 non-empty labels"),
    ('kind = "likert"\nlabel = "L"\npoints = 101\nlabels = []', 'use kind = "vas" for a 0-100 scale'),
    ('kind = "likert"\nlabel = "L"\npoints = 3\nlabels = ["a", "b", "c"]\nscores = [1, 1, 2]', "the same score"),
    ('kind = "likert"\nlabel = "L"\npoints = 3\nlabels = ["a", "b", "c"]\nneutral = 9', "outside the scale"),
    ('kind = "likert"\nlabel = "L"\npoints = 2\nlabels = ["a", "b"]\noptions = []', "not both"),
    ('kind = "vas"\nlabel = "V"\nmin = 10\nmax = 10', "must be below max"),
    ('kind = "vas"\nlabel = "V"\noptions = []', "unknown key(s) options"),
    ('kind = "slider"\nlabel = "V"', "'slider' is not one of choice, likert, vas"),
])
def test_bad_scales_are_refused_by_name(body, message):
    with pytest.raises(DesignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_design(with_question(body))


TWO_WRITE_ARMS = MINIMAL + """
[[arms]]
key = "second"
task = "write"
role = "resident"
"""


@pytest.mark.parametrize("extra, message", [
    ('same_cases_as = "nope"', "'nope' (same_cases_as / disjoint_from) is not an arm"),
    ('same_cases_as = "second"', "an arm cannot be sampled relative to itself"),
    ('same_cases_as = "scratch"\ncases = 3', "leave out 'cases'"),
    ('same_cases_as = "scratch"\ndisjoint_from = ["scratch"]', "either the same cases as another arm or cases disjoint"),
])
def test_case_sampling_across_arms_is_checked(extra, message):
    with pytest.raises(DesignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_design(TWO_WRITE_ARMS + extra + "\n")


def test_a_cycle_of_case_sampling_is_refused():
    text = TWO_WRITE_ARMS.replace('key = "scratch"\ntask = "write"\nrole = "resident"',
                                  'key = "scratch"\ntask = "write"\nrole = "resident"\ndisjoint_from = ["second"]')
    with pytest.raises(DesignError, match="form a cycle"):
        parse_design(text + 'same_cases_as = "scratch"\n')


def test_unreadable_and_non_utf8_design_files(tmp_path):
    with pytest.raises(DesignError, match="cannot read the design file"):
        load_design(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("name = 'Caf\xe9'".encode("latin-1"))
    with pytest.raises(DesignError, match="not UTF-8"):
        load_design(bad)


def test_unknown_shipped_design_lists_the_available_ones():
    with pytest.raises(DesignError, match=r"available: chexone, ai_detection, crossed, crossover_washout, "):
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


def test_the_shipped_example_design_shares_and_separates_case_samples_and_has_its_own_scales():
    from study_app.allocation import CaseSlot, ReaderSlot, allocate

    design = load_design(shipped_design_path("crossed"))
    assert design.arm("aided").same_cases_as == "unaided"
    assert design.arm("resident_aided").disjoint_from == ("unaided",)
    assert design.questions["confidence"].scoring()["neutral"] == 4.0
    assert design.questions["image_quality"].kind == "vas"
    readers = [ReaderSlot(f"rad{i}", "radiologist") for i in range(4)] + [ReaderSlot(f"res{i}", "resident")
                                                                         for i in range(2)]
    allocation = allocate(design, [CaseSlot(f"c{i:02d}", False) for i in range(12)], readers, seed=7)
    assert allocation.arm_cases["aided"] == allocation.arm_cases["unaided"] and len(allocation.arm_cases["aided"]) == 8
    assert not set(allocation.arm_cases["resident_aided"]) & set(allocation.arm_cases["unaided"])
    assert [e.item for _, e in design.analysis_plan.endpoints()] == [None, "confidence", "image_quality"]
