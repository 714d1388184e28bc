"""Issue 13: a reader's image latency while 50 clients guess coordinator passwords, and the server's memory.

One live server (``serve()`` in a child process, trusting 127.0.0.1 as its proxy so that each guesser can have
an address of its own). A reader fetches a case image again and again, first alone, then during two attacks of
``ATTACK_S`` seconds each:

* ``one_address``: 50 parallel guessers from one address (the issue's attack): the throttle refuses nearly every
  guess before argon2 runs.
* ``many_addresses``: 50 parallel guessers, each from its own address and username: the throttle lets each one's
  first guesses through, so argon2 runs as often as it may; the bound on concurrent verifications (2) is what
  protects the reader.

Figures: the reader's image latency (median, p95, max), the guesses answered per status, and the server's peak
resident memory in each phase.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too: `tests` is not installed

from tests.browser_support import free_port, stop_process  # noqa: E402

ATTACK_S = 12.0
GUESSERS = 50
PASSWORD = "the right coordinator password"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _latencies_ms(values: list[float]) -> dict:
    return {"n": len(values), "median_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(_percentile(values, 0.95) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def main() -> dict:
    import httpx
    import psutil
    from sqlalchemy import select

    from study_app.demo import build_demo_study
    from study_app.services import auth, reading
    from study_app.services.actors import SYSTEM
    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Image

    folder = Path(tempfile.mkdtemp(prefix="bench-signin-attack-"))
    url = f"sqlite:///{folder / 'study.sqlite'}"
    db = open_database(url)
    invites = {i.reader_key: i.token for i in build_demo_study(db, cohort_dir=folder / "cohort").invites}
    auth.create_coordinator(db, SYSTEM, "alice", PASSWORD)
    cookie, actor = auth.exchange_invite(db, invites["res1"])
    case = reading.worklist(db, actor).items[0].assignment_id
    reading.open_case(db, actor, case)
    with db.read() as session:
        case_id = session.get(Assignment, case).case_id
        image = session.scalars(select(Image.id).where(Image.case_id == case_id).order_by(Image.ordinal)).first()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-c", f"from study_app.serve import serve; serve({url!r}, port={port})"], cwd=folder,
        env=dict(os.environ, PYTHONUNBUFFERED="1", READERSTUDY_TRUSTED_PROXIES="127.0.0.1"),
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError((folder / "server.log").read_text())
            time.sleep(0.2)
        process = psutil.Process(server.pid)
        reader = httpx.Client(base_url=base, cookies={auth.SESSION_COOKIE: cookie}, timeout=120)
        image_url = f"/api/image/{case}/{image}"
        assert reader.get(image_url).status_code == 200  # decoded once; later fetches measure the server, not numpy

        def reader_loop(stop: threading.Event, into: list[float]) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                assert reader.get(image_url).status_code == 200
                into.append(time.perf_counter() - started)
                time.sleep(0.05)

        def phase(attack) -> dict:
            stop = threading.Event()
            latencies: list[float] = []
            peak = [process.memory_info().rss]

            def watch_memory():
                while not stop.is_set():
                    peak[0] = max(peak[0], process.memory_info().rss)
                    time.sleep(0.1)

            threads = [threading.Thread(target=reader_loop, args=(stop, latencies)),
                       threading.Thread(target=watch_memory)]
            for t in threads:
                t.start()
            statuses = attack(stop) if attack else (time.sleep(ATTACK_S) or Counter())
            stop.set()
            for t in threads:
                t.join()
            return {"reader_image": _latencies_ms(latencies), "guesses": dict(statuses),
                    "server_peak_rss_mb": round(peak[0] / 1024**2)}

        def guessers(addresses: bool):
            def attack(stop: threading.Event) -> Counter:
                end = time.monotonic() + ATTACK_S
                statuses: Counter = Counter()
                lock = threading.Lock()

                def guesser(n: int) -> None:
                    headers = {"Origin": base, "X-Forwarded-For": f"10.7.{n // 250}.{n % 250 + 1}" if addresses
                               else "203.0.113.9"}
                    with httpx.Client(base_url=base, timeout=120) as client:
                        k = 0
                        while time.monotonic() < end:
                            k += 1
                            user = f"user{n}" if addresses else "alice"
                            status = client.post("/console/signin", data={"username": user, "password": f"guess{k}"},
                                                 headers=headers).status_code
                            with lock:
                                statuses[status] += 1

                with ThreadPoolExecutor(GUESSERS) as pool:
                    list(pool.map(guesser, range(GUESSERS)))
                return statuses

            return attack

        baseline = phase(None)
        one_address = phase(guessers(addresses=False))
        many_addresses = phase(guessers(addresses=True))
        reader.close()
        return {"attack_s": ATTACK_S, "guessers": GUESSERS, "baseline": baseline, "one_address": one_address,
                "many_addresses": many_addresses}
    finally:
        stop_process(server)
        log.close()
        db.dispose()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
