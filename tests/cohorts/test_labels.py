"""Findings labels: reference_labels and model_labels read from CSV and JSONL, each refusal located, and the
cohort checked against a study's list of findings."""

from __future__ import annotations

import json

import pytest

from cohorts import (
    CHEXPERT_FINDINGS,
    check_labels,
    load_manifest,
    model_probabilities,
    reference_standard,
    validate_manifest,
)


def only(problems):
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def csv_problems(files, **cells):
    return validate_manifest(files.csv([files.row("c1"), files.row("c2", **cells)]))


def jsonl_problems(files, **values):
    return validate_manifest(files.jsonl([files.row("c1"), files.row("c2", **values)]))


# --------------------------------------------------------------------------- accepted


def test_csv_object_and_listed_forms_load(files):
    rows = [
        files.row("c1", reference_labels='{"Cardiomegaly": 1, "Edema": 0, "Pneumonia": null, "Fracture": true}',
                  model_labels='{"Cardiomegaly": 0.9, "Edema": 0, "Pneumonia": 1}'),
        files.row("c2", reference_labels=" Cardiomegaly ; Pleural Effusion;", model_labels=""),
        files.row("c3"),
    ]
    c1, c2, c3 = load_manifest(files.csv(rows)).cases
    assert c1.reference_labels == {"Cardiomegaly": 1, "Edema": 0, "Pneumonia": None, "Fracture": 1}
    assert not c1.reference_labels_listed
    assert c1.model_labels == {"Cardiomegaly": 0.9, "Edema": 0.0, "Pneumonia": 1.0}
    assert c2.reference_labels == {"Cardiomegaly": 1, "Pleural Effusion": 1} and c2.reference_labels_listed
    assert c2.model_labels == {}
    assert (c3.reference_labels, c3.reference_labels_listed, c3.model_labels) == ({}, False, {})


def test_jsonl_takes_objects_and_the_listed_text(files):
    rows = [
        files.row("j1", reference_labels={"Edema": 1.0, "Atelectasis": 0.0, "Fracture": False},
                  model_labels={"Edema": 0.75}),
        files.row("j2", reference_labels="Edema"),
        files.row("j3", reference_labels='{"Edema": 0}', model_labels=None),
    ]
    j1, j2, j3 = load_manifest(files.jsonl(rows)).cases
    assert j1.reference_labels == {"Edema": 1, "Atelectasis": 0, "Fracture": 0}
    assert all(type(v) is int for v in j1.reference_labels.values())
    assert j1.model_labels == {"Edema": 0.75}
    assert j2.reference_labels == {"Edema": 1} and j2.reference_labels_listed
    assert j3.reference_labels == {"Edema": 0} and j3.model_labels == {}


def test_an_empty_object_is_no_labels_and_a_case_stays_hashable(files):
    (case,) = load_manifest(files.csv([files.row("c1", reference_labels="{}", model_labels=" { } ")])).cases
    assert (case.reference_labels, case.model_labels) == ({}, {})
    labelled = load_manifest(files.csv([files.row("c1", reference_labels="Edema")], "other.csv")).cases[0]
    assert hash(labelled) is not None and labelled != case


def test_manifest_hash_is_the_files_bytes(files):
    # The new columns change nothing for a manifest without them: the hash is of the file as written.
    import hashlib

    manifest = files.csv([files.row("c1")])
    assert load_manifest(manifest).manifest_sha256 == hashlib.sha256(manifest.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- refused, with row and column

REFERENCE_REFUSALS = [
    ('["Edema"]', "must be a JSON object"),
    ("{Edema: 1}", "invalid JSON object"),
    ('{"": 1}', "a finding name is empty"),
    ('{"   ": 1}', "a finding name is empty"),
    (json.dumps({"x" * 65: 1}), "65 characters long; at most 64"),
    ('{"Edema": 1, "Edema": 0}', "'Edema' is given twice"),
    ('{"Pleural Effusion": 1, "pleural  effusion": 0}', "given twice (also as 'Pleural Effusion'"),
    ('{"Edema": 2}', "must be 1, 0, true, false or null (not known), got 2"),
    ('{"Edema": -1}', "map CheXpert's uncertain -1"),
    ('{"Edema": "1"}', "got text '1' (write it without quotes)"),
    ('{"Edema": 0.5}', "got 0.5"),
    ('{"Edema": [1]}', "got a list"),
    ("Edema; edema", "given twice"),
    ("Edema: 1; Cardiomegaly: 0", "is not a finding name: list only the findings present"),
    ("Edema; " + "y" * 70, "70 characters long"),
]


@pytest.mark.parametrize("cell, words", REFERENCE_REFUSALS)
def test_reference_refusals_in_csv(files, cell, words):
    problem = only(csv_problems(files, reference_labels=cell))
    assert (problem.row, problem.column) == (2, "reference_labels") and words in problem.message, str(problem)


MODEL_REFUSALS = [
    ('["Edema"]', "must be a JSON object"),
    ("Edema; Cardiomegaly", "must be a JSON object of finding -> probability"),
    ('{"Edema": 1.5}', "must be a number from 0 to 1, got 1.5"),
    ('{"Edema": -0.1}', "got -0.1"),
    ('{"Edema": NaN}', "got nan"),
    ('{"Edema": Infinity}', "got inf"),
    ('{"Edema": "0.5"}', "got text '0.5'"),
    ('{"Edema": true}', "got true/false"),
    ('{"Edema": null}', "got null"),
    ('{"Edema": 0.1, "EDEMA": 0.2}', "given twice"),
    ('{"": 0.1}', "a finding name is empty"),
    (json.dumps({"z" * 65: 0.5}), "at most 64"),
]


@pytest.mark.parametrize("cell, words", MODEL_REFUSALS)
def test_model_refusals_in_csv(files, cell, words):
    problem = only(csv_problems(files, model_labels=cell))
    assert (problem.row, problem.column) == (2, "model_labels") and words in problem.message, str(problem)


@pytest.mark.parametrize(
    "column, value, words",
    [
        ("reference_labels", ["Edema"], "or the findings present separated by ';', e.g. Cardiomegaly; Edema; got a list"),
        ("reference_labels", 1, "got a number"),
        ("reference_labels", {"Edema": "yes"}, "got text 'yes'"),
        ("model_labels", {"Edema": 2}, "got 2"),
        ("model_labels", {"Edema": float("nan")}, "got nan"),
        ("model_labels", "Edema", "must be a JSON object"),
    ],
)
def test_refusals_in_jsonl(files, column, value, words):
    problem = only(jsonl_problems(files, **{column: value}))
    assert (problem.row, problem.column) == (2, column) and words in problem.message, str(problem)


def test_a_key_given_twice_on_a_jsonl_line_is_refused(files):
    # json.loads would keep the last value; the line is written by hand to hold the same key twice.
    line = json.dumps(files.row("c1"))[:-1] + ', "model_labels": {"Edema": 0.2, "Edema": 0.9}}'
    problem = only(validate_manifest(files.jsonl([line])))
    assert (problem.row, problem.column) == (1, "model_labels") and "'Edema' is given twice" in problem.message


def test_every_bad_label_is_reported_in_one_pass(files):
    problems = csv_problems(files, reference_labels='{"Edema": 3, "Fracture": "no"}', model_labels='{"Edema": 7}')
    assert [(p.row, p.column) for p in problems] == [(2, "reference_labels")] * 2 + [(2, "model_labels")]


# --------------------------------------------------------------------------- against the study's list


@pytest.fixture
def labelled(files):
    rows = [
        files.row("c1", reference_labels="Cardiomegaly", model_labels='{"cardiomegaly": 0.8, "Edema": 0.1}'),
        files.row("c2", reference_labels='{"Cardiomegally": 1, "Edema": null}', model_labels='{"Edema": 0.3}'),
        files.row("c3", reference_labels='{"Edema": 0}'),
        files.row("c4"),
    ]
    return load_manifest(files.csv(rows))


FINDINGS = ("Cardiomegaly", "Edema")


def test_check_labels_names_row_column_and_suggests(labelled):
    problems = check_labels(labelled, FINDINGS, need_reference=False, need_model=False)
    problem = only(problems)
    assert (problem.row, problem.column) == (2, "reference_labels")
    assert problem.message == "finding 'Cardiomegally' is not in the study's list; did you mean 'Cardiomegaly'?"


def test_check_labels_without_a_close_name_lists_the_findings(files):
    cohort = load_manifest(files.csv([files.row("c1", model_labels='{"Spleen": 0.5}')]))
    problem = only(check_labels(cohort, FINDINGS, need_reference=False, need_model=False))
    assert problem.column == "model_labels" and "the study's findings: Cardiomegaly, Edema" in problem.message


def test_check_labels_needs_a_reference_for_every_finding(labelled):
    problems = check_labels(labelled, FINDINGS, need_reference=True, need_model=False)
    # c1 lists the findings present (so covers both); c2's null counts as given but its misspelt name does not.
    assert [(p.row, p.column) for p in problems] == [(2, "reference_labels")] * 2 + [(3, "reference_labels"), (4, "reference_labels")]
    assert problems[1].message == "case 'c2' lacks a reference (1, 0 or null) for Cardiomegaly"
    assert problems[2].message == "case 'c3' lacks a reference (1, 0 or null) for Cardiomegaly"
    assert "case 'c4' has no reference_labels" in problems[3].message and "2 findings" in problems[3].message


def test_check_labels_needs_model_probabilities(labelled):
    problems = [p for p in check_labels(labelled, FINDINGS, need_reference=False, need_model=True) if p.column == "model_labels"]
    assert [(p.row, p.message) for p in problems] == [
        (2, "case 'c2' lacks the model's probability for Cardiomegaly"),
        (3, "case 'c3' has no model_labels; the study needs the model's probability for each of its 2 findings"),
        (4, "case 'c4' has no model_labels; the study needs the model's probability for each of its 2 findings"),
    ]


def test_a_complete_cohort_passes(files):
    cohort = load_manifest(files.csv([
        files.row("c1", reference_labels="No Finding", model_labels=json.dumps({f: 0.5 for f in CHEXPERT_FINDINGS})),
    ]))
    assert check_labels(cohort, CHEXPERT_FINDINGS, need_reference=True, need_model=True) == []


@pytest.mark.parametrize("findings", [(), ("Edema", "edema"), ("Edema", "")])
def test_a_bad_findings_list_is_the_callers_error(labelled, findings):
    with pytest.raises(ValueError):
        check_labels(labelled, findings, need_reference=True, need_model=True)


def test_labels_read_in_the_studys_spelling(labelled):
    c1, c2, c3, c4 = labelled.cases
    assert reference_standard(c1, FINDINGS) == {"Cardiomegaly": 1, "Edema": 0}  # listed: the rest absent
    assert reference_standard(c2, FINDINGS) == {"Cardiomegaly": None, "Edema": None}
    assert reference_standard(c3, FINDINGS) == {"Cardiomegaly": None, "Edema": 0}
    assert reference_standard(c4, FINDINGS) == {"Cardiomegaly": None, "Edema": None}
    assert model_probabilities(c1, FINDINGS) == {"Cardiomegaly": 0.8, "Edema": 0.1}
    assert model_probabilities(c3, FINDINGS) == {"Cardiomegaly": None, "Edema": None}


def test_chexpert_list_is_the_fourteen_observations():
    assert len(CHEXPERT_FINDINGS) == 14 == len(set(CHEXPERT_FINDINGS))
    assert CHEXPERT_FINDINGS[0] == "No Finding" and CHEXPERT_FINDINGS[-1] == "Support Devices"
