"""Design instructions as markdown that loads nothing: no image, link or URL survives as one.

Arm instructions are the only markdown the app renders (a design file is written by a coordinator, but it
is still text from a file). Formatting stays (emphasis, lists, headings, code); an image becomes its alt
text, a link its text followed by its address as plain text, and everything else that could become a link
(a bracket, an angle bracket, a bare URL) is escaped, so the browser never fetches or offers a remote
address. The page's Content-Security-Policy (img-src 'self') is the second line of defence.
"""

from __future__ import annotations

import re

_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(([^)\n]*)\)")
_LINK = re.compile(r"(?<!\\)\[([^\]\n]*)\]\(([^)\n]*)\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:[^\n]*$", re.MULTILINE)
_SCHEME = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,15}):(//)?", re.ASCII)
_WWW = re.compile(r"\bwww\.", re.IGNORECASE)


def _address(target: str) -> str:
    return target.strip().split(" ", 1)[0].strip("<>")


def inert_markdown(text: str) -> str:
    """``text`` with every image, link, reference definition, autolink and bare URL made plain text."""
    text = _REFERENCE.sub("", text or "")
    text = _IMAGE.sub(lambda m: m.group(1) or "(image)", text)
    text = _LINK.sub(lambda m: f"{m.group(1)} ({_address(m.group(2))})" if _address(m.group(2)) else m.group(1),
                     text)
    # Whatever is left of the link syntax cannot form one once its brackets are escaped.
    text = re.sub(r"(?<!\\)([\[\]<>])", r"\\\1", text)
    # GFM turns "https://..." and "www...." into links by themselves; an escaped colon or dot stops that.
    text = _SCHEME.sub(lambda m: f"{m.group(1)}\\:" + ("\\/\\/" if m.group(2) else ""), text)
    return _WWW.sub(lambda m: m.group(0)[:3] + "\\.", text)
