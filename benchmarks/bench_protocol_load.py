"""P8: concurrent reader sessions driven at the protocol level, not by browsers.

Each simulated reader speaks what a browser speaks: it signs in at ``/signin``, opens Streamlit's websocket
(``/_stcore/stream``, with the XSRF token and the public Origin, as the frontend does), asks for reruns with
``BackMsg.rerun_script`` (query string and widget states), reads the ``ForwardMsg`` deltas it gets back (to find
the widgets it must press: Start, the answer radios and Save and next), and calls the app's routes
(``/shown``, autosaves, ``/submit``) like the viewer and editor do. A session costs a few kB and a little CPU, so
one core drives hundreds. After each level every acknowledged submission is checked in the database (0 lost,
0 duplicated).

Figures per level: the interaction time (rerun sent -> ``script_finished``) and route times p50/p95/p99, the
server's CPU, RSS and threads (psutil, summed over its processes), completed cases and what ran out first.
``BENCH_SERVERS`` (default 1) runs that many ``readerstudy serve`` processes on one PostgreSQL behind nginx
(the configuration of docs/nginx/replicas.conf), so more than one core can serve.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from study_app.web.views.reading import SAVE_AND_NEXT  # noqa: E402 - the button the load generator presses

LEVELS = (10, 50, 100, 200, 500)
LEVEL_S = float(os.environ.get("BENCH_LEVEL_S", "60"))     # how long each level drives its readers
RAMP_S = float(os.environ.get("BENCH_RAMP_S", "15"))       # readers arrive over this many seconds
CASE_S = float(os.environ.get("BENCH_CASE_S", "20"))       # a simulated reader spends this long per case
STEADY_FROM_S = 10.0  # after the ramp, when the steady CPU per case starts being counted
AUTOSAVE_S = 3.0                                          # the editor's autosave period
N_CASES = 12
MAX_CACHED_MESSAGE_AGE = 2  # Streamlit's global.maxCachedMessageAge, the frontend's cache of large messages
CASE_IN_VIEWER = re.compile(rb"/api/image/([0-9a-f]{16,64})/")

DESIGN = """
[study]
name = "Protocol load"
worklist_order = "random"
[roles.reader]
[questions.edit_reason]
kind = "choice"
label = "Why did you edit the draft?"
options = [{ value = "none", label = "No editing needed" }, { value = "content", label = "Content" },
           { value = "style", label = "Style" }, { value = "both", label = "Both" }]
[questions.writing_efficiency]
kind = "likert"
label = "The draft improves report-writing efficiency."
[[arms]]
key = "scratch"
task = "write"
role = "reader"
cases = 6
readers_per_case = READERS
[[arms]]
key = "edit_model"
task = "edit"
role = "reader"
draft = "model"
cases = 6
readers_per_case = READERS
questions = ["edit_reason", "writing_efficiency"]
"""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the Streamlit protocol --------------------------------------------------------------------------------


def _rerun_message(query: str, widgets: list | None = None, cached: list[str] | None = None) -> bytes:
    """A rerun request as the frontend sends it: the query string, the widgets' states and the hashes of the
    large messages it keeps (Streamlit's forward-message cache), which the server then sends as references."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    message = BackMsg()
    message.rerun_script.query_string = query
    if widgets:
        message.rerun_script.widget_states.widgets.extend(widgets)
    if cached:
        message.rerun_script.cached_message_hashes.extend(cached)
    return message.SerializeToString()


@dataclass
class Page:
    """What one script run drew that the simulated reader needs: buttons and radios by label, texts seen."""

    buttons: dict[str, str] = field(default_factory=dict)       # label -> widget id
    submitters: dict[str, str] = field(default_factory=dict)    # form submit buttons: label -> widget id
    radios: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # label -> (widget id, option labels)
    texts: list[str] = field(default_factory=list)
    case_ref: str | None = None  # the case the viewer shows, from its image addresses

    def see(self, raw: bytes) -> None:
        found = CASE_IN_VIEWER.search(raw)
        if found:
            self.case_ref = found.group(1).decode()

    def add(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "button":
            (self.submitters if element.button.is_form_submitter else self.buttons)[element.button.label] = element.button.id
        elif kind == "radio":
            self.radios[element.radio.label] = (element.radio.id, list(element.radio.options))
        elif kind in ("alert", "markdown", "text"):
            body = getattr(element, kind).body
            self.texts.append(body)


class Session:
    """One simulated reader's browser tab: cookies, the websocket, and the rerun it is waiting for."""

    def __init__(self, base: str, origin: str, record: dict) -> None:
        self.base, self.origin, self.record = base, origin, record
        self.http = None
        self.ws = None
        # The frontend's message cache: a large element (the viewer's and the editor's modules) arrives whole once,
        # then as a reference to its hash, as long as the browser says it has it.
        self.cache: dict[str, bytes] = {}
        self.last_used: dict[str, int] = {}  # hash -> the script run that last drew it
        self.runs = 0

    async def sign_in(self, invite: str) -> None:
        import httpx

        self.http = httpx.AsyncClient(base_url=self.base, timeout=60, headers={"Origin": self.origin})
        await self.http.get("/_stcore/health")  # Streamlit's XSRF cookie, as the frontend's first request gets it
        response = await self.http.post("/signin", data={"token": invite}, follow_redirects=False)
        if response.status_code != 303:
            raise RuntimeError(f"sign-in answered {response.status_code}")

    async def connect(self) -> None:
        import websockets

        cookies = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        xsrf = self.http.cookies.get("_streamlit_xsrf") or ""
        url = self.base.replace("http://", "ws://") + "/_stcore/stream"
        self.ws = await websockets.connect(url, subprotocols=["streamlit", xsrf], origin=self.origin,
                                           additional_headers={"Cookie": cookies}, max_size=2**24,
                                           open_timeout=60, ping_interval=None)

    async def rerun(self, query: str = "", widgets: list | None = None) -> Page:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        started = time.perf_counter()
        await self.ws.send(_rerun_message(query, widgets, list(self.cache)))
        page = Page()
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout=120)
            message = ForwardMsg()
            message.ParseFromString(raw)
            kind = message.WhichOneof("type")
            if kind == "ref_hash":
                raw = self.cache[message.ref_hash]
                message = ForwardMsg()
                message.ParseFromString(raw)
                kind = message.WhichOneof("type")
                self.last_used[message.hash] = self.runs
            elif message.metadata.cacheable:
                self.cache[message.hash] = raw
                self.last_used[message.hash] = self.runs
            if kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                page.add(message.delta.new_element)
                page.see(raw)
            elif kind == "script_finished":
                if message.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    page = Page()  # st.rerun(): the script starts again at once; what counts is that run's page
                    self._forget_old()
                    continue
                self._forget_old()
                break
        self.record["interaction"].append(time.perf_counter() - started)
        return page

    def _forget_old(self) -> None:
        # As the frontend does (global.maxCachedMessageAge, 2 by default): a message no script run has drawn for
        # two runs leaves the cache, and the server then sends it whole again.
        self.runs += 1
        for key in [key for key, run in self.last_used.items() if self.runs - run > MAX_CACHED_MESSAGE_AGE]:
            self.cache.pop(key, None)
            del self.last_used[key]

    async def get(self, path: str) -> int:
        started = time.perf_counter()
        response = await self.http.get(path)
        self.record["image"].append(time.perf_counter() - started)
        if response.status_code >= 400:
            self.record["errors"].append(f"GET {path.rsplit('/', 2)[-2]} answered {response.status_code}")
        return response.status_code

    async def post(self, path: str, body: dict) -> int:
        started = time.perf_counter()
        response = await self.http.post(path, json=body, headers={"X-Readerstudy-Client": "1"})
        self.record["route"].append(time.perf_counter() - started)
        if response.status_code >= 400:
            self.record["errors"].append(f"{path.rsplit('/', 1)[-1]} answered {response.status_code}: "
                                         f"{response.text[:120]}")
        return response.status_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.aclose()


def _trigger(widget_id: str):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, trigger_value=True)


def _choice(widget_id: str, option: str):
    """A radio's state as the frontend sends it (Streamlit >= 1.50): the option's label, as a string."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, string_value=option)


async def _read_one_case(session: Session, page: Page, rng: random.Random, record: dict) -> Page | None:
    """One case, from the page that shows it to the page that follows it (the next case, as a browser sees it).
    Returns None when the page shows no case (the worklist is done)."""
    if "Start" in page.buttons:  # a task's instructions come before its first case
        page = await session.rerun("", [_trigger(page.buttons["Start"])])
    case_ref = page.case_ref
    if case_ref is None:
        return None
    query = f"case={case_ref}"
    await session.get(f"/api/image/{case_ref}/0")  # the viewer draws the case's first image, then says so
    await session.post(f"/api/reading/{case_ref}/shown", {"age_s": 0})
    deadline = time.monotonic() + CASE_S * rng.uniform(0.7, 1.3)
    words = []
    while time.monotonic() < deadline:
        await asyncio.sleep(min(AUTOSAVE_S, max(0.0, deadline - time.monotonic())))
        words.append(rng.choice(["lungs", "clear", "no", "effusion", "heart", "normal", "size"]))
        await session.post(f"/api/reading/{case_ref}/autosave", {"text": " ".join(words)})
    status = await session.post(f"/api/reading/{case_ref}/submit",
                                {"text": "Findings: " + " ".join(words or ["clear"]), "press_id": uuid.uuid4().hex,
                                 "age_s": 0, "active_s": CASE_S, "hidden_s": 0, "idle_s": 0})
    if status != 200:
        return None
    record["acknowledged"].append(case_ref)
    # The editor's press asks the page to run again: the case's questions, or (none) straight on to the next case.
    page = await session.rerun(query)
    if page.radios and SAVE_AND_NEXT in page.submitters:
        answers = [_choice(widget_id, rng.choice(options)) for widget_id, options in page.radios.values()]
        page = await session.rerun(query, [*answers, _trigger(page.submitters[SAVE_AND_NEXT])])
    record["cases"] += 1
    record["case_done_at"].append(time.monotonic())
    return page  # the next case (or its instructions), or the end of the worklist


async def _reader(base: str, origin: str, invite: str, seed: int, record: dict,
                  arrive_s: float, stop_at: float) -> None:
    rng = random.Random(seed)
    await asyncio.sleep(arrive_s)
    session = Session(base, origin, record)
    try:
        await session.sign_in(invite)
        await session.connect()
        record["open"] += 1
        record["peak_open"] = max(record["peak_open"], record["open"])
        page = await session.rerun("")  # the worklist's next case, as the invite link lands on it
        while page is not None and time.monotonic() < stop_at:
            page = await _read_one_case(session, page, rng, record)
    except Exception as error:  # noqa: BLE001 - a reader that fails is counted: the level's figures say how many
        record["errors"].append(f"{type(error).__name__}: {str(error)[:160]}")
    finally:
        await session.close()
        record["open"] = max(0, record["open"] - 1)


# --- the server side ---------------------------------------------------------------------------------------


def _build_study(db_url: str, n_readers: int, folder: Path) -> dict[str, str]:
    """A study of ``n_readers`` readers (an even number), about six demo cases each, written or model drafts edited."""
    from cohorts.demo import build_demo_cohort
    from study_app.services.actors import SYSTEM
    from study_app.services.creation import create_study
    from study_app.services.database import open_database
    from study_app.services.drafting import import_recorded_drafts
    from study_app.services.invites import issue_invites
    from study_app.services.launch import launch_study

    cohort = folder / "cohort"
    build_demo_cohort(cohort, n_cases=N_CASES, seed=0)
    design = folder / "design.toml"
    # Each case is read by half the readers in each arm (a case may be in both arms, never twice for one reader).
    design.write_text(DESIGN.replace("READERS", str(max(1, n_readers // 2))))
    readers = folder / "readers.csv"
    readers.write_text("reader_id,role\n" + "".join(f"r{i:04d},reader\n" for i in range(n_readers)))
    db = open_database(db_url)
    create_study(db, SYSTEM, study_id="load", design_path=design, manifest_path=cohort / "manifest.csv",
                 readers_path=readers, seed=1)
    import_recorded_drafts(db, SYSTEM, "load")
    launch_study(db, SYSTEM, "load")
    invites = {i.reader_key: i.token for i in issue_invites(db, SYSTEM, "load")}
    db.dispose()
    return invites


def _start_servers(db_url: str, n: int, folder: Path, proxy_port: int | None):
    from tests.browser_support import free_port

    ports = [free_port() for _ in range(n)]
    origin = f"http://127.0.0.1:{proxy_port or ports[0]}"
    processes = []
    for port in ports:
        env = dict(os.environ, PYTHONUNBUFFERED="1", READERSTUDY_PUBLIC_ORIGIN=origin,
                   READERSTUDY_TRUSTED_PROXIES="127.0.0.1", READERSTUDY_RERUN_LOG=str(folder / f"reruns-{port}.log"))
        with open(folder / f"server-{port}.log", "w") as log:  # the child keeps its own descriptor
            processes.append(subprocess.Popen(
                [sys.executable, "-c",
                 f"from study_app.serve import serve; serve({db_url!r}, port={port}, worker=False)"],
                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT))
    import httpx

    for port in ports:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError((folder / f"server-{port}.log").read_text()[-2000:])
            time.sleep(0.3)
    return processes, ports, origin


def _check_database(db_url: str, acknowledged: list[str]) -> dict:
    from sqlalchemy import func, select

    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Response

    db = open_database(db_url)
    with db.read() as session:
        id_of = dict(session.execute(select(Assignment.case_ref, Assignment.id)).all())
        counts = dict(session.execute(select(Response.assignment_id, func.count()).group_by(Response.assignment_id)).all())
        done = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "completed"))
    db.dispose()
    acknowledged_ids = [id_of.get(ref, -1) for ref in acknowledged]
    return {"acknowledged": len(acknowledged), "completed_in_database": done, "lost": sum(1 for a in acknowledged_ids if a not in counts),
            "duplicated": sum(1 for n in counts.values() if n > 1) + len(acknowledged_ids) - len(set(acknowledged_ids))}


def _limit(samples: dict) -> str:
    """What ran out first: a server process's core (its Python runs on one core at a time), the machine's cores
    (servers, load generator, database, proxy and anything else together), the load generator's own core, or
    nothing (the busiest tenth of the level's seconds below 85 % of each)."""
    cores = os.cpu_count() or 1
    if _percentile(samples["server_busy"], 0.9) >= 0.85:
        return "server CPU (one core per process)"
    if _percentile(samples["machine_busy"], 0.9) >= 0.85 * cores:
        return f"the machine's {cores} cores (servers, load generator, database and proxy together)"
    if _percentile(samples["client_busy"], 0.9) >= 0.85:
        return "load generator CPU"
    return "none saturated"


def _steady_cpu_per_case(cpu_at: list[tuple[float, float]], done_at: list[float]) -> float | None:
    """The servers' CPU seconds per completed case once every reader is in (from ``STEADY_FROM_S`` after the first
    sample to the last): without the sign-ins and first pages of the ramp, which a real reader pays once per
    sitting of dozens of cases, not once per six as here."""
    if len(cpu_at) < 3:
        return None
    start = cpu_at[0][0] + RAMP_S + STEADY_FROM_S
    inside = [(t, c) for t, c in cpu_at if t >= start]
    if len(inside) < 2:
        return None
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    cases = sum(1 for t in done_at if t0 < t <= t1)
    return round((c1 - c0) / cases, 3) if cases else None


def run_level(n_sessions: int, *, servers: int = 1, level_s: float = LEVEL_S) -> dict:
    """One level: a fresh study of ``n_sessions`` readers, ``servers`` server processes, the readers driven for
    ``level_s`` seconds; returns its figures."""
    import psutil

    from tests.browser_support import free_port, stop_process
    from tests.postgres_server import start_postgres

    folder = Path(tempfile.mkdtemp(prefix="bench-protocol-"))
    # Several processes share PostgreSQL by default (the documented replicas); BENCH_POSTGRES=0 puts them on one
    # SQLite file (one machine: SQLite's own locks between processes).
    use_postgres = os.environ.get("BENCH_POSTGRES", "1" if servers > 1 else "0") == "1"
    postgres = start_postgres() if use_postgres else None
    db_url = postgres.create_database() if postgres else f"sqlite:///{folder / 'study.sqlite'}"
    processes, nginx = [], None
    try:
        invites = _build_study(db_url, n_sessions, folder)
        proxy_port = free_port() if servers > 1 else None
        processes, ports, origin = _start_servers(db_url, servers, folder, proxy_port)
        base = origin
        if servers > 1:
            from tests.reliability.test_replicas import start_nginx

            if servers != 2:
                raise ValueError("the nginx configuration has two upstreams: BENCH_SERVERS is 1 or 2")
            nginx = start_nginx(folder / "nginx", proxy_port, (ports[0], ports[1]))
        watched = [psutil.Process(p.pid) for p in processes]
        profilers = []
        if os.environ.get("BENCH_PROFILE"):  # py-spy's folded stacks of each server, for a flame graph
            for process in processes:
                profilers.append(subprocess.Popen(
                    [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(process.pid), "--format", "raw", "--rate", "50", "--gil",
                     "--output", f"{os.environ['BENCH_PROFILE']}-{process.pid}.txt"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in watched)
        record = {"interaction": [], "route": [], "image": [], "acknowledged": [], "errors": [], "cases": 0, "open": 0,
                  "case_done_at": [],
                  "peak_open": 0}
        samples = {"rss": [], "threads": [], "server_busy": [], "client_busy": [], "machine_busy": [],
                   "server_cpu_at": []}  # (monotonic time, the servers' CPU seconds so far)
        me = psutil.Process()

        async def drive() -> None:
            stop_at = time.monotonic() + level_s
            readers = [asyncio.create_task(_reader(base, origin, invites[key], i, record,
                                                   RAMP_S * i / max(1, n_sessions), stop_at))
                       for i, key in enumerate(sorted(invites))]

            def cpu(process) -> float:
                times = process.cpu_times()
                return times.user + times.system

            def machine() -> float:  # every core's non-idle time, in core-seconds
                times = psutil.cpu_times()
                return sum(times) - times.idle - getattr(times, "iowait", 0.0)

            async def sample() -> None:
                last = [cpu(p) for p in watched], cpu(me), time.perf_counter(), machine()
                while any(not r.done() for r in readers):
                    await asyncio.sleep(1.0)
                    samples["rss"].append(sum(p.memory_info().rss for p in watched))
                    samples["server_cpu_at"].append((time.monotonic(), sum(cpu(p) for p in watched)))
                    samples["threads"].append(sum(p.num_threads() for p in watched))
                    now = [cpu(p) for p in watched], cpu(me), time.perf_counter(), machine()
                    elapsed = now[2] - last[2]
                    # the busiest server process's share of one core (one process runs Python on one core at a time)
                    samples["server_busy"].append(max(b - a for a, b in zip(last[0], now[0])) / elapsed)
                    samples["client_busy"].append((now[1] - last[1]) / elapsed)
                    samples["machine_busy"].append((now[3] - last[3]) / elapsed)
                    last = now

            sampler = asyncio.create_task(sample())
            await asyncio.wait(readers, timeout=level_s + RAMP_S + 180)
            for reader in readers:
                reader.cancel()
            sampler.cancel()

        started = time.perf_counter()
        try:
            asyncio.run(drive())
        finally:
            for profiler in profilers:
                profiler.send_signal(2)  # SIGINT: py-spy writes its file and stops
                profiler.wait(timeout=60)
        wall = time.perf_counter() - started
        cpu = sum(p.cpu_times().user + p.cpu_times().system for p in watched) - cpu_before
        check = _check_database(db_url, record["acknowledged"])
        server_reruns = []
        for port in ports:
            path = folder / f"reruns-{port}.log"
            if path.is_file():
                server_reruns += [float(line.split("\t")[1]) for line in path.read_text().splitlines() if "\t" in line]
        cpu_share = cpu / wall / len(processes)
        steady = _steady_cpu_per_case(samples["server_cpu_at"], record["case_done_at"])
        figures = {
            "sessions": n_sessions, "servers": servers, "peak_open": record["peak_open"], "cases": record["cases"],
            "interaction_p50_ms": round(_percentile(record["interaction"], 0.5) * 1000, 1),
            "interaction_p95_ms": round(_percentile(record["interaction"], 0.95) * 1000, 1),
            "interaction_p99_ms": round(_percentile(record["interaction"], 0.99) * 1000, 1),
            "server_rerun_p95_ms": round(_percentile(server_reruns, 0.95) * 1000, 1),
            "server_reruns_per_case": round(len(server_reruns) / max(1, record["cases"]), 2),
            "routes_per_case": round(len(record["route"]) / max(1, record["cases"]), 2),
            "route_p95_ms": round(_percentile(record["route"], 0.95) * 1000, 1),
            "image_p95_ms": round(_percentile(record["image"], 0.95) * 1000, 1),
            "server_cpu_s_per_case": round(cpu / max(1, record["cases"]), 3),
            "server_cpu_s_per_case_steady": steady,
            "server_cpu_share_per_process": round(cpu_share, 2),
            "server_rss_mb_peak": round(max(samples["rss"] or [0]) / 2**20),
            "server_rss_mb_per_session": round((max(samples["rss"] or [0]) - min(samples["rss"] or [0])) / 2**20
                                               / max(1, n_sessions), 3),
            "server_threads_peak": max(samples["threads"] or [0]),
            "errors": len(record["errors"]), "first_errors": record["errors"][:3], **check,
            "server_busy_p90": round(_percentile(samples["server_busy"], 0.9), 2),
            "load_generator_busy_p90": round(_percentile(samples["client_busy"], 0.9), 2),
            "machine_cores_busy_p90": round(_percentile(samples["machine_busy"], 0.9), 2),
            "limit": _limit(samples),
        }
        return figures
    finally:
        if nginx is not None:
            stop_process(nginx)
        for process in processes:
            stop_process(process)
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main(levels: tuple[int, ...] = LEVELS) -> dict:
    """Every level in turn; prints and returns their figures (P8)."""
    servers = int(os.environ.get("BENCH_SERVERS", "1"))
    chosen = tuple(int(x) for x in os.environ["BENCH_LEVELS"].split(",")) if os.environ.get("BENCH_LEVELS") else levels
    results = {}
    for n in chosen:
        figures = run_level(n, servers=servers)
        print(figures, flush=True)
        results[f"{n}_sessions"] = figures
    return {"benchmark": "P8 protocol-level load", "target": "500 sessions, p95 <= 300 ms, 0 lost, 0 duplicated",
            "levels": results}


if __name__ == "__main__":
    main()
