"""The case page's flow decisions, apart from drawing: which case is on screen, whether the instructions come
first, how long a notice stays, what a press led to. No Streamlit here, so each rule is unit-tested as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from study_app.services.reading import Worklist, WorklistItem

ALREADY_SUBMITTED_NOTICE = "This case was already submitted (in another tab or window); the first submission stands."


def needs_instructions(worklist: Worklist, item: WorklistItem, instructions: str, instructed: set[str]) -> bool:
    """Instructions come before the first case of a task, until the reader has started one.

    Keyed by the task and the text, not the arm: two arms with the same instructions (edit a resident draft,
    edit a model draft) must not announce themselves as different by showing them twice. ``instructed`` is
    the set of instruction texts this tab has shown and the reader has started from.
    """
    if item.status != "ready" or not instructions.strip() or instructions in instructed:
        return False
    return all(i.status in ("pending", "ready") for i in worklist.items if i.task == item.task)


@dataclass(frozen=True)
class Screen:
    """What the page shows: a case (``case_ref``, and its worklist entry when it is the reader's), or the end."""

    case_ref: str | None
    item: WorklistItem | None

    @property
    def end(self) -> bool:
        return self.case_ref is None


def screen_for(worklist: Worklist, requested: str | None) -> Screen:
    """The case asked for in the address (``?case=``), whoever's it is (the service decides), else the next one."""
    if requested is not None:
        return Screen(requested, worklist.item(requested))
    item = worklist.next_item()
    return Screen(item.case_ref if item else None, item)


def screen_key(worklist: Worklist, requested: str | None, just_done: str | None) -> str:
    """A name for what is on screen now, so a notice can stay exactly while the reader is on it."""
    if just_done is not None:
        return f"done-{just_done}"
    screen = screen_for(worklist, requested)
    return screen.case_ref or "end"


def keep_notice(notice: dict | None, on_screen: str) -> dict | None:
    """A notice stays while the reader is on the screen where it first showed, through the page's own reruns
    (the viewer's report of the image drawn reruns it, for instance); it goes once the reader is elsewhere."""
    if notice is None:
        return None
    if notice.setdefault("on", on_screen) != on_screen:
        return None
    return notice


@dataclass(frozen=True)
class PressOutcome:
    """What became of this tab's press, once its case left the editor."""

    notice: str | None = None
    just_done: str | None = None


def press_outcome(case_ref: str, status: str | None, payload: dict | None) -> PressOutcome:
    """This tab's press, from the case's status now and the editor's last message (its rerun's payload).

    Another tab's submission stood first: a notice says so. The case is completed (no questions): the page
    says it is saved and offers the next one. Submitted with questions: nothing to say, the questions show.
    """
    if payload and payload.get("outcome") == "already":
        return PressOutcome(notice=ALREADY_SUBMITTED_NOTICE)
    if status == "completed":
        return PressOutcome(just_done=case_ref)
    return PressOutcome()


def answer_text(answer: str | None, options: dict[str, str] | None) -> str | None:
    """The model's answer with its option text when it names an option ("C" -> "C. Left effusion")."""
    stripped = (answer or "").strip()
    options = options or {}
    return f"{stripped}. {options[stripped]}" if stripped in options else answer


def finished_toast(worklist: Worklist, case_ref: str) -> str:
    """What the page says, briefly, on the next case once one is finished (submitted, answers saved)."""
    item = worklist.item(case_ref)
    where = f"Case {item.position} of {worklist.total}" if item is not None else "The case"
    return f"{where} is saved and finished."
