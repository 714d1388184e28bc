"""Benchmark P2: first view of the demo's largest case (decode, window, downscale, PNG encode)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from the repository root without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cohorts import build_demo_cohort, downscale, load_image, load_manifest, render, render_png  # noqa: E402

RUNS = 5
TARGET_S = 1.0  # targets.md, P2
MAX_SIZE = (1024, 1280)


def _median_ms(step, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


_COLD_SCRIPT = """
import sys, time
start = time.perf_counter()
from cohorts import render_png
render_png(sys.argv[1], (1024, 1280))
print((time.perf_counter() - start) * 1000.0)
"""


def _cold_first_view_ms(path: Path, runs: int = 3) -> float:
    """First view in a fresh interpreter: imports (pydicom, Pillow plugins) included."""
    root = str(Path(__file__).resolve().parents[1])
    times = [
        float(subprocess.run([sys.executable, "-c", _COLD_SCRIPT, str(path)], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip())
        for _ in range(runs)
    ]
    return statistics.median(times)


def main() -> dict:
    """Time the first view of each image of the demo's largest case; print and return medians.

    Returns
    -------
    dict
        ``image_size``, per-stage medians in ms (``decode_ms``, ``window_downscale_ms``,
        ``first_view_ms`` per image, ``first_view_case_ms`` for both views in sequence,
        ``first_view_new_process_ms`` including the imports a fresh server process pays
        once, ``rewindow_cached_ms`` for a window change on a cached display-size image),
        ``target_ms`` and ``meets_target``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = build_demo_cohort(Path(tmp), n_cases=1)
        build_s = time.perf_counter() - start
        case = load_manifest(manifest).cases[0]
        paths = [image.path for image in case.images]
        first = paths[0]
        loaded = load_image(first)
        # What a display cache would hold after the first view: the display-size image
        # in modality units, so a window change is a cheap re-render.
        cached = downscale(loaded, MAX_SIZE)
        center, width = loaded.window
        result = {
            "image_size": f"{loaded.width} x {loaded.height}, {loaded.bits_stored}-bit {loaded.format}",
            "views": len(paths),
            "runs": RUNS,
            "build_demo_case_s": round(build_s, 2),
            "decode_ms": round(_median_ms(lambda: load_image(first)), 1),
            "window_downscale_ms": round(_median_ms(lambda: render(loaded, max_size=MAX_SIZE)), 1),
            "first_view_ms": round(_median_ms(lambda: render_png(first, MAX_SIZE)), 1),
            "first_view_case_ms": round(_median_ms(lambda: [render_png(p, MAX_SIZE) for p in paths]), 1),
            "first_view_new_process_ms": round(_cold_first_view_ms(first), 1),
            "rewindow_cached_ms": round(
                _median_ms(lambda: render(cached, window=(center + width / 10, width * 0.8))), 1
            ),
            "png_bytes": len(render_png(first, MAX_SIZE)),
            "target_ms": TARGET_S * 1000.0,
        }
    result["meets_target"] = result["first_view_ms"] <= result["target_ms"]
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    return result


if __name__ == "__main__":
    main()
