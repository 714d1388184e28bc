"""Study designs as data: the TOML format, its parser, and the designs that ship with the platform."""

from study_app.designs.design import (
    ArmSpec,
    DesignError,
    DraftSourceSpec,
    QuestionSpec,
    SessionPlan,
    SitePlan,
    StudyDesign,
    draft_origin,
    load_design,
    parse_design,
    shipped_design_path,
)

__all__ = [
    "ArmSpec",
    "DesignError",
    "DraftSourceSpec",
    "QuestionSpec",
    "SessionPlan",
    "SitePlan",
    "StudyDesign",
    "draft_origin",
    "load_design",
    "parse_design",
    "shipped_design_path",
]
