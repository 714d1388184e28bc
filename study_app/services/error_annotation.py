"""The rule of a reader's error annotation of a draft: which edits there are to annotate, and what a valid mark is.

The edits are the draft-to-final diff as :func:`analysis.draft_errors.edit_segments` cuts it (the one definition,
which the export and the analysis read too); a mark gives each edit a ReXVal category, or "not an error", and for
an error whether it is clinically significant. Nothing here depends on where the draft came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.draft_errors import ANNOTATION_CHOICES, NOT_AN_ERROR, edit_segments

from study_app.services.errors import InvalidInput


@dataclass(frozen=True)
class AcceptedMark:
    segment: int
    edit_kind: str
    draft_text: str
    final_text: str
    category: str
    significant: bool | None  # None for "not an error"


def segments_of(shown_text: str, final_text: str) -> list[dict]:
    """The edits a reader annotates for one read (numbered from 1, in text order)."""
    return edit_segments(shown_text, final_text)


def _segment_number(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isdigit() and len(raw) <= 6:
        return int(raw)
    return None


def validate_error_marks(segments: list[dict], marks: dict[object, object] | None) -> list[AcceptedMark]:
    """Check a reader's marks against a read's edits; every edit must be marked.

    ``marks`` maps an edit's number (``1`` or ``"1"``) to ``{"category": code, "significant": True | False}``;
    ``significant`` is required for an error and ignored for ``not_an_error``. Raises :class:`InvalidInput`
    naming every problem (an unknown edit number, an unknown category, an edit not marked, a significance not
    given), so nothing is written unless all marks stand.
    """
    marks = dict(marks or {})
    by_number = {s["segment"]: s for s in segments}
    problems: list[str] = []
    given: dict[int, object] = {}
    for raw_number, mark in marks.items():
        number = _segment_number(raw_number)
        if number is None or number not in by_number:
            problems.append(f"there is no edit {str(raw_number)[:20]} to annotate "
                            f"(this draft has {len(segments)} edit{'s' if len(segments) != 1 else ''})")
            continue
        given[number] = mark
    accepted: list[AcceptedMark] = []
    for segment in segments:
        number = segment["segment"]
        mark = given.get(number)
        if mark is None:
            problems.append(f"please mark edit {number}: an error category, or not an error")
            continue
        if not isinstance(mark, dict):
            problems.append(f"edit {number}: expected a category and a significance")
            continue
        category = mark.get("category")
        if category is None or category == "":
            problems.append(f"please mark edit {number}: an error category, or not an error")
            continue
        if category not in ANNOTATION_CHOICES:
            problems.append(f"edit {number}: '{str(category)[:40]}' is not an error category "
                            f"(expected one of {', '.join(ANNOTATION_CHOICES)})")
            continue
        significant = mark.get("significant")
        if category == NOT_AN_ERROR:
            significant = None
        elif not isinstance(significant, bool):
            problems.append(f"edit {number}: say whether the error is clinically significant")
            continue
        accepted.append(AcceptedMark(number, segment["kind"], segment["draft"], segment["final"], category,
                                     significant))
    if problems:
        raise InvalidInput("; ".join(problems))
    return accepted
