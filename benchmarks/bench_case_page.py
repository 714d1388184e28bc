"""P1/P2: the case page on the demo's largest case (two 16-bit DICOM views of 2500 x 3000 plus a prior).

* P2, first view: decode, downscale and pack every image of the case with an empty cache (what a
  reader waits for when the case was not prefetched), and the same with the next-case prefetch done
  (what a reader normally waits for: a cache hit).
* P1, interaction: server time of one rerun of the case page after the first view, measured with
  Streamlit's AppTest (script run plus AppTest's own bookkeeping, so an upper bound of the server work).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

RUNS_FIRST_VIEW = 5
RERUNS = 40


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> dict:
    from sqlalchemy import func, select
    from streamlit.testing.v1 import AppTest

    from study_app.demo import build_demo_study
    from study_app.services import auth, images, reading
    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Image, Reader
    from study_app.web.database import DB_URL_ENV, close_shared_databases
    from study_app.web.session import SESSION_TOKEN_KEY

    folder = Path(tempfile.mkdtemp(prefix="bench-case-page-"))
    url = f"sqlite:///{folder / 'study.sqlite'}"
    db = open_database(url)
    invites = {i.reader_key: i.token for i in build_demo_study(db, cohort_dir=folder / "cohort").invites}
    with db.read() as session:
        largest_case = session.execute(
            select(Image.case_id).group_by(Image.case_id).order_by(func.sum(Image.width * Image.height).desc())
        ).scalars().first()
        assignment = session.scalars(
            select(Assignment).where(Assignment.case_id == largest_case, Assignment.status == "ready")
        ).first()
        reader_key = session.get(Reader, assignment.reader_id).reader_key
        pixels = session.scalars(select(Image.width * Image.height).where(Image.case_id == largest_case)).all()
    token, actor = auth.exchange_invite(db, invites[reader_key])
    reading.open_case(db, actor, assignment.case_ref)

    cold = []
    for _ in range(RUNS_FIRST_VIEW):
        cache = images.DisplayCache(None)
        started = time.perf_counter()
        images.case_display_images(db, actor, assignment.case_ref, cache=cache)
        cold.append(time.perf_counter() - started)
    warm = []
    for _ in range(RUNS_FIRST_VIEW):
        started = time.perf_counter()
        images.case_display_images(db, actor, assignment.case_ref, cache=cache)
        warm.append(time.perf_counter() - started)

    os.environ[DB_URL_ENV] = url
    app = Path(__file__).resolve().parents[1] / "study_app" / "web" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.session_state[SESSION_TOKEN_KEY] = token
    at.query_params["case"] = assignment.case_ref
    at.run()
    start = [b for b in at.button if b.label == "Start"]
    if start:
        at = start[0].click().run()
    reading.mark_image_shown(db, actor, assignment.case_ref)
    at.run()  # the first view after the image is shown
    assert not at.exception, at.exception
    reruns = []
    for _ in range(RERUNS):
        started = time.perf_counter()
        at.run()
        reruns.append(time.perf_counter() - started)
    close_shared_databases()
    db.dispose()
    return {
        "case_images": len(pixels),
        "case_megapixels": round(sum(pixels) / 1e6, 1),
        "P2_first_view_cold_median_s": round(statistics.median(cold), 3),
        "P2_first_view_cold_max_s": round(max(cold), 3),
        "P2_first_view_prefetched_median_ms": round(statistics.median(warm) * 1000, 2),
        "P1_rerun_median_ms": round(statistics.median(reruns) * 1000, 1),
        "P1_rerun_p95_ms": round(_percentile(reruns, 0.95) * 1000, 1),
        "targets": "P1 p95 <= 100 ms; P2 <= 1 s",
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main()))
