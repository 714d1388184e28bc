"""The case page's two browser components: the image viewer (with the reading clock) and the report editor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

_HERE = Path(__file__).parent


def _asset(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


# Registered once per process; the assets are inline strings, so nothing is fetched from a CDN.
_viewer = st.components.v2.component(
    "readerstudy_viewer", html=_asset("viewer.html"), css=_asset("viewer.css"), js=_asset("viewer.js")
)
_editor = st.components.v2.component(
    "readerstudy_editor", html=_asset("editor.html"), css=_asset("editor.css"), js=_asset("editor.js")
)


def image_viewer(assignment_id: int, images: list[dict[str, Any]], *, idle_threshold_s: float) -> None:
    """Show a case's images (switchable views, zoom, pan, window/level, invert, reset).

    Parameters
    ----------
    assignment_id : int
        The case being read; the viewer reports "image shown" for it and keeps its reading clock.
    images : list of dict
        ``id``, ``label``, ``url`` and the packing/window fields of ``DisplayImage.meta()``.
    idle_threshold_s : float
        Input pauses longer than this count as idle time.
    """
    _viewer(
        key=f"viewer-{assignment_id}",
        data={"assignment_id": assignment_id, "images": images, "idle_threshold_s": idle_threshold_s},
        height="content",
    )


def report_editor(
    assignment_id: int, text: str, *, mode: str, attempt: int = 0, autosave_s: float = 3.0,
    submit_label: str = "Submit", placeholder: str = "",
) -> dict | None:
    """The editor and SUBMIT button; returns the submit payload once, on the rerun SUBMIT triggers.

    Parameters
    ----------
    assignment_id : int
    text : str
        Initial text: empty (write), the draft (edit) or the last autosave (resume).
    mode : {"write", "edit", "none"}
        ``"none"`` shows only the SUBMIT button (compare and reasoning cases).
    attempt : int
        Bumped after a refused submit so the browser unlocks the editor.

    Returns
    -------
    dict or None
        ``{"text", "active_s", "hidden_s", "idle_s"}`` when SUBMIT was pressed on this rerun.
    """
    result = _editor(
        key=f"editor-{assignment_id}-{attempt}",
        data={"assignment_id": assignment_id, "text": text, "mode": mode, "attempt": attempt,
              "autosave_s": autosave_s, "submit_label": submit_label, "placeholder": placeholder},
        on_submit_change=lambda: None,
        height="content",
    )
    return getattr(result, "submit", None)
