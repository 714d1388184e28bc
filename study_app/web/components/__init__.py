"""The case page's two browser components: the image viewer (with the reading clock) and the report editor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

_HERE = Path(__file__).parent


def _asset(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


# The page's own layout (views/desk.css): each module puts it into the document once. Not an st.html or markdown
# style element: those load their code as lazily fetched chunks whose order in the page varies from load to load,
# which would make two pages differ for no reason (tests/reliability/test_access.py compares them element by element).
_DESK_STYLE = (
    f"const DESK_CSS = {json.dumps((_HERE.parent / 'views' / 'desk.css').read_text(encoding='utf-8'))};\n"
    "if (!document.getElementById('rs-desk-style')) {\n"
    "  const style = document.createElement('style'); style.id = 'rs-desk-style'; style.textContent = DESK_CSS;\n"
    "  document.head.appendChild(style);\n}\n"
)

# Registered once per process; the assets are inline strings, so nothing is fetched from a CDN. The beacon
# helper (reports of the moments the clock depends on) is prepended to both modules.
_viewer = st.components.v2.component(
    "readerstudy_viewer", html=_asset("viewer.html"), css=_asset("viewer.css"),
    js=_DESK_STYLE + _asset("beacon.js") + _asset("viewer.js"),
)
_editor = st.components.v2.component(
    "readerstudy_editor", html=_asset("editor.html"), css=_asset("editor.css"),
    js=_DESK_STYLE + _asset("beacon.js") + _asset("editor.js"),
)


def image_viewer(case_ref: str, images: list[dict[str, Any]], *, idle_threshold_s: float, clock: bool = True,
                 hanging: list[str] | None = None, prefetch: list[str] | None = None) -> None:
    """Show a case's images: one or two viewports laid out by the hanging protocol, window presets, zoom, pan,
    caliper, magnifier, invert, focus mode, keyboard shortcuts (``?``).

    Parameters
    ----------
    case_ref : str
        The case being read (its opaque reference); the viewer reports "image shown" for it and keeps its
        reading clock.
    images : list of dict
        ``id`` (the image's place in the case), ``label``, ``view``, ``prior``, ``url`` (the lossless copy),
        ``preview_url`` (the quick windowed preview) and the fields of ``DisplayMeta.as_json()``.
    idle_threshold_s : float
        Input pauses longer than this count as idle time.
    clock : bool
        False for a finished case looked at again: no clock, no "image shown".
    hanging : list of str
        The hanging protocol's stages (``frontal_lateral``, ``current_prior``, ``single``), first applicable first.
    prefetch : list of str
        Image addresses of the next case, fetched in the background while this one is read.
    """
    _viewer(
        key=f"viewer-{case_ref}",
        data={"case_ref": case_ref, "images": images, "idle_threshold_s": idle_threshold_s, "clock": clock,
              "hanging": hanging or ["single"], "prefetch": prefetch or []},
        height="content",
    )


def report_editor(
    case_ref: str, text: str, *, mode: str, autosave_s: float = 3.0, submit_label: str = "Submit",
    placeholder: str = "", limit: int = 20_000,
) -> dict | None:
    """The editor and SUBMIT button.

    The browser sends the submission straight to the server (``/api/reading/{case_ref}/submit``) at the press,
    and says in the editor when it is refused, keeping the text; once the server has answered, the component
    asks for a rerun so the page shows the questions. The page learns of the submission from the database;
    the rerun's payload says only whether this tab's press was the one stored.

    Parameters
    ----------
    case_ref : str
        The case's opaque reference.
    text : str
        Initial text: empty (write), the draft (edit) or the last autosave (resume).
    mode : {"write", "edit", "none"}
        ``"none"`` shows only the SUBMIT button (compare and reasoning cases).
    limit : int
        The report's length limit, shown by the live character counter.

    Returns
    -------
    dict or None
        On the rerun the component asked for: ``{"case_ref", "outcome"}`` with outcome ``"stored"`` (this
        tab's press) or ``"already"`` (another tab or window had submitted first).
    """
    result = _editor(
        key=f"editor-{case_ref}",
        data={"case_ref": case_ref, "text": text, "mode": mode, "autosave_s": autosave_s,
              "submit_label": submit_label, "placeholder": placeholder, "limit": limit},
        on_submitted_change=lambda: None,
        height="content",
    )
    return getattr(result, "submitted", None)
