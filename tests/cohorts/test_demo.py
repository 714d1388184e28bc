"""The demo cohort: valid, deterministic, and covering the formats and texts the platform must handle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cohorts import build_demo_cohort, load_image, load_manifest, render, validate_manifest

SMALL = (300, 360)  # the benchmark case shrunk so tests stay fast


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return build_demo_cohort(tmp_path_factory.mktemp("demo"), large_case_size=SMALL)


def test_demo_manifest_is_valid(demo):
    assert validate_manifest(demo) == []
    cohort = load_manifest(demo)
    assert [c.case_id for c in cohort.cases] == [f"demo-{i:03d}" for i in range(1, 13)]


def test_demo_is_deterministic_for_a_seed(demo, tmp_path):
    again = build_demo_cohort(tmp_path / "again", large_case_size=SMALL)
    assert digests(again.parent) == digests(demo.parent)
    other = build_demo_cohort(tmp_path / "other", seed=1, large_case_size=SMALL)
    assert digests(other.parent)["manifest.csv"] == digests(demo.parent)["manifest.csv"]  # same texts and paths
    assert digests(other.parent)["images/demo-001_pa.dcm"] != digests(demo.parent)["images/demo-001_pa.dcm"]


def test_demo_covers_the_required_mix(demo):
    cohort = load_manifest(demo)
    images = [i for c in cohort.cases for i in (*c.images, *c.priors)]
    assert {i.format for i in images} == {"png", "jpeg", "dicom"}
    dicoms = [pydicom.dcmread(i.path) for i in images if i.format == "dicom"]
    assert {d.PhotometricInterpretation for d in dicoms} == {"MONOCHROME1", "MONOCHROME2"}
    assert all(d.BitsAllocated == 16 and "WindowCenter" in d and "WindowWidth" in d for d in dicoms)
    assert all((float(d.RescaleSlope), float(d.RescaleIntercept)) != (1.0, 0.0) for d in dicoms)
    assert all(d.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian for d in dicoms)
    assert 16 in {i.bits_stored for i in images} and 12 in {i.bits_stored for i in images}
    first = cohort.cases[0]
    assert [i.view for i in first.images] == ["PA", "LATERAL"] and {i.format for i in first.images} == {"dicom"}
    assert any(c.priors for c in cohort.cases[1:]) and first.priors
    assert sum(bool(c.mc_items) for c in cohort.cases) >= 3
    model = [d for c in cohort.cases for d in c.drafts if d.source == "model"]
    assert len(model) == 12 and all("\\boxed{" in d.raw_output and d.raw_output.rstrip().endswith("}") for d in model)
    assert any("**Final Answer:**" in d.raw_output for d in model) and any("**Final Answer:**" not in d.raw_output for d in model)
    assert all(d.model_id == "StanfordAIMI/CheXOne" and d.mode == "reasoning" for d in model)
    assert sum(d.source == "reader" for c in cohort.cases for d in c.drafts) >= 8
    assert all(c.indication and c.reference_findings for c in cohort.cases)
    item = first.mc_items[0]
    assert item.answer in item.options and f"\\boxed{{{item.answer}}}" in item.model_output


def test_demo_images_look_like_chest_films(demo):
    # Frontal film: lungs (darker) either side of a brighter mediastinum, in display terms.
    cohort = load_manifest(demo)
    for case in cohort.cases:
        for record in case.images:
            if record.view == "LATERAL":
                continue
            shown = np.asarray(render(load_image(record.path)), dtype=float)
            h, w = shown.shape
            band = shown[int(h * 0.35): int(h * 0.45)]
            left_lung, centre, right_lung = band[:, int(w * 0.2)].mean(), band[:, w // 2].mean(), band[:, int(w * 0.8)].mean()
            assert centre > left_lung + 40 and centre > right_lung + 40, (case.case_id, record.relpath)


def test_more_cases_than_scenarios(tmp_path):
    manifest = build_demo_cohort(tmp_path, n_cases=14, large_case_size=(64, 80))
    cases = load_manifest(manifest).cases
    assert len(cases) == 14 and cases[13].case_id == "demo-014"
    with pytest.raises(ValueError):
        build_demo_cohort(tmp_path / "none", n_cases=0)


@pytest.mark.slow
def test_full_size_demo_has_the_benchmark_case(tmp_path):
    import time

    start = time.perf_counter()
    manifest = build_demo_cohort(tmp_path)
    elapsed = time.perf_counter() - start
    first = load_manifest(manifest).cases[0]
    assert [(i.width, i.height, i.bits_stored) for i in first.images] == [(2500, 3000, 16)] * 2
    assert elapsed < 20  # brief: < 10 s on the 2-core machine; generous against noise


# What a reference text says about each CheXpert finding, for checking the demo's labels against its texts: a
# finding is reported when a word for it stands outside a negation ("No ...", "without ...") in some sentence.
FINDING_WORDS = {
    "Enlarged Cardiomediastinum": r"widened mediastinum|mediastinal widening|enlarged cardiomediastinal",
    "Cardiomegaly": r"cardiomegaly|enlarged cardiac|heart is enlarged",
    "Lung Lesion": r"nodule|mass\b|lesion",
    "Lung Opacity": r"opacit|consolidation|haziness",
    "Edema": r"edema",
    "Consolidation": r"consolidation",
    "Pneumonia": r"pneumonia",
    "Atelectasis": r"atelectasis",
    "Pneumothorax": r"pneumothorax",
    "Pleural Effusion": r"effusion",
    "Pleural Other": r"pleural thickening|fibrothorax",
    "Fracture": r"fracture",
    "Support Devices": r"\b(tube|catheter|pacemaker|device)",
}


def reported(text: str) -> set[str]:
    import re

    found = set()
    for sentence in re.split(r"\.\s+", text.lower()):
        affirmed = re.split(r"\b(?:no|without)\b", sentence)[0]
        found |= {name for name, words in FINDING_WORDS.items() if re.search(words, affirmed)}
    return found


def test_reported_reads_negations():
    assert reported("Left lower lobe consolidation, likely pneumonia. No large effusion.") == {
        "Lung Opacity", "Consolidation", "Pneumonia"}
    assert reported("The lungs are clear without focal consolidation, pleural effusion or pneumothorax.") == set()


def test_demo_reference_labels_agree_with_its_texts(demo):
    from cohorts import CHEXPERT_FINDINGS, reference_standard

    for case in load_manifest(demo).cases:
        labels = reference_standard(case, CHEXPERT_FINDINGS)
        assert list(case.reference_labels) == list(CHEXPERT_FINDINGS) and not case.reference_labels_listed
        present = {name for name, value in labels.items() if value == 1}
        not_known = {name for name, value in labels.items() if value is None}
        text = case.reference_findings
        assert present - {"No Finding"} == reported(text) - not_known, (case.case_id, text)
        assert (labels["No Finding"] == 1) == (present == {"No Finding"}), case.case_id
        assert not_known <= {"Cardiomegaly"} and (not not_known or "difficult to assess" in text), case.case_id
    assert sum(case.reference_labels["No Finding"] == 1 for case in load_manifest(demo).cases) == 4


def test_demo_model_labels_are_imperfect_but_informative(demo):
    from cohorts import CHEXPERT_FINDINGS, check_labels

    cohort = load_manifest(demo)
    assert check_labels(cohort, CHEXPERT_FINDINGS, need_reference=True, need_model=True) == []
    pairs = [(case.reference_labels[name], case.model_labels[name]) for case in cohort.cases
             for name in CHEXPERT_FINDINGS if case.reference_labels[name] is not None]
    positives = [p for truth, p in pairs if truth == 1]
    negatives = [p for truth, p in pairs if truth == 0]
    # The AUC as the Mann-Whitney probability that a positive outscores a negative (ties count half).
    auc = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives) / (len(positives) * len(negatives))
    assert 0.8 <= auc <= 0.9, auc
    assert all(0.0 <= p <= 1.0 for _, p in pairs)
    assert any(p > 0.5 for p in negatives) and any(p < 0.5 for p in positives)  # a model that errs
