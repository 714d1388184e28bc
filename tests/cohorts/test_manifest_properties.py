"""Property tests: whatever a manifest or image holds, validation reports problems and never crashes."""

from __future__ import annotations

import csv
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts import COLUMNS, ManifestError, load_manifest, validate_manifest

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_names = itertools.count()

# Cells that are plausible, nearly plausible, or junk: the interesting bugs live near valid input.
cell = st.one_of(
    st.sampled_from([
        "", " ", "PA:img/pa.png", "lat:img/lat.png;PA:img/pa.png", "AP:img/ap.dcm", "PA:../x.png", "PA:/etc/passwd",
        "XX:img/pa.png", "PA:img/missing.png", "PA:img", "A=Yes|B=No", "A=Yes", "{\"A\": 1}", "[1, 2]", "reasoning",
        "instruction", "B", "pa", "c1", "c1", "\\boxed{x}", "[{\"question\": \"q\", \"options\": [\"a\", \"b\"]}]", "null",
    ]),
    st.text(max_size=30),
    st.text(alphabet=";:|=/\\.{}[]\"', PAaLl", max_size=20),
)


def write_csv(root, header, rows):
    path = root / f"m{next(_names)}.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def check_contract(path):
    problems = validate_manifest(path)
    assert all(p.message for p in problems)
    assert all(p.row is None or p.row >= 1 for p in problems)
    assert len(set(problems)) == len(problems), "the same problem reported twice"
    if problems:
        with pytest.raises(ManifestError) as caught:
            load_manifest(path)
        assert caught.value.problems == problems
    else:
        cohort = load_manifest(path)
        assert len({case.case_id for case in cohort.cases}) == len(cohort.cases)
    return problems


@SETTINGS
@given(
    extra=st.lists(st.sampled_from(COLUMNS[3:] + ("notes", "Indicaton")), max_size=4, unique=True),
    data=st.data(),
)
def test_random_csv_cells_never_crash(files, extra, data):
    header = ["case_id", "images", "indication", *extra]
    n_rows = data.draw(st.integers(0, 4))
    rows = [[data.draw(cell) for _ in header] for _ in range(n_rows)]
    check_contract(write_csv(files.root, header, rows))


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | cell,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["view", "path", "question", "options", "answer", "x"]), children, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(rows=st.lists(st.dictionaries(st.sampled_from(COLUMNS + ("bogus",)), json_value, max_size=6), max_size=3))
def test_random_jsonl_values_never_crash(files, rows):
    for row in rows:
        row.setdefault("case_id", "c1")
    path = files.root / f"m{next(_names)}.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    check_contract(path)


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_random_manifest_bytes_never_crash(files, data, suffix):
    path = files.raw(f"m{next(_names)}{suffix}", data)
    check_contract(path)


@SETTINGS
@given(
    prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\x00" * 128 + b"DICM"]),
    body=st.binary(min_size=0, max_size=400),
    name=st.sampled_from(["x.png", "x.jpg", "x.dcm", "x.bin"]),
)
def test_random_image_bytes_are_reported_not_raised(files, prefix, body, name):
    rel = f"junk/{next(_names)}_{name}"
    files.raw(rel, prefix + body)
    problems = check_contract(files.csv([files.row("c1", images=f"PA:{rel}")], name=f"m{next(_names)}.csv"))
    assert [(p.row, p.column) for p in problems] == [(1, "images")]


@SETTINGS
@given(fraction=st.floats(0.0, 0.999))
def test_truncated_dicom_is_always_reported(files, fraction):
    data = (files.root / "img/ap.dcm").read_bytes()
    rel = f"cut/{next(_names)}.dcm"
    files.raw(rel, data[: int(len(data) * fraction)])
    problems = check_contract(files.csv([files.row("c1", images=f"AP:{rel}")], name=f"m{next(_names)}.csv"))
    assert [(p.row, p.column) for p in problems] == [(1, "images")]
