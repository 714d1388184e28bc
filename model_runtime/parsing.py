"""Split CheXOne output into reasoning and final answer at ``\\boxed{...}``, and clean any draft into plain reader-facing text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Mapping

PARSE_STATUSES = ("ok", "no_box", "unclosed_box", "multiple_boxes")

_BOX_OPEN = re.compile(r"\\boxed\s*\{")


@dataclass(frozen=True)
class ParsedOutput:
    """One model output, split and cleaned.

    Attributes
    ----------
    raw : str
        The output exactly as generated (never modified).
    reasoning : str
        Text before the final box (empty when there is no box).
    answer : str
        Content of the final box (one outer ``{}`` pair removed for ``\\boxed{{...}}``),
        or the whole text when there is no box.
    report : str
        ``answer`` passed through :func:`clean_report_text`: the draft readers see.
    status : str
        ``ok`` (one closed box), ``no_box`` (instruction mode: whole text is the
        answer), ``unclosed_box`` (output cut inside the box, usually by the token
        limit; ``answer`` is the partial content), ``multiple_boxes`` (the last one
        is taken).
    """

    raw: str
    reasoning: str
    answer: str
    report: str
    status: str


def _match_brace(text: str, open_index: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``, or None when the text ends first."""
    depth = 0
    i = open_index
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2  # an escaped brace is literal text, not structure
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _strip_outer_braces(content: str) -> str:
    """``{...}`` -> ``...`` when one balanced pair wraps the whole content (``\\boxed{{...}}``)."""
    stripped = content.strip()
    while stripped.startswith("{") and _match_brace(stripped, 0) == len(stripped) - 1:
        stripped = stripped[1:-1].strip()
    return stripped


_FINAL_ANSWER_TAIL = re.compile(r"final\s+answer\s*$", re.IGNORECASE)


def _strip_lead_in(text: str) -> str:
    """Drop what a model writes just before its box (``**Final Answer:** $$``, ``\\[``): neither reasoning nor answer."""
    while True:
        before = text
        text = text.rstrip(" \t\r\n*#:$")
        if text.endswith(("\\[", "\\(")):
            text = text[:-2]
        match = _FINAL_ANSWER_TAIL.search(text, max(0, len(text) - 40))
        if match:
            text = text[: match.start()]
        if text == before:
            return text


def parse_output(raw: str) -> ParsedOutput:
    """Split a raw model output into reasoning, answer and cleaned report.

    Parameters
    ----------
    raw : str
        Generated text.

    Returns
    -------
    ParsedOutput

    Examples
    --------
    >>> p = parse_output("The lungs look clear.\\n\\\\boxed{No acute findings.}")
    >>> p.status, p.reasoning, p.report
    ('ok', 'The lungs look clear.', 'No acute findings.')
    """
    raw = raw if raw is not None else ""
    boxes: list[tuple[int, int, int | None]] = []  # (start of \boxed, index of "{", index of "}")
    position = 0
    while True:
        match = _BOX_OPEN.search(raw, position)
        if match is None:
            break
        open_index = match.end() - 1
        close_index = _match_brace(raw, open_index)
        boxes.append((match.start(), open_index, close_index))
        if close_index is None:
            break
        position = close_index + 1  # a box inside a box is content, not another answer

    if not boxes:
        answer = raw.strip()
        return ParsedOutput(raw=raw, reasoning="", answer=answer, report=clean_report_text(answer), status="no_box")

    start, open_index, close_index = boxes[-1]
    if close_index is None:
        status = "unclosed_box"
        content = raw[open_index + 1:]
        if content.lstrip().startswith("{"):
            content = content.lstrip()[1:]
    else:
        status = "multiple_boxes" if len(boxes) > 1 else "ok"
        content = raw[open_index + 1:close_index]
    answer = _strip_outer_braces(content)
    reasoning = _strip_lead_in(raw[:start]).strip()
    return ParsedOutput(raw=raw, reasoning=reasoning, answer=answer, report=clean_report_text(answer), status=status)


_LATEX_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox|emph)\s*\{")
_FINAL_ANSWER = re.compile(r"\**\s*final\s+answer\s*\**\s*:?\s*\**\s*:?", re.IGNORECASE)
_HEADER_LINE = re.compile(r"^\s{0,3}#{1,6}\s*(.*?)\s*#*\s*$", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}\s*$)\s*$", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,2}[.)])\s+", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_UNDERLINE_BOLD = re.compile(r"(?<!\w)__(?=[^\s_])(.+?)(?<=[^\s_])__(?!\w)", re.DOTALL)
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_LEADING_FINDINGS = re.compile(r"^\s*findings\s*(?::|\n)\s*", re.IGNORECASE)


def _unwrap_latex_text(text: str) -> str:
    """``\\text{abc}`` -> ``abc`` (also textbf, mathrm, ...), innermost braces balanced."""
    while True:
        match = _LATEX_TEXT_COMMAND.search(text)
        if match is None:
            return text
        open_index = match.end() - 1
        close_index = _match_brace(text, open_index)
        if close_index is None:  # cut output: drop the command, keep what follows
            return text[:match.start()] + text[open_index + 1:]
        text = text[:match.start()] + text[open_index + 1:close_index] + text[close_index + 1:]


def normalise_report_text(text: str) -> str:
    """The one normalisation every draft gets before a reader sees it, whoever wrote it.

    Parameters
    ----------
    text : str
        A report: a reader's submitted text as written, an imported reader draft, or a model's answer
        after :func:`clean_report_text`.

    Returns
    -------
    str
        Unicode NFC; line endings as ``\\n``; no trailing spaces or tabs on any line; no blank lines or
        spaces before the first word or after the last; runs of blank lines reduced to one. Nothing else
        changes: words, single line breaks, indentation, tabs inside a line, markup and LaTeX stay
        exactly as written.

    Notes
    -----
    Blinding: the platform must add no difference between sources of its own. A reader's report goes to
    the next reader through this function only (never through the model-output parser, which would turn a
    typed ``\\boxed{Cardiomegaly}`` into ``\\boxedCardiomegaly``); a model's answer goes through
    :func:`clean_report_text` (its own formatting artifacts) and then through this function. A plain text
    (no model markup) therefore comes out the same from either source.

    Examples
    --------
    >>> normalise_report_text("  Heart normal.  \\r\\n\\r\\n\\r\\n\\tNo effusion.\\n")
    'Heart normal.\\n\\n\\tNo effusion.'
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip(" \t") for line in text.split("\n")]
    kept: list[str] = []
    for line in lines:
        if not line.strip() and (not kept or not kept[-1].strip()):
            continue  # a blank line at the start, or after another blank line
        kept.append("" if not line.strip() else line)
    while kept and not kept[-1].strip():
        kept.pop()
    if kept:
        kept[0] = kept[0].lstrip(" \t")
    return "\n".join(kept)


def clean_report_text(text: str) -> str:
    """A model's answer as plain report text: the model's own formatting artifacts removed.

    Parameters
    ----------
    text : str
        A parsed model answer (the content of its final box, or the whole output in instruction mode).
        Never a reader's text: that goes to :func:`normalise_report_text` only.

    Returns
    -------
    str
        The text without ``**Final Answer:**`` / ``Final Answer:``, ``$$`` and ``\\[ \\]`` math
        delimiters, ``\\text{...}`` (inner text kept), LaTeX escapes (``\\%``, ``\\\\`` line
        breaks), markdown headers, rules, bullets, bold and italic markers, and a leading ``Findings:``
        label; then :func:`normalise_report_text`. Line breaks stay where the model put them.

    Notes
    -----
    These artifacts come from how the model was trained to answer (boxes, LaTeX, markdown), not from how a
    radiologist writes, so they are removed from model output only. Underscore runs such as MIMIC's ``___``
    de-identification placeholders are left alone.

    Examples
    --------
    >>> clean_report_text("**Findings:**\\n- Lungs are clear.\\n- No effusion.")
    'Lungs are clear.\\nNo effusion.'
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _unwrap_latex_text(text)
    text = _FINAL_ANSWER.sub("", text)
    text = text.replace("$$", "").replace("\\[", "").replace("\\]", "")
    text = re.sub(r"\\\\(?=\s|$)", "\n", text)  # LaTeX line break
    text = re.sub(r"\\([%&#_$])", r"\1", text)  # LaTeX escapes
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == "$" and stripped[-1] == "$":
        text = stripped[1:-1]
    text = _RULE.sub("", text)
    # A header becomes a label so "## Impression" does not run into the next sentence.
    text = _HEADER_LINE.sub(lambda m: m.group(1).rstrip(" :*") + ":", text)
    text = _BULLET.sub("", text)
    text = _BOLD.sub(r"\1", text)
    text = _UNDERLINE_BOLD.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    text = text.replace("**", "")
    text = re.sub(r"(?<!\\)[{}]", "", text)  # braces left over from LaTeX are never report text
    text = _LEADING_FINDINGS.sub("", text, count=1)
    return normalise_report_text(text)


def extract_choice(answer: str, options: Mapping[str, str]) -> str | None:
    """The option letter a multiple-choice answer picks, or None when it picks none clearly.

    Parameters
    ----------
    answer : str
        The parsed answer (box content), e.g. ``"B"``, ``"(B) Left"``, ``"B. Left"``,
        ``"The answer is B"`` or the option text itself.
    options : mapping of str to str
        Letter -> option text.

    Returns
    -------
    str or None
        An upper-case letter present in ``options``.

    Notes
    -----
    Order of evaluation: a leading letter with punctuation (``B``, ``B.``, ``(B)``,
    ``B:``); the option text verbatim (case-insensitive); an ``answer is B`` /
    ``option B`` phrase; then a single option text contained in the answer. A bare
    leading word such as ``A small effusion`` is not read as letter A.
    """
    letters = {letter.upper(): text for letter, text in options.items()}
    if not answer or not letters:
        return None
    text = clean_report_text(answer).strip()
    match = re.match(r"^\(([A-Za-z])\)|^([A-Za-z])(?:[.):]|$)", text)
    if match:
        letter = (match.group(1) or match.group(2)).upper()
        if letter in letters:
            return letter
    folded = text.casefold().rstrip(".")
    for letter, option in letters.items():
        if folded == option.casefold().strip().rstrip("."):
            return letter
    match = re.search(r"\b(?:answer\s+is|answer:|option|choice)\s*:?\s*\(?([A-Za-z])\)?(?![\w])", text, re.IGNORECASE)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    contained = [letter for letter, option in letters.items() if option.strip() and option.casefold().strip() in folded]
    if len(contained) == 1:
        return contained[0]
    return None
