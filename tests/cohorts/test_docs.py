"""docs/cohorts.md stays true: every column is documented and the examples are valid manifests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cohorts import CHEXPERT_FINDINGS, COLUMNS, check_labels, load_manifest, normalise_view, write_dicom

DOC = Path(__file__).resolve().parents[2] / "docs" / "cohorts.md"


def block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert match, f"no {language} example in {DOC.name}"
    return match.group(1)


def test_every_column_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for column in COLUMNS:
        assert f"| `{column}` |" in text, column


def test_every_documented_view_alias_is_accepted():
    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (`[^|]+`) \| `(PA|AP|LATERAL)` \|$", text, re.M)
    assert len(rows) == 3
    for aliases, view in rows:
        for alias in re.findall(r"`([^`]+)`", aliases):
            assert normalise_view(alias) == view, alias


@pytest.mark.parametrize("language, name", [("csv", "manifest.csv"), ("json", "manifest.jsonl")])
def test_documented_examples_load(tmp_path, files, language, name):
    import numpy as np

    images = tmp_path / "images"
    images.mkdir()
    stored = np.full((40, 32), 1000, dtype=np.uint16)
    for rel in ("c001_pa.dcm", "c001_lat.dcm"):
        write_dicom(images / rel, stored, bits_stored=12, window=(1000, 400))
    for rel in ("c001_prior.png", "c002_ap.png"):
        (images / rel).write_bytes((files.root / "img/pa.png").read_bytes())
    (tmp_path / name).write_text(block(language), encoding="utf-8")
    cohort = load_manifest(tmp_path / name)
    assert [c.case_id for c in cohort.cases] == ["c001", "c002"]
    assert cohort.cases[0].mc_items[0].answer == "B"
    c001, c002 = cohort.cases
    assert c001.reference_labels == {"Lung Opacity": 1, "Pneumonia": 1, "Pleural Effusion": 0, "Cardiomegaly": None}
    assert c001.model_labels["Lung Opacity"] == 0.91 and not c001.reference_labels_listed
    assert c002.reference_labels == {"Cardiomegaly": 1, "Pleural Effusion": 1} and c002.reference_labels_listed
    assert check_labels(cohort, CHEXPERT_FINDINGS, need_reference=False, need_model=False) == []


def test_documented_label_problems_are_the_messages_given(files):
    # The findings section quotes check_labels' messages; they must stay what the function says.
    text = DOC.read_text(encoding="utf-8")
    rows = [
        files.row("c001", reference_labels="Lung Opacity"),
        files.row("c002"),
        files.row("c003", reference_labels='{"Cardiomegally": 1}'),
    ]
    cohort = load_manifest(files.csv(rows))
    (missing,) = [p for p in check_labels(cohort, CHEXPERT_FINDINGS, need_reference=False, need_model=True) if p.row == 2]
    assert f"`{missing}`" in text
    typo = check_labels(cohort, CHEXPERT_FINDINGS, need_reference=False, need_model=False)[0]
    assert f"`{typo}`" in text
