"""Build a synthetic demo cohort (procedural chest-radiograph-like images, texts, manifest) with no patient data."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cohorts.findings import CHEXPERT_FINDINGS

__all__ = [
    "build_demo_cohort",
    "synthetic_radiograph",
    "write_dicom",
    "write_manifest_csv",
    "DEMO_MODEL_ID",
    "LARGE_CASE_SIZE",
]

DEMO_MODEL_ID = "StanfordAIMI/CheXOne"
LARGE_CASE_SIZE = (2500, 3000)  # width x height of the two-view benchmark case
_UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's documented example root, for synthetic data


# --------------------------------------------------------------------------- pictures


def synthetic_radiograph(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    view: str = "PA",
    finding: str | None = None,
    side: str = "right",
) -> np.ndarray:
    """Draw a chest-radiograph-like picture: tissue density in 0..1, bright = dense.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the small random variations (anatomy proportions, noise).
    width, height : int
        Size in pixels.
    view : {"PA", "AP", "LATERAL"}
        Frontal views get two lung fields, mediastinum, heart, spine and ribs; the
        lateral view one lung field with the heart in front and the spine behind.
    finding : {None, "opacity", "effusion", "nodule", "edema", "cardiomegaly"}
        A synthetic abnormality to add.
    side : {"right", "left"}
        The patient's side of the finding (patient's right is on the image's left).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(height, width)``. Not anatomy: shapes that look the part
        on a screen, for demonstrating the platform.
    """
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    jitter = lambda scale: np.float32(1.0 + scale * rng.uniform(-1.0, 1.0))  # noqa: E731

    def ellipse(cx, cy, rx, ry):
        return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2

    def soft(distance, edge=0.08):
        # 1 inside (distance < 1), 0 outside, with a soft border like a real organ outline.
        return np.clip((1.0 - distance) / edge, 0.0, 1.0)

    torso = soft(ellipse(0.0, 0.55, 0.92 * jitter(0.03), 0.62), 0.15)
    density = 0.05 + 0.42 * torso + 0.1 * ys  # soft tissue thicker towards the abdomen
    lung = np.zeros((height, width), dtype=np.float32)
    if view == "LATERAL":
        lung += soft(ellipse(0.0, 0.45, 0.55 * jitter(0.05), 0.36), 0.12)
        heart = soft(ellipse(-0.35, 0.62, 0.32, 0.2), 0.25)
        spine = soft(np.abs(xs - 0.62) / 0.1 + 0 * ys, 0.4) * (ys > 0.1)
        density = density - 0.42 * lung + 0.18 * heart * lung + 0.3 * spine
    else:
        gap = 0.11 * jitter(0.1)
        for sign in (-1.0, 1.0):
            lung += soft(ellipse(sign * (gap + 0.3), 0.43, 0.32 * jitter(0.04), 0.34 * jitter(0.04)), 0.1)
        lung = np.clip(lung, 0.0, 1.0)
        # Domed diaphragm: lung ends on a curve, lower at the sides.
        dome = 0.74 + 0.1 * xs**2
        lung *= np.clip((dome - ys) / 0.02, 0.0, 1.0)
        density = density - 0.36 * lung
        # Ribs: curved bands across the lung fields.
        curve = ys - 0.16 * xs**2 + 0.04 * np.abs(xs)
        ribs = np.clip(np.sin(curve * 60.0 * jitter(0.03)) * 3.0 - 1.6, 0.0, 1.0)
        density = density + 0.1 * ribs * lung
        heart_rx = 0.3 if finding != "cardiomegaly" else 0.44
        heart = soft(ellipse(0.08, 0.63, heart_rx, 0.17), 0.25)
        mediastinum = soft(np.abs(xs) / (0.12 * jitter(0.1)) + 0 * ys, 0.5) * (ys > 0.06)
        spine = soft(np.abs(xs) / 0.06 + 0 * ys, 0.6)
        density = density + 0.22 * np.maximum(heart, mediastinum) + 0.05 * spine
        # Vascular markings: a smooth random field, strongest near the hila and fading
        # towards the periphery, as pulmonary vessels do.
        hilum = np.clip(1.0 - np.abs(xs) / 0.8, 0.0, 1.0) * np.clip(1.0 - np.abs(ys - 0.45) / 0.4, 0.0, 1.0)
        density = density + 0.07 * _smooth_field(rng, width, height, 40) * hilum * lung
        clavicle = soft(np.abs(ys - (0.12 + 0.08 * np.abs(xs))) / 0.018 + 0 * xs, 0.6) * (np.abs(xs) < 0.75)
        density = density + 0.2 * clavicle * torso

    sign = -1.0 if side == "right" else 1.0  # patient's right is the viewer's left
    if finding == "opacity":
        blob = soft(ellipse(sign * 0.42, 0.58, 0.16, 0.11), 0.9)
        density = density + 0.28 * blob * lung
    elif finding == "nodule":
        density = density + 0.25 * soft(ellipse(sign * 0.38, 0.33, 0.035, 0.03), 0.5)
    elif finding == "effusion":
        # Meniscus: fluid level rising towards the lateral chest wall.
        level = 0.62 - 0.08 * np.abs(xs - sign * 0.1)
        fluid = np.clip((ys - level) / 0.03, 0.0, 1.0) * ((xs * sign) > 0)
        density = density + 0.4 * fluid * lung
    elif finding == "edema":
        haze = soft(np.abs(xs) / 0.75 + 0 * ys, 0.9)
        density = density + 0.16 * haze * lung
    density = density + rng.standard_normal((height, width), dtype=np.float32) * np.float32(0.012)
    return np.clip(density, 0.0, 1.0).astype(np.float32)


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Random values in 0..1 that vary over about ``1/cells`` of the image (cheap: drawn small, upsampled)."""
    small = rng.random((max(2, cells * height // width), cells), dtype=np.float32)
    field = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(field, dtype=np.float32), 0.0, 1.0)


def _uid(seed: int, *parts: object) -> str:
    # Deterministic UIDs (same seed, same bytes) that cannot collide with a hospital's.
    digest = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return _UID_ROOT + str(int.from_bytes(digest[:12], "big"))


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] = (1.0, 0.0),
    view: str = "PA",
    uid_seed: tuple[object, ...] = (0,),
    signed: bool = False,
    extra: dict | None = None,
) -> Path:
    """Write a single-frame uncompressed DX DICOM file (Explicit VR Little Endian).

    Parameters
    ----------
    path : Path
        Output file.
    stored : numpy.ndarray
        2-D array of stored values (uint8, uint16 or int16); 8-bit data is written
        with Bits Allocated 8.
    photometric : {"MONOCHROME1", "MONOCHROME2"}
        Photometric Interpretation.
    bits_stored : int
        Bits Stored (High Bit is one less).
    window : tuple of float, optional
        ``(center, width)`` written as Window Center/Width (modality units).
    rescale : tuple of float
        ``(slope, intercept)`` written as Rescale Slope/Intercept.
    view : str
        View Position (PA, AP, LATERAL -> ``LL``).
    uid_seed : tuple
        Makes the study/series/instance UIDs deterministic.
    signed : bool
        Pixel Representation 1 (two's complement).
    extra : dict, optional
        Further attributes by keyword (e.g. ``{"VOILUTSequence": ...}``), for tests.

    Returns
    -------
    Path
        ``path``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    stored = np.ascontiguousarray(stored)
    if stored.ndim != 2:
        raise ValueError("stored must be 2-D")
    bits_allocated = 8 if stored.dtype.itemsize == 1 else 16
    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    instance_uid = _uid(*uid_seed, "instance")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _UID_ROOT + "1"
    meta.ImplementationVersionName = "READERSTUDY_DEMO"

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance_uid
    ds.StudyInstanceUID = _uid(*uid_seed, "study")
    ds.SeriesInstanceUID = _uid(*uid_seed, "series")
    ds.PatientName = "Demo^Synthetic"
    ds.PatientID = "DEMO-" + hashlib.sha256(repr(uid_seed).encode()).hexdigest()[:8].upper()
    ds.StudyDate = "20240101"
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = {"LATERAL": "LL"}.get(view, view)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows, ds.Columns = (int(n) for n in stored.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelSpacing = [0.143, 0.143]
    ds.RescaleSlope = f"{rescale[0]:g}"
    ds.RescaleIntercept = f"{rescale[1]:g}"
    ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    ds.PixelData = stored.astype(stored.dtype.newbyteorder("<"), copy=False).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class _Scenario:
    views: tuple[tuple[str, str], ...]  # (view, encoding)
    finding: str | None
    side: str
    indication: str
    comparison: str
    reference: str
    resident: str | None
    reasoning: str
    model_findings: str
    final_answer_header: bool
    prior: tuple[str, str | None] | None = None  # (encoding, finding on the prior)
    mc: tuple[str, dict[str, str], str, str] | None = None  # question, options, answer, reasoning
    # The CheXpert findings the reference text reports (none: "No Finding"), and those it says cannot be assessed;
    # every other finding is absent. Only what the text says: a nodule is a Lung Lesion, not also a Lung Opacity.
    present: tuple[str, ...] = ()
    not_known: tuple[str, ...] = ()


_NORMAL = (
    "The lungs are clear without focal consolidation, pleural effusion or pneumothorax. "
    "The cardiomediastinal silhouette is within normal limits. No acute osseous abnormality."
)

_SCENARIOS: tuple[_Scenario, ...] = (
    _Scenario(
        views=(("PA", "dicom16"), ("LATERAL", "dicom16")),
        finding="opacity",
        present=("Lung Opacity", "Pneumonia"),
        side="right",
        indication="Cough and fever for three days. Evaluate for pneumonia.",
        comparison="Chest radiograph two weeks prior.",
        reference=(
            "New patchy opacity in the right lower lobe, seen posteriorly on the lateral view, "
            "consistent with pneumonia. No pleural effusion or pneumothorax. Heart size is normal."
        ),
        resident=(
            "Right lower lobe airspace opacity, new from prior, concerning for pneumonia. "
            "No effusion. No pneumothorax. Normal heart size."
        ),
        reasoning=(
            "The frontal view shows increased density in the right lower lung zone that was not "
            "present on the prior study. The lateral view localises it posteriorly, over the spine, "
            "which places it in the right lower lobe. The costophrenic angles are sharp, so there is "
            "no effusion. The cardiac silhouette is not enlarged."
        ),
        model_findings=(
            "Patchy opacity in the right lower lobe, new compared with the prior, suspicious for "
            "pneumonia. No pleural effusion or pneumothorax. Cardiac size is normal."
        ),
        final_answer_header=True,
        prior=("png8", None),
        mc=(
            "Where is the new opacity?",
            {"A": "Right upper lobe", "B": "Right lower lobe", "C": "Left lower lobe", "D": "No opacity"},
            "B",
            "The opacity projects over the right lower lung zone on the frontal view and posteriorly on "
            "the lateral view, so it is in the right lower lobe.",
        ),
    ),
    _Scenario(
        views=(("PA", "png8"),),
        finding=None,
        present=(),
        side="right",
        indication="Preoperative evaluation before knee replacement.",
        comparison="None.",
        reference=_NORMAL,
        resident="No acute cardiopulmonary process.",
        reasoning=(
            "Both lungs are well expanded and clear. There is no blunting of the costophrenic angles. "
            "The heart and mediastinum are of normal size and contour."
        ),
        model_findings=_NORMAL,
        final_answer_header=False,
    ),
    _Scenario(
        views=(("AP", "dicom12_mono1"),),
        finding="effusion",
        present=("Pleural Effusion", "Atelectasis"),
        not_known=("Cardiomegaly",),  # "difficult to assess on this AP view",
        side="left",
        indication="Shortness of breath. Evaluate for pleural effusion.",
        comparison="None.",
        reference=(
            "Moderate left pleural effusion with adjacent basilar atelectasis. The right lung is clear. "
            "Heart size is difficult to assess on this AP view."
        ),
        resident="Left pleural effusion, moderate. Right lung clear.",
        reasoning=(
            "There is a meniscus-shaped density at the left base that obscures the left hemidiaphragm "
            "and rises along the lateral chest wall, typical of pleural fluid. The right lung is clear."
        ),
        model_findings="Moderate left pleural effusion with basilar atelectasis. The right lung is clear.",
        final_answer_header=True,
        mc=(
            "Is there a pleural effusion, and on which side?",
            {"A": "No effusion", "B": "Right effusion", "C": "Left effusion", "D": "Bilateral effusions"},
            "C",
            "The left costophrenic angle is blunted with a meniscus, while the right is sharp.",
        ),
    ),
    _Scenario(
        views=(("PA", "jpeg"),),
        finding=None,
        present=(),
        side="right",
        indication="Atypical chest pain.",
        comparison="None.",
        reference=_NORMAL,
        resident=None,
        reasoning="The lungs are clear. No effusion. The heart is normal in size.",
        model_findings=_NORMAL,
        final_answer_header=False,
    ),
    _Scenario(
        views=(("PA", "png8"), ("LATERAL", "png8")),
        finding="cardiomegaly",
        present=("Cardiomegaly",),
        side="left",
        indication="Lower extremity edema and dyspnea. Evaluate for heart failure.",
        comparison="None.",
        reference="Enlarged cardiac silhouette. No pulmonary edema. No pleural effusion.",
        resident="Cardiomegaly. Lungs clear. No effusion.",
        reasoning=(
            "The cardiac silhouette occupies more than half of the thoracic width on the PA view, "
            "so the heart is enlarged. The pulmonary vessels are not prominent and there is no "
            "interstitial edema."
        ),
        model_findings="Cardiomegaly without pulmonary edema or pleural effusion.",
        final_answer_header=True,
        mc=(
            "What is the most notable finding?",
            {"A": "Pneumothorax", "B": "Cardiomegaly", "C": "Pneumonia"},
            "B",
            "The cardiothoracic ratio is above 0.5 on the PA view; the lungs are clear.",
        ),
    ),
    _Scenario(
        views=(("AP", "dicom16"),),
        finding="effusion",
        present=("Pleural Effusion",),
        side="right",
        indication="Follow-up of known right pleural effusion.",
        comparison="Portable chest radiograph from three days prior.",
        reference="Right pleural effusion, increased in size compared with the prior. No pneumothorax.",
        resident="Increasing right pleural effusion.",
        reasoning=(
            "Compared with the prior, the fluid level at the right base is higher and the right "
            "hemidiaphragm is no longer visible, indicating an increase of the effusion."
        ),
        model_findings="Increased right pleural effusion. No pneumothorax.",
        final_answer_header=False,
        prior=("dicom16", None),
    ),
    _Scenario(
        views=(("PA", "png16"),),
        finding="nodule",
        present=("Lung Lesion",),
        side="right",
        indication="Former smoker. Evaluate for lung nodule.",
        comparison="None.",
        reference="Rounded nodule in the right upper lung zone, about 1.5 cm. Recommend CT for characterisation.",
        resident="Right upper lobe nodule. Recommend chest CT.",
        reasoning="A well-circumscribed round density projects over the right upper lung zone.",
        model_findings="Right upper lung nodule; CT recommended for further evaluation.",
        final_answer_header=True,
    ),
    _Scenario(
        views=(("AP", "dicom16"),),
        finding="opacity",
        present=("Lung Opacity", "Consolidation", "Pneumonia"),
        side="left",
        indication="Fever and leukocytosis in the intensive care unit. Evaluate for pneumonia.",
        comparison="None.",
        reference="Left lower lobe consolidation, likely pneumonia. No large effusion.",
        resident="Left basilar opacity, atelectasis versus pneumonia.",
        reasoning=(
            "There is a confluent opacity at the left base obscuring part of the left hemidiaphragm. "
            "In a febrile patient this is most consistent with pneumonia."
        ),
        model_findings="Left lower lobe consolidation, likely pneumonia. No large pleural effusion.",
        final_answer_header=False,
        mc=(
            "Which finding best answers the indication?",
            {"A": "Left lower lobe consolidation", "B": "Pneumothorax", "C": "Normal chest"},
            "A",
            "The confluent left basal opacity with air bronchograms answers the question of pneumonia.",
        ),
    ),
    _Scenario(
        views=(("PA", "png8"),),
        finding=None,
        present=(),
        side="right",
        indication="Chronic cough.",
        comparison="None.",
        reference=_NORMAL,
        resident="Normal chest radiograph.",
        reasoning="Clear lungs, normal heart size, no effusion, no pneumothorax.",
        model_findings=_NORMAL,
        final_answer_header=True,
    ),
    _Scenario(
        views=(("PA", "dicom12"), ("LATERAL", "dicom12")),
        finding=None,
        present=(),
        side="right",
        indication="Routine screening before employment.",
        comparison="None.",
        reference=_NORMAL,
        resident="No acute findings.",
        reasoning="Frontal and lateral views show clear lungs and a normal cardiomediastinal contour.",
        model_findings=_NORMAL,
        final_answer_header=False,
    ),
    _Scenario(
        views=(("AP", "png8"),),
        finding="edema",
        present=("Lung Opacity", "Edema"),
        side="right",
        indication="Acute dyspnea after fluid resuscitation.",
        comparison="None.",
        reference="Bilateral perihilar haziness consistent with mild pulmonary edema. No large effusion.",
        resident="Mild pulmonary edema.",
        reasoning="There is symmetric perihilar haziness with indistinct vessels, consistent with edema.",
        model_findings="Mild interstitial pulmonary edema. No large pleural effusion.",
        final_answer_header=True,
    ),
    _Scenario(
        views=(("PA", "dicom16_mono1"),),
        finding="nodule",
        present=("Lung Lesion",),
        side="left",
        indication="Weight loss. Evaluate for malignancy.",
        comparison="None.",
        reference="Small nodule in the left upper lung zone. No lymphadenopathy evident.",
        resident=None,
        reasoning="A small round density is seen in the left upper lung zone.",
        model_findings="Left upper lung nodule.",
        final_answer_header=False,
    ),
)

# Small images keep the demo quick to build; the first case stays full size because the
# benchmarks need the platform's worst realistic case.
_SMALL_SIZE = (600, 720)


# The model's probabilities come from their own generator, seeded by the case's position only: the demo's texts and
# labels are the same for every seed (only the pictures change), as the manifest always was.
_LABEL_SEED = 14
# Binormal scores: positives' mean sits this many standard deviations above the negatives', for an AUC of
# Phi(d / sqrt 2) = 0.85 (d = sqrt 2 * Phi^-1(0.85)); over 12 cases the AUC drawn differs a little from that.
_SEPARATION = math.sqrt(2.0) * 1.0364


def _reference_labels(scenario: _Scenario) -> dict[str, int | None]:
    """The scenario's reference over the CheXpert list: what its reference text reports, the rest absent."""
    labels: dict[str, int | None] = {name: int(name in scenario.present) for name in CHEXPERT_FINDINGS}
    labels["No Finding"] = int(not scenario.present)
    labels.update({name: None for name in scenario.not_known})
    return labels


def _model_labels(reference: dict[str, int | None], index: int) -> dict[str, float]:
    """Synthetic model probabilities, right more often than not: a binormal score per finding (a finding the
    reference does not know sits halfway), through a logistic curve, to two decimals."""
    rng = np.random.default_rng([_LABEL_SEED, index])
    labels: dict[str, float] = {}
    for name, truth in reference.items():
        score = _SEPARATION * (0.5 if truth is None else truth) + rng.standard_normal() - _SEPARATION / 2
        labels[name] = round(1.0 / (1.0 + math.exp(-1.7 * score)), 2)
    return labels


def _boxed(scenario: _Scenario) -> str:
    header = "**Final Answer:**\n" if scenario.final_answer_header else ""
    return f"{scenario.reasoning}\n\n{header}\\boxed{{{scenario.model_findings}}}"


def _mc_output(reasoning: str, answer: str, final_answer_header: bool) -> str:
    header = "**Final Answer:**\n" if final_answer_header else ""
    return f"{reasoning}\n\n{header}\\boxed{{{answer}}}"


def _write_image(
    path: Path, density: np.ndarray, encoding: str, view: str, uid_seed: tuple[object, ...]
) -> Path:
    if encoding == "png8":
        Image.fromarray(np.rint(density * 255).astype(np.uint8)).save(path, format="PNG", compress_level=6)
    elif encoding == "png16":
        Image.fromarray(np.rint(density * 4095).astype(np.uint16)).save(path, format="PNG", compress_level=6)
    elif encoding == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(np.rint(density * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        path.write_bytes(buffer.getvalue())
    elif encoding.startswith("dicom"):
        bits = 12 if encoding.startswith("dicom12") else 16
        mono1 = encoding.endswith("mono1")
        top = 2**bits - 1
        # Stored values use most of the range; slope/intercept move them into signed
        # "modality" units so that the rescale is visibly needed to window correctly.
        stored = np.rint(density * (top * 0.9) + top * 0.04).astype(np.uint16)
        slope, intercept = (0.5, -1024.0) if bits == 16 else (1.0, -200.0)
        lo = float(np.percentile(stored[:: 8, :: 8], 1)) * slope + intercept
        hi = float(np.percentile(stored[:: 8, :: 8], 99.95)) * slope + intercept
        if mono1:
            stored = (top - stored).astype(np.uint16)
            lo, hi = (top * slope + intercept) - hi + intercept, (top * slope + intercept) - lo + intercept
        window = (round((lo + hi) / 2.0), round(max(hi - lo, 1.0)))
        write_dicom(
            path,
            stored,
            photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
            bits_stored=bits,
            window=window,
            rescale=(slope, intercept),
            view=view,
            uid_seed=uid_seed,
        )
    else:  # pragma: no cover - the scenario table is fixed
        raise ValueError(f"unknown encoding {encoding}")
    return path


def _extension(encoding: str) -> str:
    return {"png8": ".png", "png16": ".png", "jpeg": ".jpg"}.get(encoding, ".dcm")


def write_manifest_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    """Write manifest rows to a UTF-8 CSV (``\\n`` line ends, quoted where needed).

    Parameters
    ----------
    path : Path
        Output CSV.
    rows : list of dict
        One dict per case, column -> cell text.
    columns : list of str, optional
        Column order; by default the keys of the rows in first-seen order.

    Returns
    -------
    Path
        ``path``.
    """
    if columns is None:
        columns = []
        for row in rows:
            columns += [key for key in row if key not in columns]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in columns})
    return path


def build_demo_cohort(
    out_dir: Path,
    *,
    n_cases: int = 12,
    seed: int = 0,
    large_case_size: tuple[int, int] = LARGE_CASE_SIZE,
    sites: tuple[str, ...] = (),
    manifest_name: str = "manifest.csv",
) -> Path:
    """Write a synthetic demo cohort (images and ``manifest.csv``) into ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Folder to write into (created if needed). Images go to ``out_dir/images``.
    n_cases : int, default 12
        Number of cases; the twelve scenarios repeat with new pictures beyond twelve.
    seed : int, default 0
        Same seed, same bytes in every file.
    large_case_size : tuple of int, default (2500, 3000)
        ``(width, height)`` of the first case's two 16-bit DICOM views, the platform's
        benchmark case. Tests pass something smaller to stay fast.
    sites : tuple of str, default ()
        For a multi-site cohort: the sites, dealt to the cases in turn (case 1 to the first site, case 2 to the
        second, ...) in a ``site`` column; none by default (no column). The images are the same either way.
    manifest_name : str, default "manifest.csv"
        The manifest's file name (a sited manifest can sit beside the plain one, sharing its images).

    Returns
    -------
    Path
        The manifest, ``out_dir/manifest_name``; :func:`cohorts.load_manifest` accepts it.

    Notes
    -----
    The cohort mixes 8- and 16-bit PNG, JPEG and 12/16-bit DICOM (MONOCHROME1 and 2, with
    Rescale Slope/Intercept and Window Center/Width), one- and two-view cases, cases with
    a prior, resident-style drafts, recorded CheXOne-style raw outputs (reasoning then the
    findings in ``\\boxed{}``, some with ``**Final Answer:**``) and multiple-choice items.
    Every case has ``reference_labels`` over the 14 CheXpert findings, as its reference text
    reports them (a finding the text calls difficult to assess is ``null``), and synthetic
    ``model_labels``: binormal scores through a logistic curve, an AUC near 0.85 over the twelve
    scenarios. The labels, like the texts, do not depend on ``seed``.
    Nothing comes from a patient.

    Examples
    --------
    >>> manifest = build_demo_cohort(Path("demo"))  # doctest: +SKIP
    >>> load_manifest(manifest).cases[0].case_id  # doctest: +SKIP
    'demo-001'
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for index in range(n_cases):
        scenario = _SCENARIOS[index % len(_SCENARIOS)]
        case_id = f"demo-{index + 1:03d}"
        rng = np.random.default_rng([seed, index])
        size = large_case_size if index == 0 else _SMALL_SIZE
        image_cells = []
        for view, encoding in scenario.views:
            density = synthetic_radiograph(rng, *size, view=view, finding=scenario.finding, side=scenario.side)
            name = f"{case_id}_{view.lower()}{_extension(encoding)}"
            _write_image(images_dir / name, density, encoding, view, (seed, case_id, view))
            image_cells.append(f"{view}:images/{name}")
        prior_cells = []
        if scenario.prior is not None:
            encoding, prior_finding = scenario.prior
            view = scenario.views[0][0]
            density = synthetic_radiograph(rng, *_SMALL_SIZE, view=view, finding=prior_finding, side=scenario.side)
            name = f"{case_id}_prior_{view.lower()}{_extension(encoding)}"
            _write_image(images_dir / name, density, encoding, view, (seed, case_id, "prior"))
            prior_cells.append(f"{view}:images/{name}")
        row = {
            "case_id": case_id,
            "images": ";".join(image_cells),
            "priors": ";".join(prior_cells),
            "indication": scenario.indication,
            "comparison": scenario.comparison,
            "reference_findings": scenario.reference,
            "reader_draft": scenario.resident or "",
            "reader_draft_author": "demo resident" if scenario.resident else "",
            "model_output": _boxed(scenario),
            "model_id": DEMO_MODEL_ID,
            "model_mode": "reasoning",
            "mc_item_id": "",
            "mc_question": "",
            "mc_options": "",
            "mc_answer": "",
            "mc_model_output": "",
            "mc_image_view": "",
        }
        reference_labels = _reference_labels(scenario)
        row["reference_labels"] = json.dumps(reference_labels)
        row["model_labels"] = json.dumps(_model_labels(reference_labels, index))
        if scenario.mc is not None:
            question, options, answer, reasoning = scenario.mc
            row.update(
                mc_item_id=f"{case_id}-mc1",
                mc_question=question,
                mc_options="|".join(f"{letter}={text}" for letter, text in options.items()),
                mc_answer=answer,
                mc_model_output=_mc_output(reasoning, answer, index % 2 == 0),
                mc_image_view=scenario.views[0][0],
            )
        if sites:
            row["site"] = sites[index % len(sites)]
        rows.append(row)
    return write_manifest_csv(out_dir / manifest_name, rows)
