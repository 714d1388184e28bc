"""The blinding audit's eyes: what each reader's browser is sent for each blinded case.

It works on a private snapshot of the database (``services.blinding.snapshot_database``), signs each reader
in there, and collects what a browser would receive, through the same paths a browser uses: the worklist and
case pages run by Streamlit's own script runner (``AppTest``, the real entry script and pages), the images and
beacons through the app's own HTTP routes (Starlette's test client over ``server.ROUTES``). Every collected
feature is then tested for association with the case's true draft source (``services.blinding.assess``).

It must run in a process of its own (the CLI; the console starts the CLI): the pages find their database
through an environment variable, which the audit points at the snapshot while it runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from study_app.services import auth, reading
from study_app.services.actors import SYSTEM, Actor
from study_app.services.blinding import (
    DEFAULT_ALPHA,
    DEFAULT_PERMUTATIONS,
    BlindedCase,
    BlindingReport,
    assess,
    blinded_cases,
    describe_content,
    snapshot_database,
)
from study_app.services.database import Database
from study_app.services.invites import issue_invites

APP_SCRIPT = Path(__file__).with_name("app.py")

CANNOT_SEE = [
    "what the page's own JavaScript does once loaded (the reading clock's browser storage keys, request timing "
    "and order, rendering): the real-Chromium test compares two sources' pages element by element for that",
    "bytes on the wire (compression, websocket framing): the audit measures the page's messages and the "
    "routes' response bodies before transport",
    "anything outside the platform: what readers tell each other, the drafts' own wording and length "
    "(reported as content, the study's subject, never as a leak)",
    "cases still held for a later round beyond their worklist entry: their pages are not sent until the "
    "round opens, so the audit sees them then",
    "how many edits an error annotation lists: it follows the reader's own edits of the draft (content); the "
    "audit tests the annotation page's presentation, with the edits' words as content, and its own test checks "
    "that the same edit of a model and of a reader draft gives the same page",
]

_WIDGET_ID = re.compile(r"\$\$ID-[0-9a-f]+-")
_DIGITS = re.compile(r"\d+")


def audit_blinding(
    db: Database, actor: Actor, study_id: str, *, alpha: float = DEFAULT_ALPHA,
    permutations: int = DEFAULT_PERMUTATIONS, pages: bool = True, seed: int = 0,
) -> BlindingReport:
    """Audit what every reader is sent about every blinded case, and report any feature that predicts the source.

    Parameters
    ----------
    db : Database
        The study database; never changed (the audit reads a snapshot).
    actor : Actor
        A coordinator (or the CLI).
    study_id : str
    alpha : float
        Family-wise error rate over all features (Holm).
    permutations : int
        Monte-Carlo permutations per feature when the exact distribution is larger.
    pages : bool
        Also render every open blinded case's page (the slow part: one script run per case).

    Returns
    -------
    BlindingReport
    """
    cases = blinded_cases(db, actor, study_id)
    # The page scripts run without a browser session here; Streamlit's warnings about that are noise (a filter,
    # since Streamlit resets its loggers' levels when its configuration loads).
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: "missing ScriptRunContext" not in record.getMessage())
    with tempfile.TemporaryDirectory(prefix="readerstudy-audit-") as folder:
        snapshot = snapshot_database(db, actor, Path(folder) / "audit.sqlite")
        try:
            features = collect_features(snapshot, study_id, cases, pages=pages)
        finally:
            snapshot.dispose()
    if features.empty:
        features = pd.DataFrame(columns=["group", "reader", "case_ref", "label", "feature", "kind", "scale", "value"])
    return assess(features, study_id=study_id, alpha=alpha, permutations=permutations, seed=seed,
                  cannot_see=CANNOT_SEE, content=describe_content(cases))


def collect_features(snapshot: Database, study_id: str, cases: list[BlindedCase], *, pages: bool) -> pd.DataFrame:
    """One row per (blinded case, feature) of what the case's reader is sent, on the snapshot."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from study_app.web.database import DB_URL_ENV, close_shared_databases
    from study_app.web.server import ROUTES

    rows: list[dict] = []
    by_reader: dict[str, list[BlindedCase]] = defaultdict(list)
    for case in cases:
        by_reader[case.reader_key].append(case)
    previous = os.environ.get(DB_URL_ENV)
    os.environ[DB_URL_ENV] = snapshot.url
    try:
        sessions = {}
        for reader_key in sorted(by_reader):
            invite = issue_invites(snapshot, SYSTEM, study_id, [reader_key])[0]
            sessions[reader_key] = auth.exchange_invite(snapshot, invite.token)
        # The worklists first, as they stand now (opening cases below changes the snapshot's states).
        for reader_key, reader_cases in sorted(by_reader.items()):
            token, reader = sessions[reader_key]
            _worklist_features(rows, token, reader, snapshot, reader_cases)
        with TestClient(Starlette(routes=ROUTES), base_url="http://audit.invalid") as client:
            for reader_key, reader_cases in sorted(by_reader.items()):
                token, reader = sessions[reader_key]
                client.cookies.set(auth.SESSION_COOKIE, token)
                for case in reader_cases:
                    _http_features(rows, client, case)
                    if pages and case.status != "pending":
                        _page_features(rows, token, reader, snapshot, case)
    finally:
        close_shared_databases()
        if previous is None:
            os.environ.pop(DB_URL_ENV, None)
        else:
            os.environ[DB_URL_ENV] = previous
    return pd.DataFrame(rows)


def _add(rows: list[dict], case: BlindedCase, feature: str, kind: str, value, scale: str = "categorical") -> None:
    rows.append({"group": case.group, "reader": case.reader_key, "case_ref": case.case_ref, "label": case.label,
                 "feature": feature, "kind": kind, "scale": scale, "value": value})


def _worklist_features(rows, token: str, reader: Actor, snapshot: Database, cases: list[BlindedCase]) -> None:
    from streamlit.testing.v1 import AppTest

    def worklist_tab(session_token: str) -> None:
        import streamlit as st

        from study_app.web.session import SESSION_TOKEN_KEY, current_actor
        from study_app.web.views import worklist

        st.session_state[SESSION_TOKEN_KEY] = session_token
        st.session_state["actor"] = current_actor()
        worklist.render()

    at = AppTest.from_function(worklist_tab, args=(token,), default_timeout=60).run()
    if at.exception:
        raise RuntimeError(f"the worklist page failed in the audit: {at.exception[0].message}")
    table = at.dataframe[0].value.set_index("#")
    refs = sorted(c.case_ref for c in cases)
    for case in cases:
        shown = table.loc[case.position]
        _add(rows, case, "worklist.state", "state", str(shown["state"]))
        _add(rows, case, "worklist.task", "state", str(shown["task"]))
        _add(rows, case, "worklist.position", "order", case.position / case.worklist_length, "numeric")
        _add(rows, case, "worklist.release_after_launch_s", "release",
             float("inf") if case.released_s is None else round(case.released_s, 3), "numeric")
        _add(rows, case, "id.case_ref.length", "identifier", len(case.case_ref))
        _add(rows, case, "id.case_ref.alphabet", "identifier", _alphabet(case.case_ref))
        _add(rows, case, "id.case_ref.rank", "identifier", refs.index(case.case_ref) / len(refs), "numeric")


def _alphabet(ref: str) -> str:
    classes = [name for name, pattern in (("lower", r"[a-z]"), ("upper", r"[A-Z]"), ("digit", r"\d"),
                                          ("dash", r"-"), ("underscore", r"_")) if re.search(pattern, ref)]
    return "+".join(classes) or "none"


def _http_features(rows, client, case: BlindedCase) -> None:
    started = time.perf_counter()
    response = client.get(f"/api/image/{case.case_ref}/0")
    elapsed = time.perf_counter() - started
    _add(rows, case, "http.image.status", "state", response.status_code)
    _add(rows, case, "http.image.type", "structure", response.headers.get("content-type", ""))
    _add(rows, case, "http.image.cache_control", "structure", response.headers.get("cache-control", ""))
    if response.status_code != 200:
        _add(rows, case, "http.image.message", "message", _normalise(response.text, case, {}))
    _add(rows, case, "size.image_bytes", "size", len(response.content), "numeric")
    _add(rows, case, "timing.image_ms", "timing", round(elapsed * 1000, 2), "numeric")


def _page_features(rows, token: str, reader: Actor, snapshot: Database, case: BlindedCase) -> None:
    from streamlit.testing.v1 import AppTest

    from study_app.web.session import SESSION_TOKEN_KEY

    view = reading.case_view(snapshot, reader, case.case_ref)
    content = {"{draft}": [t for t in (view.editor_text, view.draft_text, view.report_a, view.report_b,
                                       view.reasoning, view.model_answer) if t],
               "{indication}": [view.indication] if view.indication else [],
               "{comparison}": [view.comparison] if view.comparison else [],
               "{question}": [view.mc_question] if view.mc_question else [],
               # The words of each edit the error annotation lists: pieces of the draft and of the reader's text.
               "{edit}": [t for segment in view.error_segments
                          for t in (segment["context"], segment["draft"], segment["final"]) if t]}
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=60)
    at.session_state[SESSION_TOKEN_KEY] = token
    at.query_params["case"] = case.case_ref
    started = time.perf_counter()
    at.run()
    instructions_first = any(b.label == "Start" for b in at.button)
    if instructions_first:
        at = next(b for b in at.button if b.label == "Start").click().run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"the case page failed in the audit: {at.exception[0].message}")
    elements = list(_elements(at.main, case, content))
    structure = [kind for kind, _ in elements]
    normalised = [f"{kind}:{_DIGITS.sub('#', body)}" for kind, body in elements]
    _add(rows, case, "page.instructions_first", "state", instructions_first)
    _add(rows, case, "page.structure", "structure", _digest(structure))
    _add(rows, case, "page.elements", "structure", _digest(normalised))
    _add(rows, case, "page.keys", "identifier",
         _digest(sorted(k for _, body in elements for k in re.findall(r'"(?:id|key)": "([^"]*)"', body))))
    _add(rows, case, "page.messages", "message",
         " | ".join(body for kind, body in elements if kind in ("error", "info", "warning", "success")))
    for name, body in elements:
        if name.startswith("component:"):
            _add(rows, case, f"{name}.data", "structure", _digest([_DIGITS.sub("#", body)]))
    _add(rows, case, "size.page_bytes_without_content", "size", sum(len(b) for _, b in elements), "numeric")
    _add(rows, case, "page.images", "size", len(view.images), "numeric")
    # The next case's images the browser is told to fetch ahead: how many (none at the worklist's end).
    _add(rows, case, "page.prefetch_images", "size", len(_viewer_data(at.main).get("prefetch", [])), "numeric")
    _add(rows, case, "timing.page_ms", "timing", round(elapsed * 1000, 1), "numeric")


def _elements(block, case: BlindedCase, content: dict[str, list[str]]):
    """(kind, normalised body) of every element and block of the page, in page order."""
    from google.protobuf.json_format import MessageToDict

    stack = [block]
    while stack:
        node = stack.pop(0)
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", None) or type(node).__name__
        body = ""
        if proto is not None:
            try:
                message = MessageToDict(proto)
            except (TypeError, AttributeError):
                message = {"text": str(proto)}
            if kind == "bidi_component":
                kind = f"component:{proto.component_name}"
                # A component's data is JSON inside the message: compare what it holds, not how it is escaped.
                if isinstance(message.get("json"), str):
                    try:
                        message["json"] = json.loads(message["json"])
                    except ValueError:
                        pass
                data = message.get("json")
                if isinstance(data, dict) and isinstance(data.get("images"), list):
                    # The case's own views (their number, labels, sizes, windows, presets, pixel spacing) are
                    # content of the case; the audit tests them as features of their own, and the page's
                    # structure without them.
                    data["images"] = "{images}"
                if isinstance(data, dict) and isinstance(data.get("prefetch"), list):
                    # The next case's image addresses (its reference, its number of views): tested on their own
                    # (page.prefetch_images), the structure without them.
                    data["prefetch"] = "{prefetch}"
            body = json.dumps(_normalise_value(message, case, content), sort_keys=True)
        yield str(kind), body
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            stack[0:0] = [children[k] for k in sorted(children)]


def _viewer_data(block) -> dict:
    """The data the page handed to the image viewer ({} when there is none)."""
    stack = [block]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if getattr(node, "type", None) == "bidi_component" and proto.component_name == "readerstudy_viewer":
            return json.loads(proto.json or "{}")
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            stack.extend(children.values())
    return {}


def _normalise_value(value, case: BlindedCase, content: dict[str, list[str]]):
    if isinstance(value, dict):
        return {k: _normalise_value(v, case, content) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_value(v, case, content) for v in value]
    if isinstance(value, str):
        return _normalise(value, case, content)
    return value


def _normalise(text_: str, case: BlindedCase, content: dict[str, list[str]]) -> str:
    """The text with the case's own content and identifiers replaced by placeholders: only presentation is left."""
    for placeholder, texts in content.items():
        for value in sorted(texts, key=len, reverse=True):
            text_ = text_.replace(value, placeholder)
    text_ = text_.replace(case.case_ref, "{case_ref}")
    return _WIDGET_ID.sub("$$ID-{hash}-", text_)


def _digest(parts) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]
