"""Server time of each script run (rerun), written to a file when READERSTUDY_RERUN_LOG names one.

The P7 benchmark sets it to measure the server's interaction time under load, apart from the
browsers' own rendering time; in a normal deployment it is unset and this costs one dict lookup.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

RERUN_LOG_ENV = "READERSTUDY_RERUN_LOG"
_lock = threading.Lock()


@contextmanager
def rerun_timer() -> Iterator[None]:
    """Time the enclosed script run; on exit, by return, st.stop() or st.rerun(), append one line
    ``<unix time at the end>\\t<seconds>`` to the file named by READERSTUDY_RERUN_LOG."""
    path = os.environ.get(RERUN_LOG_ENV)
    started = time.perf_counter()
    try:
        yield
    finally:
        if path:
            line = f"{time.time():.3f}\t{time.perf_counter() - started:.6f}\n"
            with _lock, open(path, "a", encoding="utf-8") as log:
                log.write(line)


def read_rerun_log(path: str | os.PathLike, since: float = 0.0, until: float = float("inf")) -> list[float]:
    """The rerun durations (seconds) logged between the unix times ``since`` and ``until``."""
    durations = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            ended, _, seconds = line.partition("\t")
            if since <= float(ended) <= until:
                durations.append(float(seconds))
    return durations
