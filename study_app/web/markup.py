"""Design instructions as markdown that loads nothing: no image, link or address survives as one.

Arm instructions are the only markdown the app renders (a design file is written by a coordinator, but it
is still text from a file). Formatting stays (emphasis, lists, headings, code); an image becomes its alt
text, a link its text followed by its address, and every address (``https://...``, ``www....``, an e-mail)
is shown as code, which markdown never turns into a link; what is left of the link syntax (brackets, angle
brackets) is escaped. Escaping alone is not enough: GFM links a bare ``https\\://...`` all the same (seen in
Chromium, tests/reliability/test_csp.py). The page's Content-Security-Policy (img-src 'self') is the second
line of defence.
"""

from __future__ import annotations

import re

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:[^\n]*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(([^)\n]*)\)")
_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\n]*)\)")
_ANGLE_LINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>]*|[^\s<>@]+@[^\s<>@]+)>")
_ADDRESS = re.compile(
    r"(?:\b[a-zA-Z][a-zA-Z0-9+.-]{1,31}://|\bwww\.)[^\s`<>]*[^\s`<>.,;:!?)\]'\"]"  # URLs and www. names
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"                                          # e-mail addresses
    r"|\bmailto:[^\s`<>]+",
    re.IGNORECASE,
)


def _code(text: str) -> str:
    return f"`{text.replace('`', '')}`" if text else ""


def _address(target: str) -> str:
    return target.strip().split(" ", 1)[0].strip("<>")


def _inert(text: str) -> str:
    text = _IMAGE.sub(lambda m: m.group(1) or "(image)", text)
    text = _LINK.sub(lambda m: f"{m.group(1)} ({_code(_address(m.group(2)))})" if _address(m.group(2)) else m.group(1),
                     text)
    text = _ANGLE_LINK.sub(lambda m: _code(m.group(1)), text)
    # Addresses become code spans; the text between them loses what could still form a link.
    pieces = []
    last = 0
    for match in re.finditer(r"`[^`]*`|" + _ADDRESS.pattern, text, re.IGNORECASE):
        pieces.append(_escape(text[last:match.start()]))
        found = match.group(0)
        pieces.append(found if found.startswith("`") else _code(found))
        last = match.end()
    pieces.append(_escape(text[last:]))
    return "".join(pieces)


def _escape(text: str) -> str:
    return re.sub(r"(?<!\\)([\[\]<>])", r"\\\1", text)


def inert_markdown(text: str) -> str:
    """``text`` with every image, link, reference definition, autolink and bare address made plain text."""
    text = _REFERENCE.sub("", text or "")
    # The coordinator's own code spans are kept as they are (markdown shows them literally, links included).
    out = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(_inert(text[last:span.start()]))
        out.append(span.group(0))
        last = span.end()
    out.append(_inert(text[last:]))
    return "".join(out)
