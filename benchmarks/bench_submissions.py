"""P3: submissions through the service layer, 50 concurrent readers x 20 cases on one SQLite file.

Each reader is a thread doing what the case page does: open, image shown, two autosaves, submit.
Reports p50/p99 submit latency and checks that every submission is stored exactly once, in two modes:

* paced: each reader pauses 0.1-0.5 s between actions (a real reader takes a minute or more per
  case, so this is still about a hundred times the load of 50 real readers); the P3 target applies here;
* saturation: no pause at all, every thread submitting as fast as the store accepts; this measures
  the store's throughput, and its latency is queueing behind the other 49 writers.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import func, select

N_READERS = 50
N_CASES = 20

DESIGN = """
[study]
name = "P3 benchmark"
[roles.resident]
[[arms]]
key = "scratch"
task = "write"
role = "resident"
readers_per_case = %d
""" % N_READERS


def build(folder: Path):
    from study_app.services.actors import SYSTEM
    from study_app.services.database import open_database
    from study_app.services.creation import create_study
    from study_app.services.launch import launch_study

    rng = np.random.default_rng(0)
    (folder / "img").mkdir()
    rows = ["case_id,images,indication"]
    for i in range(N_CASES):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / "img" / f"c{i}.png")
        rows.append(f"c{i:02d},PA:img/c{i}.png,Cough.")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    (folder / "readers.csv").write_text(
        "reader_id,role\n" + "".join(f"r{i:02d},resident\n" for i in range(N_READERS))
    )
    (folder / "design.toml").write_text(DESIGN)
    db = open_database(f"sqlite:///{folder / 'p3.sqlite'}")
    create_study(db, SYSTEM, study_id="p3", design_path=folder / "design.toml", manifest_path=folder / "manifest.csv",
                 readers_path=folder / "readers.csv", seed=1)
    launch_study(db, SYSTEM, "p3")
    return db


def run_once(think_s: tuple[float, float] | None = (0.1, 0.5)) -> dict:
    from study_app.services import reading
    from study_app.services.actors import reader_actor
    from study_app.store.models import Reader, Response

    with tempfile.TemporaryDirectory() as tmp:
        db = build(Path(tmp))
        with db.read() as s:
            readers = [(r.id, r.reader_key) for r in s.scalars(select(Reader).order_by(Reader.id))]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(len(readers))

        def reader_thread(reader_id: int, key: str) -> None:
            actor = reader_actor(reader_id, key)
            pause_rng = np.random.default_rng(reader_id)

            def pause() -> None:
                if think_s:
                    time.sleep(pause_rng.uniform(*think_s))

            start.wait()
            try:
                for item in reading.worklist(db, actor).items:
                    reading.open_case(db, actor, item.case_ref)
                    reading.mark_image_shown(db, actor, item.case_ref)
                    pause()
                    reading.autosave(db, actor, item.case_ref, "Lungs")
                    pause()
                    reading.autosave(db, actor, item.case_ref, "Lungs are clear.")
                    pause()
                    began = time.perf_counter()
                    reading.submit(db, actor, item.case_ref, "Lungs are clear.", active_s=1.0)
                    with lock:
                        latencies.append(time.perf_counter() - began)
            except Exception as error:  # noqa: BLE001 - a benchmark reports every failure
                with lock:
                    errors.append(repr(error))

        threads = [threading.Thread(target=reader_thread, args=r) for r in readers]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        with db.read() as s:
            stored = s.scalar(select(func.count()).select_from(Response))
            distinct = s.scalar(select(func.count(func.distinct(Response.assignment_id))))
        db.dispose()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "submits": len(ms),
        "stored": stored,
        "duplicated": stored - distinct,
        "lost": N_READERS * N_CASES - stored,
        "errors": len(errors),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 1),
        "elapsed_s": round(elapsed, 2),
        "submits_per_s": round(len(ms) / elapsed, 1),
    }


def summarise(results: list[dict]) -> dict:
    return {
        "p50_ms_median": statistics.median(r["p50_ms"] for r in results),
        "p99_ms_median": statistics.median(r["p99_ms"] for r in results),
        "submits_per_s_median": statistics.median(r["submits_per_s"] for r in results),
        "lost_total": sum(r["lost"] for r in results),
        "duplicated_total": sum(r["duplicated"] for r in results),
        "errors_total": sum(r["errors"] for r in results),
    }


def main(runs: int = 3) -> dict:
    paced = [run_once() for _ in range(runs)]
    saturated = [run_once(think_s=None) for _ in range(runs)]
    return {
        "target": "P3: 0 lost, 0 duplicated, p99 <= 50 ms (paced)",
        "runs": runs,
        "paced": summarise(paced),
        "saturation": summarise(saturated),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
