"""What makes one model output unfit to show readers as it stands: cut by the token limit, not parsed, or empty.

A draft is judged from what was stored with it (parse status, finish reason, the parsed report and answer), so
recorded outputs replayed from a manifest are judged exactly like freshly generated ones. Duplicates (two drafts
stored for one case) are a property of a set of drafts, not of one output: the app finds them
(``study_app.services.draft_review``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

#: Problem codes, in the order they are listed, with what each means.
DRAFT_PROBLEMS = {
    "cut": "cut by the token limit",
    "unparsed": "not parsed into an answer",
    "empty": "empty",
    "duplicated": "more than one draft for the case, or a reader draft equal to the model's",
}
EXCERPT_CHARS = 48


@dataclass(frozen=True)
class OutputProblem:
    """One problem of one output: its code (a key of :data:`DRAFT_PROBLEMS`) and what exactly is wrong."""

    code: str
    detail: str


def excerpt_end(text: str | None, chars: int = EXCERPT_CHARS) -> str:
    """The last ``chars`` characters of a text on one line, with an ellipsis when shortened (where a cut shows)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= chars else "..." + flat[-chars:]


def output_problems(*, task: str, mode: str | None, parse_status: str | None, finish_reason: str | None,
                    report: str | None, answer: str | None = None,
                    options: Mapping[str, str] | None = None) -> list[OutputProblem]:
    """The problems of one stored model output, empty when it can be shown as it is.

    Parameters
    ----------
    task : str
        ``findings`` (a report draft) or ``mc`` (a multiple-choice answer with its reasoning).
    mode : str or None
        ``reasoning`` (the answer must be in ``\\boxed{}``) or ``instruction`` (the whole text is the answer).
    parse_status : str or None
        As :func:`model_runtime.parsing.parse_output` set it: ``ok``, ``no_box``, ``unclosed_box``,
        ``multiple_boxes``.
    finish_reason : str or None
        The server's ``finish_reason``; ``length`` means generation stopped at ``max_tokens``.
    report, answer : str or None
        The parsed report readers see, and for ``mc`` the parsed answer.
    options : mapping of str to str, optional
        For ``mc``: letter -> option text; an answer naming none of them is not parsed.

    Returns
    -------
    list of OutputProblem
        ``cut``: ``finish_reason == "length"`` or the box left open (an output cut inside its answer);
        ``unparsed``: a reasoning-mode output without a box, or an ``mc`` answer naming no option;
        ``empty``: nothing to show.

    Examples
    --------
    >>> [p.code for p in output_problems(task="findings", mode="reasoning", parse_status="unclosed_box",
    ...                                   finish_reason="length", report="Right lower lobe opacity, pneum")]
    ['cut']
    """
    from model_runtime.parsing import extract_choice

    found: list[OutputProblem] = []
    shown = answer if task == "mc" and answer is not None else report
    cut = []
    if finish_reason == "length":
        cut.append("stopped at the token limit (finish_reason = length)")
    if parse_status == "unclosed_box":
        cut.append("its \\boxed{} answer is not closed")
    if cut:
        found.append(OutputProblem("cut", "; ".join(cut) + f"; ends {excerpt_end(shown)!r}"))
    if not (shown or "").strip():
        found.append(OutputProblem("empty", "the answer readers would see is empty"))
    elif parse_status == "no_box" and mode == "reasoning":
        found.append(OutputProblem("unparsed", "a reasoning-mode output without a \\boxed{} answer"))
    elif task == "mc" and options and extract_choice(shown or "", options) is None:
        found.append(OutputProblem("unparsed", f"the answer {excerpt_end(shown)!r} names none of the options"))
    return found
