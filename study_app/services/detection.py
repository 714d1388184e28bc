"""The rule of a detect read's marks: what a valid mark is, when the marks are complete, and what the page shows.

For each finding of the study's list (the design's ``[detection]``) the reader says whether it is present and how
confident they are that it is present, from the scale's ``min`` (surely absent) to its ``max`` (surely present).
A mark is saved as it is made (a reload or a crash loses nothing) and locked by SUBMIT, which needs every finding
marked. A mark whose two halves disagree (present, but confidence below the scale's middle; absent, but above it)
is refused with the finding named: the ROC analysis ranks the confidence and the sensitivity counts the call, so a
read must not say both. What the AI shows is the arm's (``ai_shown``): the model's label for each finding, from
the manifest's ``model_labels`` at the design's threshold, and/or its draft report.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_app.services.errors import InvalidInput
from study_app.store.models import Arm, Assignment, CaseLabel, FindingMark, Study


@dataclass(frozen=True)
class Scale:
    """The confidence scale of a study's marks."""

    low: int
    high: int
    low_label: str
    high_label: str
    model_threshold: float

    @property
    def middle(self) -> float:
        return (self.low + self.high) / 2

    @classmethod
    def of(cls, settings: dict) -> Scale:
        confidence = settings["confidence"]
        return cls(int(confidence["min"]), int(confidence["max"]), confidence["min_label"], confidence["max_label"],
                   float(settings["model_threshold"]))


def model_says_present(probability: float | None, threshold: float) -> bool | None:
    """The model's call on a finding: present at or above the design's ``model_threshold``; None without a
    probability. The one rule the page's AI labels and the export's ``model_present`` follow."""
    return None if probability is None else probability >= threshold


def detection_settings(study: Study) -> dict:
    """The study's frozen ``[detection]`` table (study creation stores it); a study without one has no detect arm."""
    settings = study.settings.get("detection")
    if not settings:
        raise InvalidInput("this study has no detection task")
    return settings


def validate_mark(scale: Scale, finding: str, present: object, confidence: object) -> tuple[bool | None, int | None]:
    """One finding's mark as the page sends it (either half may still be missing); raises InvalidInput."""
    if present is not None and not isinstance(present, bool):
        raise InvalidInput(f"{finding}: present must be yes or no")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or confidence != int(confidence):
            raise InvalidInput(f"{finding}: the confidence must be a whole number from {scale.low} to {scale.high}")
        confidence = int(confidence)
        if not scale.low <= confidence <= scale.high:
            raise InvalidInput(f"{finding}: the confidence must be from {scale.low} to {scale.high}, not {confidence}")
    if present is not None and confidence is not None:
        if present and confidence < scale.middle:
            raise InvalidInput(f"{finding}: marked present with confidence {confidence} of {scale.high}, which says "
                               f"it is more likely absent; change one of the two")
        if not present and confidence > scale.middle:
            raise InvalidInput(f"{finding}: marked absent with confidence {confidence} of {scale.high}, which says "
                               f"it is more likely present; change one of the two")
    return present, confidence


def marks_of(session: Session, assignment_id: int) -> dict[str, dict]:
    """The read's saved marks: finding -> {"present", "confidence"}."""
    return {m.finding: {"present": m.present, "confidence": m.confidence}
            for m in session.scalars(select(FindingMark).where(FindingMark.assignment_id == assignment_id))}


def save_mark(session: Session, assignment: Assignment, finding: object, present: object, confidence: object,
              now) -> None:
    """Save (or change) one finding's mark of an open detect read, in the caller's transaction."""
    settings = detection_settings(session.get(Study, assignment.study_id))
    if not isinstance(finding, str) or finding not in settings["findings"]:
        raise InvalidInput(f"{finding!r} is not one of this study's findings")
    present, confidence = validate_mark(Scale.of(settings), finding, present, confidence)
    row = session.scalars(select(FindingMark).where(FindingMark.assignment_id == assignment.id,
                                                    FindingMark.finding == finding)).first()
    if row is None:
        session.add(FindingMark(assignment_id=assignment.id, finding=finding, present=present, confidence=confidence,
                                marked_at=now))
    else:
        row.present, row.confidence, row.marked_at = present, confidence, now


def check_complete(session: Session, assignment: Assignment) -> dict[str, dict]:
    """The marks SUBMIT locks: every finding marked present or absent with a confidence; raises InvalidInput
    naming the findings still to mark."""
    study = session.get(Study, assignment.study_id)
    settings = detection_settings(study)
    marks = marks_of(session, assignment.id)
    missing = [f for f in settings["findings"]
               if marks.get(f, {}).get("present") is None or marks.get(f, {}).get("confidence") is None]
    if missing:
        listed = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise InvalidInput(f"not submitted: mark every finding present or absent, with a confidence ({listed} "
                           f"still to mark)")
    return {f: marks[f] for f in settings["findings"]}


def detection_view(session: Session, assignment: Assignment, arm: Arm) -> dict:
    """What the page draws for a detect read: the findings in order, the scale, the AI's labels when the arm shows
    them, and the marks saved so far. The same shape for every read of the study; only the AI's labels differ by
    arm (aided or not, which the reader is told)."""
    study = session.get(Study, assignment.study_id)
    settings = detection_settings(study)
    scale = Scale.of(settings)
    labels = None
    if "labels" in arm.ai_shown:
        probabilities = {row.finding: row.model_probability for row in session.scalars(
            select(CaseLabel).where(CaseLabel.case_id == assignment.case_id))}
        labels = {f: {"present": bool(model_says_present(probabilities.get(f), scale.model_threshold)),
                      "probability": probabilities.get(f)} for f in settings["findings"]}
    return {"findings": list(settings["findings"]),
            "scale": {"min": scale.low, "max": scale.high, "min_label": scale.low_label,
                      "max_label": scale.high_label},
            "ai_labels": labels, "shows_draft": "draft" in arm.ai_shown,
            "marks": marks_of(session, assignment.id)}
