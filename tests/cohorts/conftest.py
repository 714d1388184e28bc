"""Fixtures for the cohorts tests: small images and manifests written into tmp_path at test time.

The project runs pytest with ``--import-mode=importlib``, so test modules cannot import
each other; helpers are handed out through the ``files`` fixture instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cohorts import write_dicom, write_manifest_csv


def gradient(width: int = 64, height: int = 80, top: int = 255) -> np.ndarray:
    """A left-to-right ramp, so pixel order survives every transform and is easy to check."""
    row = np.linspace(0, top, width)
    return np.rint(np.repeat(row[None, :], height, axis=0))


class CohortFiles:
    """Writes the pieces of a cohort (images, CSV and JSONL manifests) under one folder."""

    def __init__(self, root: Path):
        self.root = root

    gradient = staticmethod(gradient)

    def png(self, rel: str, width: int = 64, height: int = 80) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gradient(width, height).astype(np.uint8)).save(path)
        return path

    def dicom(self, rel: str, width: int = 64, height: int = 80, **kwargs) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = gradient(width, height, 4000).astype(np.uint16)
        kwargs.setdefault("bits_stored", 12)
        kwargs.setdefault("window", (2000, 4000))
        return write_dicom(path, stored, **kwargs)

    def raw(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    @staticmethod
    def row(case_id: str = "c1", **overrides) -> dict:
        row = {
            "case_id": case_id,
            "images": "PA:img/pa.png;LATERAL:img/lat.png",
            "priors": "",
            "indication": "Cough. Evaluate for pneumonia.",
            "comparison": "",
        }
        row.update(overrides)
        return row

    def csv(self, rows: list[dict], name: str = "manifest.csv") -> Path:
        return write_manifest_csv(self.root / name, rows)

    def jsonl(self, rows: list, name: str = "manifest.jsonl") -> Path:
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        path = self.root / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


@pytest.fixture
def files(tmp_path: Path) -> CohortFiles:
    """A cohort folder holding valid img/pa.png, img/lat.png, img/prior.png and img/ap.dcm."""
    cohort = CohortFiles(tmp_path / "cohort")
    for name in ("pa", "lat", "prior"):
        cohort.png(f"img/{name}.png")
    cohort.dicom("img/ap.dcm")
    return cohort
