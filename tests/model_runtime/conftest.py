"""Small named fixtures for the model_runtime tests: rendered radiograph bytes and ready requests."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

# tests/fakes is imported as a package from the repository root.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model_runtime.backends import SamplingParams, build_request  # noqa: E402


def gradient_png(width: int = 640, height: int = 512, *, mode: str = "L", seed: int = 0, fmt: str = "PNG") -> bytes:
    """An 8-bit image with structure (a gradient plus a seed-dependent offset), encoded."""
    image = Image.linear_gradient("L").resize((width, height))
    image = image.point(lambda v: (v + seed * 37) % 256)
    if mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def png_factory():
    """``png_factory(width, height, mode=..., seed=..., fmt=...)`` -> encoded 8-bit image bytes."""
    return gradient_png


@pytest.fixture
def frontal_png() -> bytes:
    """One 640x512 grayscale frontal view."""
    return gradient_png()


@pytest.fixture
def findings_requests():
    """A factory of findings requests for distinct cases (small images, fast to prepare)."""

    def make(n: int, *, sampling: SamplingParams = SamplingParams(), mode: str = "reasoning", prefix: str = "case"):
        return [
            build_request(case_id=f"{prefix}-{i:04d}", task="findings", mode=mode,
                          images=[gradient_png(96, 80, seed=i)], indication="Cough.", sampling=sampling)
            for i in range(n)
        ]

    return make
