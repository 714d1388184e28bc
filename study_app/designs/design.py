"""Reads a study design (TOML) into a checked, immutable description of roles, arms, questions and constraints."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis.plan import AnalysisPlan, check_plan_against_design, parse_plan

# What a reader does in an arm (not a prompt kind: model_runtime.prompts.PROMPT_KINDS).
ARM_TASKS = ("write", "edit", "compare", "rate_reasoning", "detect")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LIKERT_OPTIONS = (
    (10, "Strongly agree"),
    (5, "Agree"),
    (0, "Neutral"),
    (-5, "Disagree"),
    (-10, "Strongly disagree"),
)
# Where an arm's draft comes from, as a design says it (stored drafts have their own kinds: the store's
# STORED_DRAFT_KINDS, where a report of another arm is a "reader" draft).
DESIGN_SOURCE_KINDS = ("model", "arm", "manifest")


class DesignError(ValueError):
    """A design file that cannot be used; the message names the file's key that is wrong."""


@dataclass(frozen=True)
class Option:
    value: str
    label: str


# What a question asks for: one of its options (``choice``), a point of a Likert scale (``likert``, the point's
# score is what the export records), or a mark on a visual-analogue scale (``vas``, a number from min to max).
QUESTION_KINDS = ("choice", "likert", "vas")
# Every question lists its options in this many at most (a Likert scale of 0-100 points is a ``vas``).
MAX_LIKERT_POINTS = 21


@dataclass(frozen=True)
class QuestionSpec:
    key: str
    kind: str  # one of QUESTION_KINDS
    label: str
    options: tuple[Option, ...]  # choice: the options; likert: the points (value = the score as text); vas: none
    required: bool = True
    # vas: {"min", "max", "step", "min_label", "max_label"}; likert: {"neutral"} (the score "neither"); else None.
    scale: dict | None = None

    @property
    def numeric(self) -> bool:
        """Whether answers are scores the analysis averages (Likert points, visual-analogue marks)."""
        return self.kind in ("likert", "vas")

    def scoring(self) -> dict:
        """The question's scoring as the export records it in ``export_meta.json`` ``questions`` (and the analysis
        reads): ``kind``, ``values`` (the codes an answer may have; empty for ``vas``), ``labels`` (code -> label),
        and for the numeric kinds ``min``, ``max`` (the scale's ends) and ``neutral`` (its middle: the null of a
        single-condition test); ``vas`` also ``step``, ``min_label``, ``max_label``."""
        out: dict[str, Any] = {"kind": self.kind, "values": [o.value for o in self.options],
                               "labels": {o.value: o.label for o in self.options}}
        if self.kind == "likert":
            scores = [float(o.value) for o in self.options]
            out.update(min=min(scores), max=max(scores), neutral=float((self.scale or {}).get(
                "neutral", (min(scores) + max(scores)) / 2)))
        elif self.kind == "vas":
            scale = dict(self.scale or {})
            out.update(min=float(scale["min"]), max=float(scale["max"]), step=float(scale["step"]),
                       neutral=(float(scale["min"]) + float(scale["max"])) / 2,
                       min_label=scale.get("min_label", ""), max_label=scale.get("max_label", ""))
        return out


def score_text(score: float) -> str:
    """A score as an answer's code: ``5``, ``-10``, ``2.5`` (whole numbers without a decimal point)."""
    return str(int(score)) if float(score).is_integer() else repr(float(score))


def draft_origin(source_kind: str) -> str:
    """What a draft source is, as the analysis and the blinding see it: the model's, or a reader's.

    The one statement of the rule, for a design's draft source kinds (``model``, ``arm``, ``manifest``): a
    model draft is ``model``; a report of another arm and a reader draft recorded in the manifest are both
    ``reader``.
    """
    return "model" if source_kind == "model" else "reader"


@dataclass(frozen=True)
class DraftSourceSpec:
    """Where an arm's draft comes from: a model, another arm's submitted reports, or the manifest."""

    kind: str  # "model" | "arm" | "manifest"
    arm: str | None = None  # for kind == "arm"

    @property
    def origin(self) -> str:
        """What the draft is, as the analysis sees it: written by a model or by a reader."""
        return draft_origin(self.kind)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "arm": self.arm}


@dataclass(frozen=True)
class ArmSpec:
    key: str
    task: str
    role: str
    draft_sources: tuple[DraftSourceSpec, ...]
    questions: tuple[str, ...]
    readers_per_case: int
    cases: int | None  # None: every eligible case of the cohort
    timed: bool
    instructions: str
    # Case sampling across arms: exactly the cases another arm reads (fully crossed), or a sample drawn from the
    # cases none of the named arms read (disjoint). See _check_case_sampling.
    same_cases_as: str | None = None
    disjoint_from: tuple[str, ...] = ()
    # The reading round in which the arm's cases open to its readers (1 = at launch); see _reading_rounds.
    reading_round: int = 1
    declared_round: int | None = None
    # readers_per_case = "all": every reader of the role reads every case of the arm (a fully crossed arm);
    # the allocation resolves the number from the reader list.
    all_readers: bool = False
    # After SUBMIT of an edit, the reader marks the errors of the draft in each edit of the draft-to-final diff
    # (ReXVal categories and clinical significance; docs/designs.md, "Error annotation of drafts").
    annotate_errors: bool = False
    # A detect arm: what it shows of the AI's output (AI_SHOWN); "none" for every other task.
    ai_shown: str = "none"

    @property
    def draft_origins(self) -> frozenset[str]:
        """Where the arm's drafts come from, as readers must not be able to tell: {'model'}, {'reader'}, both."""
        return frozenset(source.origin for source in self.draft_sources)


# The reading desk's study-wide settings ([study.desk]); the same for every arm, so they cannot tell a source.
HANGING_STAGES = ("frontal_lateral", "current_prior", "single")
DESK_WINDOWS = ("file", "auto", "full", "lung", "mediastinum", "bone")


@dataclass(frozen=True)
class DeskSpec:
    """How the case page lays a case out: the hanging protocol's stages in order (``frontal_lateral``: the current
    frontal view beside the lateral; ``current_prior``: the current frontal beside the prior; ``single``: one
    view), the window the images open in, and whether an edit task shows its draft read-only above the editor."""

    hanging: tuple[str, ...] = HANGING_STAGES
    default_window: str = "file"
    show_draft: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"hanging": list(self.hanging), "default_window": self.default_window, "show_draft": self.show_draft}


def _parse_desk(raw: Any) -> DeskSpec:
    where = "study.desk"
    if raw is None:
        return DeskSpec()
    if not isinstance(raw, dict):
        raise DesignError(f"{where}: expected a table")
    _unknown_keys(raw, {"hanging", "default_window", "show_draft"}, where)
    hanging = tuple(_require_list_of_str(raw.get("hanging", list(HANGING_STAGES)), f"{where}.hanging"))
    bad = [stage for stage in hanging if stage not in HANGING_STAGES]
    if bad or not hanging or len(set(hanging)) != len(hanging):
        raise DesignError(f"{where}.hanging: expected stages from {', '.join(HANGING_STAGES)}, each once"
                          + (f" ('{bad[0]}' is not one)" if bad else ""))
    window = _optional(raw, "default_window", where, str, "file")
    if window not in DESK_WINDOWS:
        raise DesignError(f"{where}.default_window: '{window}' is not one of {', '.join(DESK_WINDOWS)}")
    return DeskSpec(hanging, window, _optional(raw, "show_draft", where, bool, True))


@dataclass(frozen=True)
class SessionPlan:
    """The [sessions] table: reading sessions separated by a washout, with the crossover arms they order.

    Each role's ``crossover`` arms are that role's modalities; every reader of the role who reads a case reads
    it once in each of them, one modality per session, so there are as many sessions as modalities. Which
    modality comes in which session is counterbalanced (``sequences``). Arms outside the crossover are read in
    session 1.
    """

    crossover: dict[str, tuple[str, ...]]  # role -> its crossover arm keys, in the order of the file
    washout_days: int
    session_days: int
    study_days: int

    @property
    def count(self) -> int:
        return len(next(iter(self.crossover.values())))

    @property
    def arms(self) -> frozenset[str]:
        return frozenset(key for keys in self.crossover.values() for key in keys)

    def sequences(self) -> tuple[tuple[int, ...], ...]:
        """The modality orders readers are given: AB/BA for two, a Williams square for an even number (balanced
        for first-order carry-over), a cyclic Latin square for an odd one. Every modality stands once in every
        session across the sequences, so balancing sequences balances each session's modalities."""
        return modality_sequences(self.count)

    def span_days(self) -> int:
        """The fewest days the schedule needs: every session's reading window, and a washout between each two."""
        return self.count * self.session_days + (self.count - 1) * self.washout_days

    def to_json(self) -> dict[str, Any]:
        return {"crossover": {role: list(keys) for role, keys in self.crossover.items()},
                "washout_days": self.washout_days, "session_days": self.session_days, "study_days": self.study_days}


def modality_sequences(m: int) -> tuple[tuple[int, ...], ...]:
    """Rows of a Latin square on ``m`` modalities (0..m-1): the Williams design when ``m`` is even, cyclic else.

    Williams (1949): row i is i, i+1, i-1, i+2, i-2, ... (mod m); for even m every modality follows every
    other exactly once, so first-order carry-over is balanced. For m = 2 this is AB/BA.
    """
    if m < 2:
        raise ValueError("a crossover needs at least two modalities")
    if m % 2:
        return tuple(tuple((i + j) % m for j in range(m)) for i in range(m))
    offsets = [0]
    for k in range(1, m):
        offsets.append((k + 1) // 2 if k % 2 else m - k // 2)
    return tuple(tuple((i + o) % m for o in offsets) for i in range(m))


# What a detect arm shows of the AI's output beside the images: nothing (unaided), the model's label for each
# finding (from the manifest's model_labels), the model's draft report, or both.
AI_SHOWN = ("none", "labels", "draft", "labels_and_draft")
DETECTION_KEYS = {"findings", "confidence", "model_threshold", "reader_threshold"}
MAX_FINDINGS = 40


@dataclass(frozen=True)
class DetectionPlan:
    """The [detection] table of a study with ``detect`` arms: the findings every detect read marks, in the order
    they are listed on the page, and the confidence scale each mark carries.

    For each finding the reader says whether it is present and how confident they are that it is present, from
    ``confidence_min`` (surely absent) to ``confidence_max`` (surely present): the rating the ROC analysis ranks
    (the empirical AUC). ``model_threshold``: the model's probability at or above which its label says present.
    ``reader_threshold``: a confidence at or above which a read counts positive for sensitivity and specificity;
    None: the reader's own presence mark decides.
    """

    findings: tuple[str, ...]
    confidence_min: int
    confidence_max: int
    confidence_min_label: str
    confidence_max_label: str
    model_threshold: float = 0.5
    reader_threshold: float | None = None

    @property
    def midpoint(self) -> float:
        return (self.confidence_min + self.confidence_max) / 2

    def to_json(self) -> dict[str, Any]:
        return {"findings": list(self.findings),
                "confidence": {"min": self.confidence_min, "max": self.confidence_max,
                               "min_label": self.confidence_min_label, "max_label": self.confidence_max_label},
                "model_threshold": self.model_threshold, "reader_threshold": self.reader_threshold}


SITE_MODES = ("own", "crossed")


@dataclass(frozen=True)
class SitePlan:
    """The [sites] table: how a multi-site study's readers meet the sites' cases.

    ``own``: a reader reads only cases of their own site (each site is a sub-study, balanced within it).
    ``crossed``: any reader may read any site's case; with ``balance`` every reader of a role has each site's
    cases of an arm within one as often as the role's other readers, so every reader reads every site.
    """

    mode: str
    balance: bool

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "balance": self.balance}


@dataclass(frozen=True)
class StudyDesign:
    name: str
    description: str
    roles: dict[str, str]  # role key -> label
    arms: tuple[ArmSpec, ...]
    questions: dict[str, QuestionSpec]
    distinct_case_per_reader: bool
    allow_going_back: bool
    worklist_order: str  # "random" or "blocked"
    idle_threshold_s: float
    invite_valid_days: int
    source_text: str = field(repr=False)
    analysis_plan: AnalysisPlan | None = None  # the [analysis] table; None: the shipped default applies
    desk: DeskSpec = field(default_factory=DeskSpec)  # [study.desk]
    sessions: SessionPlan | None = None  # the [sessions] table; None: one session, no washout
    sites: SitePlan | None = None  # the [sites] table; None: sites (if any) are recorded, not allocated by
    detection: DetectionPlan | None = None  # the [detection] table; a design has one exactly when it has detect arms

    def session_count(self) -> int:
        return self.sessions.count if self.sessions is not None else 1

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source_text.encode("utf-8")).hexdigest()

    def arm(self, key: str) -> ArmSpec:
        for arm in self.arms:
            if arm.key == key:
                return arm
        raise KeyError(key)


def _require(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise DesignError(f"{where}: missing required key '{key}'")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise DesignError(f"{where}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _optional(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in table:
        return default
    return _require(table, key, where, kind)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _check_key(value: str, where: str) -> str:
    if not KEY_PATTERN.match(value):
        raise DesignError(
            f"{where}: '{value}' is not a valid key (lower-case letters, digits and '_', starting with a letter)"
        )
    return value


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise DesignError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _parse_question(key: str, table: Any) -> QuestionSpec:
    where = f"questions.{key}"
    _check_key(key, where)
    if not isinstance(table, dict):
        raise DesignError(f"{where}: expected a table")
    kind = table.get("kind")
    allowed = {"kind", "label", "required", "options"}
    if kind == "likert":
        allowed |= {"points", "labels", "scores", "neutral"}
    elif kind == "vas":
        allowed = {"kind", "label", "required", "min", "max", "step", "min_label", "max_label"}
    _unknown_keys(table, allowed, where)
    kind = _require(table, "kind", where, str)
    label = _require(table, "label", where, str).strip()
    if not label:
        raise DesignError(f"{where}.label: must not be empty")
    required = _optional(table, "required", where, bool, True)
    scale = None
    if kind == "likert":
        options, scale = _likert_scale(table, where)
    elif kind == "vas":
        options, scale = (), _vas_scale(table, where)
    elif kind == "choice":
        options = _choice_options(table, where)
    else:
        raise DesignError(f"{where}.kind: '{kind}' is not one of {', '.join(QUESTION_KINDS)}")
    return QuestionSpec(key=key, kind=kind, label=label, options=options, required=required, scale=scale)


def _choice_options(table: dict, where: str) -> tuple[Option, ...]:
    raw = _require(table, "options", where, list)
    if len(raw) < 2:
        raise DesignError(f"{where}.options: a choice question needs at least two options")
    parsed = []
    for i, item in enumerate(raw, 1):
        item_where = f"{where}.options[{i}]"
        if not isinstance(item, dict):
            raise DesignError(f"{item_where}: expected a table with 'value' and 'label'")
        _unknown_keys(item, {"value", "label"}, item_where)
        value = _require(item, "value", item_where, str)
        option_label = _require(item, "label", item_where, str)
        if not value or not option_label.strip():
            raise DesignError(f"{item_where}: value and label must not be empty")
        parsed.append(Option(value, option_label))
    values = [o.value for o in parsed]
    if len(set(values)) != len(values):
        raise DesignError(f"{where}.options: duplicate option values {values}")
    return tuple(parsed)


def _likert_scale(table: dict, where: str) -> tuple[tuple[Option, ...], dict | None]:
    """A Likert scale: CheXOne's five points when nothing is said; else the points with their labels and scores.

    Either ``options = [{score = 3, label = "Strongly agree"}, ...]`` in the order shown, or ``points = 7`` with
    ``labels`` (one per point, in the order shown) and optionally ``scores`` (default 1 .. points in that order).
    ``neutral`` is the score of "neither" (default: the middle of the lowest and highest score).
    """
    given = {k for k in ("options", "points", "labels", "scores") if k in table}
    if not given:
        points = [(score, text) for score, text in LIKERT_OPTIONS]
    elif "options" in given:
        if given != {"options"}:
            raise DesignError(f"{where}: give the scale either as options or as points and labels, not both")
        raw = _require(table, "options", where, list)
        points = []
        for i, item in enumerate(raw, 1):
            item_where = f"{where}.options[{i}]"
            if not isinstance(item, dict):
                raise DesignError(f"{item_where}: expected a table with 'score' and 'label'")
            _unknown_keys(item, {"score", "label"}, item_where)
            score = _require(item, "score", item_where, (int, float))
            text = _require(item, "label", item_where, str).strip()
            if not text:
                raise DesignError(f"{item_where}.label: must not be empty")
            points.append((score, text))
    else:
        n = _require(table, "points", where, int)
        if not 2 <= n <= MAX_LIKERT_POINTS:
            raise DesignError(f"{where}.points: a Likert scale has 2 to {MAX_LIKERT_POINTS} points (use kind = \"vas\" "
                              "for a 0-100 scale)")
        labels = _require(table, "labels", where, list)
        if len(labels) != n or not all(isinstance(t, str) and t.strip() for t in labels):
            raise DesignError(f"{where}.labels: give {n} non-empty labels, one per point, in the order shown")
        scores = table.get("scores", list(range(1, n + 1)))
        if (not isinstance(scores, list) or len(scores) != n
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores)):
            raise DesignError(f"{where}.scores: give {n} numbers, one per point")
        points = list(zip(scores, (t.strip() for t in labels)))
    if len(points) < 2 or len(points) > MAX_LIKERT_POINTS:
        raise DesignError(f"{where}.options: a Likert scale has 2 to {MAX_LIKERT_POINTS} points")
    if any(isinstance(score, bool) or not float(score) == float(score) for score, _ in points):
        raise DesignError(f"{where}.options: every score must be a number")
    codes = [score_text(score) for score, _ in points]
    if len(set(codes)) != len(codes):
        raise DesignError(f"{where}: two points have the same score {codes}")
    scores_ = [float(score) for score, _ in points]
    scale = None
    if "neutral" in table:
        neutral = _require(table, "neutral", where, (int, float))
        if not min(scores_) <= neutral <= max(scores_):
            raise DesignError(f"{where}.neutral: {neutral} is outside the scale ({min(scores_):g} to {max(scores_):g})")
        scale = {"neutral": float(neutral)}
    return tuple(Option(code, text) for code, (_, text) in zip(codes, points)), scale


def _vas_scale(table: dict, where: str) -> dict:
    """A visual-analogue scale: a mark from ``min`` to ``max`` (0 to 100 by default) in steps of ``step`` (1),
    with optional words at its ends."""
    low = _optional(table, "min", where, (int, float), 0)
    high = _optional(table, "max", where, (int, float), 100)
    step = _optional(table, "step", where, (int, float), 1)
    if not low < high:
        raise DesignError(f"{where}: min ({low}) must be below max ({high})")
    if not 0 < step <= high - low:
        raise DesignError(f"{where}.step: expected a positive step no larger than the scale")
    return {"min": low, "max": high, "step": step, "min_label": _optional(table, "min_label", where, str, "").strip(),
            "max_label": _optional(table, "max_label", where, str, "").strip()}


def _parse_draft_source(raw: Any, where: str) -> DraftSourceSpec:
    if isinstance(raw, str):
        raw = {"kind": "arm", "arm": raw[4:]} if raw.startswith("arm:") else {"kind": raw}
    if not isinstance(raw, dict):
        raise DesignError(f"{where}: expected 'model', 'manifest', 'arm:<key>' or a table")
    _unknown_keys(raw, {"kind", "arm"}, where)
    kind = _require(raw, "kind", where, str)
    if kind not in DESIGN_SOURCE_KINDS:
        raise DesignError(f"{where}.kind: '{kind}' is not one of {', '.join(DESIGN_SOURCE_KINDS)}")
    arm = raw.get("arm")
    if kind == "arm":
        if not isinstance(arm, str) or not arm:
            raise DesignError(f"{where}: a draft from another arm must name it (arm = \"...\")")
    elif arm is not None:
        raise DesignError(f"{where}: 'arm' only goes with kind = \"arm\"")
    return DraftSourceSpec(kind=kind, arm=arm)


ARM_KEYS = {
    "key", "task", "role", "draft", "drafts", "questions", "readers_per_case", "cases", "timed", "instructions",
    "round", "same_cases_as", "disjoint_from", "annotate_errors", "ai",
}


def _parse_arm(index: int, table: Any, roles: dict[str, str], questions: dict[str, QuestionSpec]) -> ArmSpec:
    where = f"arms[{index}]"
    if not isinstance(table, dict):
        raise DesignError(f"{where}: expected a table")
    key = _check_key(_require(table, "key", where, str), f"{where}.key")
    where = f"arms[{index}] ({key})"
    _unknown_keys(table, ARM_KEYS, where)
    task = _require(table, "task", where, str)
    if task not in ARM_TASKS:
        raise DesignError(f"{where}.task: '{task}' is not one of {', '.join(ARM_TASKS)}")
    role = _require(table, "role", where, str)
    if role not in roles:
        raise DesignError(f"{where}.role: '{role}' is not a role of this design ({', '.join(roles)})")

    if "draft" in table and "drafts" in table:
        raise DesignError(f"{where}: give either 'draft' or 'drafts', not both")
    raw_sources = table.get("drafts", [table["draft"]] if "draft" in table else [])
    if not isinstance(raw_sources, list):
        raise DesignError(f"{where}.drafts: expected a list")
    sources = tuple(_parse_draft_source(s, f"{where}.drafts[{i}]") for i, s in enumerate(raw_sources, 1))
    ai_shown = _optional(table, "ai", where, str, "none")
    if "ai" in table and task != "detect":
        raise DesignError(f"{where}.ai: only a 'detect' arm shows the AI's output beside its marks; this is a "
                          f"'{task}' arm")
    if ai_shown not in AI_SHOWN:
        raise DesignError(f"{where}.ai: '{ai_shown}' is not one of {', '.join(AI_SHOWN)}")
    expected = {"write": 0, "edit": 1, "rate_reasoning": 1, "compare": 2,
                "detect": 1 if "draft" in ai_shown else 0}[task]
    if task == "detect" and len(sources) != expected:
        raise DesignError(
            f"{where}: a 'detect' arm with ai = \"{ai_shown}\" "
            + ("shows the model's draft: give draft = \"model\"" if expected else
               "shows no draft: leave out 'draft' (or show one with ai = \"draft\" or \"labels_and_draft\")")
        )
    if task == "detect" and sources and sources[0].kind != "model":
        raise DesignError(f"{where}.draft: a detect arm shows the AI's draft; its draft must be 'model'")
    if len(sources) != expected:
        raise DesignError(
            f"{where}: a '{task}' arm takes {expected} draft source(s), the design gives {len(sources)}"
        )
    if task == "compare" and sources[0].origin == sources[1].origin:
        raise DesignError(f"{where}.drafts: a comparison needs one model draft and one reader draft")
    if task == "rate_reasoning" and sources[0].kind != "model":
        raise DesignError(f"{where}.drafts: reasoning review rates the model's reasoning; its draft must be 'model'")

    question_keys = tuple(_require_list_of_str(table.get("questions", []), f"{where}.questions"))
    for q in question_keys:
        if q not in questions:
            raise DesignError(f"{where}.questions: '{q}' is not declared under [questions]")
    if len(set(question_keys)) != len(question_keys):
        raise DesignError(f"{where}.questions: a question is listed twice")
    if task == "compare" and "preference" not in question_keys:
        raise DesignError(f"{where}.questions: a compare arm must ask 'preference'")

    all_readers = table.get("readers_per_case") == "all"
    readers_per_case = 1 if all_readers else _optional(table, "readers_per_case", where, int, 1)
    if readers_per_case < 1:
        raise DesignError(f"{where}.readers_per_case: must be at least 1 (or \"all\": every reader of the role)")
    cases = table.get("cases", "all")
    if cases == "all":
        cases = None
    elif not isinstance(cases, int) or isinstance(cases, bool) or cases < 1:
        raise DesignError(f"{where}.cases: expected \"all\" or a positive number of cases")
    declared_round = _optional(table, "round", where, int, None)
    if declared_round is not None and not 1 <= declared_round <= 9:
        raise DesignError(f"{where}.round: expected a reading round from 1 to 9")
    same = _optional(table, "same_cases_as", where, str, None)
    if same is not None and "cases" in table:
        raise DesignError(f"{where}: 'same_cases_as' reads exactly the other arm's cases; leave out 'cases'")
    disjoint = table.get("disjoint_from", [])
    disjoint = [disjoint] if isinstance(disjoint, str) else disjoint
    disjoint = tuple(_require_list_of_str(disjoint, f"{where}.disjoint_from"))
    if same is not None and disjoint:
        raise DesignError(f"{where}: an arm takes either the same cases as another arm or cases disjoint from others")
    annotate_errors = _optional(table, "annotate_errors", where, bool, False)
    if annotate_errors and task != "edit":
        raise DesignError(f"{where}.annotate_errors: only an 'edit' arm has edits of a draft to annotate; "
                          f"this is a '{task}' arm")
    return ArmSpec(
        key=key,
        task=task,
        role=role,
        draft_sources=sources,
        questions=question_keys,
        readers_per_case=readers_per_case,
        cases=cases,
        timed=_optional(table, "timed", where, bool, task != "rate_reasoning"),
        instructions=_optional(table, "instructions", where, str, "").strip(),
        declared_round=declared_round,
        all_readers=all_readers,
        same_cases_as=same,
        disjoint_from=disjoint,
        annotate_errors=annotate_errors,
        ai_shown=ai_shown,
    )


def _reading_rounds(arms: tuple[ArmSpec, ...]) -> tuple[ArmSpec, ...]:
    """Give every arm the reading round in which its cases open; refuse a declared round that would unblind.

    An arm opens after the arms whose reports it shows (its round is higher than theirs), and every arm of one
    role and one task opens in the same round. The second rule is the blinding one: if an attending's
    model-draft edits opened at launch and their resident-draft edits only once residents had written them,
    the moment a case opens (and the order cases are read in) would tell the draft's source. A declared
    ``round`` may only raise an arm's round; the smallest rounds meeting both rules are found by iterating
    to a fixed point (rounds only grow, and are bounded by the number of arms).
    """
    rounds = {a.key: a.declared_round or 1 for a in arms}
    for _ in range(len(arms) + 1):
        changed = False
        for arm in arms:
            needed = rounds[arm.key]
            for source in arm.draft_sources:
                if source.kind == "arm":
                    needed = max(needed, rounds[source.arm] + 1)
            peers = [a for a in arms if a.role == arm.role and a.task == arm.task]
            needed = max(needed, *(rounds[p.key] for p in peers))
            if needed != rounds[arm.key]:
                rounds[arm.key], changed = needed, True
        if not changed:
            break
    for arm in arms:
        if arm.declared_round is not None and arm.declared_round != rounds[arm.key]:
            why = [f"arm '{s.arm}' (round {rounds[s.arm]}) supplies its drafts"
                   for s in arm.draft_sources if s.kind == "arm" and rounds[s.arm] >= arm.declared_round]
            why += [f"arm '{p.key}' of the same role and task opens in round {rounds[p.key]}"
                    for p in arms if p.key != arm.key and p.role == arm.role and p.task == arm.task
                    and rounds[p.key] > arm.declared_round]
            raise DesignError(
                f"arms ({arm.key}).round: declared {arm.declared_round}, but {'; '.join(why) or 'its peers open later'}; "
                f"it must be round {rounds[arm.key]} (a reader's cases of one task open together, so when a case "
                "opens cannot tell where its draft came from). Use round = "
                f"{rounds[arm.key]} or leave 'round' out"
            )
    if max(rounds.values()) > 9:  # pragma: no cover - the parser allows one level of arm dependency
        raise DesignError("arms: more than 9 reading rounds")
    return tuple(replace(a, reading_round=rounds[a.key]) for a in arms)


def case_dependencies(arm: ArmSpec) -> set[str]:
    """The arms whose cases must be chosen before this arm's: its draft sources, the arm whose cases it takes, and
    the arms it must not share a case with."""
    needs = {s.arm for s in arm.draft_sources if s.kind == "arm"}
    if arm.same_cases_as:
        needs.add(arm.same_cases_as)
    return needs | set(arm.disjoint_from)


def _check_case_sampling(arms: tuple[ArmSpec, ...]) -> None:
    """``same_cases_as`` and ``disjoint_from`` name other arms, in no cycle; what the cohort allows is checked at
    allocation (``study_app.allocation``)."""
    by_key = {a.key: a for a in arms}
    for arm in arms:
        where = f"arms ({arm.key})"
        for other in ([arm.same_cases_as] if arm.same_cases_as else []) + list(arm.disjoint_from):
            if other == arm.key:
                raise DesignError(f"{where}: an arm cannot be sampled relative to itself")
            if other not in by_key:
                raise DesignError(f"{where}: '{other}' (same_cases_as / disjoint_from) is not an arm of this design")
        if arm.same_cases_as:
            other = by_key[arm.same_cases_as]
            if (arm.task == "rate_reasoning") != (other.task == "rate_reasoning"):
                raise DesignError(f"{where}.same_cases_as: a reasoning-review arm reads cases with a multiple-choice "
                                  f"item, '{other.key}' reads others; they cannot share their cases")
        sources = {s.arm for s in arm.draft_sources if s.kind == "arm"}
        clash = sources & set(arm.disjoint_from)
        if clash:
            raise DesignError(f"{where}.disjoint_from: it takes its drafts from '{sorted(clash)[0]}', so it reads "
                              "only cases that arm reads")
    # Cases are chosen in dependency order; a cycle has none.
    done: set[str] = set()
    pending = {a.key: case_dependencies(a) for a in arms}
    while pending:
        ready = [k for k, needs in pending.items() if needs <= done]
        if not ready:
            raise DesignError("arms: same_cases_as / disjoint_from / draft sources form a cycle among "
                              + ", ".join(sorted(pending)))
        for key in ready:
            done.add(key)
            del pending[key]


# What the reader sees of an arm besides its drafts; arms one reader cannot tell apart must agree on all of it.
_PRESENTED = {"instructions": "instructions", "questions": "questions", "timed": "timed",
              "annotate_errors": "annotate_errors"}


def _check_blinded_groups(arms: tuple[ArmSpec, ...]) -> None:
    """Arms of one role and task whose drafts differ in source must look the same to the reader.

    The reader never sees the arm, only its task, instructions and questions; if two such arms differed in
    any of these, the difference would name the draft's source.
    """
    for i, arm in enumerate(arms):
        for other in arms[i + 1:]:
            if (other.role, other.task) != (arm.role, arm.task) or other.draft_origins == arm.draft_origins:
                continue
            if not arm.draft_origins or not other.draft_origins:
                # A detect arm shown no draft beside one shown the model's: modalities the reader is told of
                # (unaided, aided), not drafts of sources to hide.
                continue
            for attribute, name in _PRESENTED.items():
                if getattr(arm, attribute) != getattr(other, attribute):
                    raise DesignError(
                        f"arms ({arm.key}, {other.key}): both are '{arm.task}' arms of role '{arm.role}' with drafts "
                        f"from different sources, but their {name} differ; a reader could tell the draft's source "
                        f"from them. Give both arms the same {name}"
                    )


def _require_list_of_str(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DesignError(f"{where}: expected a list of keys")
    return value


def parse_design(text: str, *, source: str = "design") -> StudyDesign:
    """Parse and check a design file's text.

    Raises
    ------
    DesignError
        With a message naming the key that is wrong, e.g. ``arms[2] (attending_edit).role: ...``.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DesignError(f"{source}: not valid TOML: {error}") from None
    _unknown_keys(data, {"study", "roles", "arms", "questions", "constraints", "analysis", "sessions",
                         "sites", "detection"}, source)

    study = data.get("study", {})
    if not isinstance(study, dict):
        raise DesignError("study: expected a table")
    _unknown_keys(study, {"name", "description", "worklist_order", "idle_threshold_s", "invite_valid_days", "desk"},
                  "study")
    name = _require(study, "name", "study", str).strip()
    if not name:
        raise DesignError("study.name: must not be empty")
    worklist_order = _optional(study, "worklist_order", "study", str, "random")
    if worklist_order not in ("random", "blocked"):
        raise DesignError("study.worklist_order: expected \"random\" or \"blocked\"")
    idle = float(_optional(study, "idle_threshold_s", "study", (int, float), 60))
    if not 5 <= idle <= 3600:
        raise DesignError("study.idle_threshold_s: expected between 5 and 3600 seconds")
    invite_days = _optional(study, "invite_valid_days", "study", int, 60)
    if not 1 <= invite_days <= 366:
        raise DesignError("study.invite_valid_days: expected between 1 and 366")

    raw_roles = _require(data, "roles", "design", dict)
    roles: dict[str, str] = {}
    for role_key, role_table in raw_roles.items():
        _check_key(role_key, f"roles.{role_key}")
        if not isinstance(role_table, dict):
            raise DesignError(f"roles.{role_key}: expected a table")
        _unknown_keys(role_table, {"label"}, f"roles.{role_key}")
        roles[role_key] = str(role_table.get("label", role_key.replace("_", " ").title()))
    if not roles:
        raise DesignError("roles: declare at least one role")

    raw_questions = data.get("questions", {})
    if not isinstance(raw_questions, dict):
        raise DesignError("questions: expected a table of questions")
    questions = {k: _parse_question(k, v) for k, v in raw_questions.items()}

    raw_arms = _require(data, "arms", "design", list)
    if not raw_arms:
        raise DesignError("arms: declare at least one arm")
    arms = tuple(_parse_arm(i, t, roles, questions) for i, t in enumerate(raw_arms, 1))
    keys = [a.key for a in arms]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise DesignError(f"arms: duplicate arm key(s) {', '.join(duplicates)}")
    by_key = {a.key: a for a in arms}
    for arm in arms:
        for source in arm.draft_sources:
            if source.kind != "arm":
                continue
            other = by_key.get(source.arm)
            if other is None:
                raise DesignError(f"arms ({arm.key}): draft source arm '{source.arm}' does not exist")
            if other.task not in ("write", "edit"):
                raise DesignError(
                    f"arms ({arm.key}): draft source arm '{source.arm}' is a '{other.task}' arm; "
                    "only write and edit arms produce reports"
                )
            if other.key == arm.key:
                raise DesignError(f"arms ({arm.key}): an arm cannot take drafts from itself")
            if any(s.kind == "arm" for s in other.draft_sources):
                raise DesignError(
                    f"arms ({arm.key}): draft source arm '{source.arm}' itself waits on another arm; "
                    "chains of more than one phase are not supported"
                )
            if arm.cases is not None and other.cases is not None and arm.cases > other.cases:
                raise DesignError(
                    f"arms ({arm.key}).cases: {arm.cases} cases, but arm '{other.key}' produces reports for only {other.cases}"
                )

    _check_case_sampling(arms)
    arms = _reading_rounds(arms)
    _check_blinded_groups(arms)

    constraints = data.get("constraints", {})
    if not isinstance(constraints, dict):
        raise DesignError("constraints: expected a table")
    _unknown_keys(constraints, {"distinct_case_per_reader", "allow_going_back"}, "constraints")
    allow_going_back = _optional(constraints, "allow_going_back", "constraints", bool, False)
    sessions = _parse_sessions(data.get("sessions"), arms, allow_going_back)
    sites = _parse_sites(data.get("sites"))
    detection = _parse_detection(data.get("detection"), arms)
    plan = _parse_analysis_plan(data.get("analysis"), arms, questions)
    return StudyDesign(
        name=name,
        description=str(study.get("description", "")),
        roles=roles,
        arms=arms,
        questions=questions,
        distinct_case_per_reader=_optional(constraints, "distinct_case_per_reader", "constraints", bool, True),
        allow_going_back=allow_going_back,
        worklist_order=worklist_order,
        idle_threshold_s=idle,
        invite_valid_days=invite_days,
        source_text=text,
        analysis_plan=plan,
        desk=_parse_desk(study.get("desk")),
        sessions=sessions,
        sites=sites,
        detection=detection,
    )


def _parse_detection(raw: Any, arms: tuple[ArmSpec, ...]) -> DetectionPlan | None:
    """The [detection] table: the findings and the confidence scale of the detect arms' marks.

    A design with detect arms may leave the table out (the 14 CheXpert observations, confidence 1-5); one
    without detect arms may not have it (it would configure nothing).
    """
    detect = [a.key for a in arms if a.task == "detect"]
    where = "detection"
    if raw is None:
        return _detection_plan({}, where) if detect else None
    if not detect:
        raise DesignError(f"{where}: the design has no 'detect' arm for this table to configure")
    if not isinstance(raw, dict):
        raise DesignError(f"{where}: expected a table")
    _unknown_keys(raw, DETECTION_KEYS, where)
    return _detection_plan(raw, where)


def _detection_plan(raw: dict, where: str) -> DetectionPlan:
    # The default findings' one home; imported here, not with the module: the store imports this module, and the
    # cohorts package brings numpy, Pillow and pydicom with it.
    from cohorts.findings import CHEXPERT_FINDINGS

    findings = tuple(f.strip() for f in _require_list_of_str(raw.get("findings", list(CHEXPERT_FINDINGS)),
                                                               f"{where}.findings"))
    if not findings:
        raise DesignError(f"{where}.findings: list at least one finding")
    if len(findings) > MAX_FINDINGS:
        raise DesignError(f"{where}.findings: at most {MAX_FINDINGS} findings per read, the design lists {len(findings)}")
    seen: dict[str, str] = {}
    for name in findings:
        if not name or len(name) > 64:
            raise DesignError(f"{where}.findings: a finding's name must have 1 to 64 characters, got {name!r}")
        folded = " ".join(name.lower().split())
        if folded in seen:
            raise DesignError(f"{where}.findings: '{name}' is listed twice" +
                              (f" (as '{seen[folded]}')" if seen[folded] != name else ""))
        seen[folded] = name
    scale = raw.get("confidence", {})
    if not isinstance(scale, dict):
        raise DesignError(f"{where}.confidence: expected a table, e.g. {{ min = 1, max = 5 }}")
    _unknown_keys(scale, {"min", "max", "min_label", "max_label"}, f"{where}.confidence")
    low = _optional(scale, "min", f"{where}.confidence", int, 1)
    high = _optional(scale, "max", f"{where}.confidence", int, 5)
    if not 0 <= low < high <= 100 or high - low < 2:
        raise DesignError(f"{where}.confidence: expected whole numbers 0 <= min < max <= 100 with at least three "
                          f"points (e.g. 1-5 or 0-100), got {low}-{high}")
    min_label = _optional(scale, "min_label", f"{where}.confidence", str, "surely absent").strip()
    max_label = _optional(scale, "max_label", f"{where}.confidence", str, "surely present").strip()
    model_threshold = float(_optional(raw, "model_threshold", where, (int, float), 0.5))
    if not 0 < model_threshold < 1:
        raise DesignError(f"{where}.model_threshold: expected a probability between 0 and 1 (exclusive), "
                          f"got {model_threshold:g}")
    reader_threshold = _optional(raw, "reader_threshold", where, (int, float), None)
    if reader_threshold is not None and not low < reader_threshold <= high:
        raise DesignError(f"{where}.reader_threshold: expected a confidence above {low} and at most {high}, got "
                          f"{reader_threshold:g}")
    return DetectionPlan(findings, low, high, min_label or "surely absent", max_label or "surely present",
                         model_threshold, None if reader_threshold is None else float(reader_threshold))


def _parse_sites(raw: Any) -> SitePlan | None:
    """The [sites] table: ``mode`` (own or crossed) and, for crossed, ``balance``.

    Whether the cohort's and readers' sites can meet it is the allocation's check, as for [sessions].
    """
    if raw is None:
        return None
    where = "sites"
    if not isinstance(raw, dict):
        raise DesignError(f"{where}: expected a table")
    _unknown_keys(raw, {"mode", "balance"}, where)
    mode = _require(raw, "mode", where, str)
    if mode not in SITE_MODES:
        raise DesignError(
            f'{where}.mode: expected "own" (readers read their own site\'s cases) or "crossed" (readers read every '
            f"site's cases), got {mode!r}"
        )
    if mode == "own" and "balance" in raw:
        raise DesignError(
            f'{where}.balance: only for mode = "crossed"; with mode = "own" a reader reads one site, balanced within it'
        )
    balance = _optional(raw, "balance", where, bool, True)
    return SitePlan(mode=mode, balance=balance)


SESSION_KEYS = {"crossover", "washout_days", "session_days", "study_days"}
MAX_SESSIONS = 6


def _parse_sessions(raw: Any, arms: tuple[ArmSpec, ...], allow_going_back: bool) -> SessionPlan | None:
    """The [sessions] table: crossover arms per role, the washout, and the days the schedule may take.

    Whether the schedule fits the study's days is the allocation's check (it refuses the study), like every
    other "cannot be satisfied"; here only what the table says on its own is checked.
    """
    if raw is None:
        return None
    where = "sessions"
    if not isinstance(raw, dict):
        raise DesignError(f"{where}: expected a table")
    _unknown_keys(raw, SESSION_KEYS, where)
    keys = _require_list_of_str(_require(raw, "crossover", where, list), f"{where}.crossover")
    by_key = {a.key: a for a in arms}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise DesignError(f"{where}.crossover: arm(s) {', '.join(unknown)} do not exist")
    if len(set(keys)) != len(keys):
        raise DesignError(f"{where}.crossover: an arm is listed twice")
    crossover: dict[str, list[str]] = {}
    for key in keys:
        crossover.setdefault(by_key[key].role, []).append(key)
    for role, role_keys in crossover.items():
        if len(role_keys) < 2:
            raise DesignError(
                f"{where}.crossover: role '{role}' has one crossover arm ({role_keys[0]}); a crossover needs at least "
                "two arms (modalities) of the same role"
            )
    sizes = {role: len(k) for role, k in crossover.items()}
    if len(set(sizes.values())) > 1:
        raise DesignError(
            f"{where}.crossover: every role needs the same number of crossover arms (one per session); the design "
            f"gives {', '.join(f'{r}: {n}' for r, n in sizes.items())}"
        )
    if max(sizes.values()) > MAX_SESSIONS:
        raise DesignError(f"{where}.crossover: at most {MAX_SESSIONS} modalities (sessions) per role")
    for key in keys:
        for draft_source in by_key[key].draft_sources:
            if draft_source.kind == "arm" and draft_source.arm in keys:
                raise DesignError(
                    f"{where}.crossover: arm '{key}' shows the reports of crossover arm '{draft_source.arm}'; "
                    "crossover arms are modalities of the same reads and cannot be each other's drafts"
                )
    def case_rule(arm: ArmSpec, attribute: str) -> Any:
        # same_cases_as naming another arm of the same crossover says what the crossover says already.
        value = getattr(arm, attribute)
        return None if attribute == "same_cases_as" and value in crossover.get(arm.role, []) else value

    for role, role_keys in crossover.items():
        first = by_key[role_keys[0]]
        for key in role_keys[1:]:
            other = by_key[key]
            for attribute, name in (("cases", "cases"), ("readers_per_case", "readers_per_case"),
                                    ("all_readers", "readers_per_case"), ("same_cases_as", "same_cases_as"),
                                    ("disjoint_from", "disjoint_from")):
                if case_rule(other, attribute) != case_rule(first, attribute):
                    raise DesignError(
                        f"arms ({first.key}, {key}).{name}: crossover arms of role '{role}' read the same cases "
                        f"with the same readers (each reader reads each case once per modality); give them the same "
                        f"{name}"
                    )
    washout = _optional(raw, "washout_days", where, int, 0)
    if not 0 <= washout <= 365:
        raise DesignError(f"{where}.washout_days: expected between 0 and 365 days")
    session_days = _require(raw, "session_days", where, int)
    if not 1 <= session_days <= 365:
        raise DesignError(f"{where}.session_days: expected between 1 and 365 days")
    study_days = _require(raw, "study_days", where, int)
    if not 1 <= study_days <= 3660:
        raise DesignError(f"{where}.study_days: expected between 1 and 3660 days")
    if allow_going_back:
        raise DesignError(
            "constraints.allow_going_back: a design with [sessions] cannot let readers look at finished cases again "
            "(a look back is a read the washout cannot see)"
        )
    return SessionPlan(crossover={r: tuple(k) for r, k in crossover.items()}, washout_days=washout,
                       session_days=session_days, study_days=study_days)


def arm_condition(arm: ArmSpec) -> str:
    """The condition the analysis gives an arm's reads: the task, edit_<origin of the draft>, or detect_<what of
    the AI it shows> (detect_none: unaided)."""
    if arm.task == "detect":
        return f"detect_{arm.ai_shown}"
    return f"edit_{arm.draft_sources[0].origin}" if arm.task == "edit" else arm.task


def _parse_analysis_plan(raw: Any, arms: tuple[ArmSpec, ...], questions: dict[str, QuestionSpec]) -> AnalysisPlan | None:
    """The [analysis] table, parsed and checked by analysis.plan (which knows nothing of designs)."""
    if raw is None:
        return None
    conditions: dict[str, set[str]] = {}
    for arm in arms:
        conditions.setdefault(arm.role, set()).add(arm_condition(arm))
    rated = {k for k, q in questions.items() if q.numeric}  # Likert and visual-analogue items
    try:
        plan = parse_plan(raw)
        check_plan_against_design(plan, conditions, rated)
    except ValueError as error:
        raise DesignError(str(error)) from None
    return plan


def load_design(path: str | Path) -> StudyDesign:
    """Read and parse a design file; errors name the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DesignError(f"{path}: cannot read the design file ({error.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DesignError(f"{path}: the design file is not UTF-8 text") from None
    try:
        return parse_design(text, source=str(path))
    except DesignError as error:
        raise DesignError(f"{path}: {error}") from None


SHIPPED = Path(__file__).parent


DEFAULT_DESIGN = "chexone"


def shipped_design_names() -> list[str]:
    """The designs that ship with the package: the CheXOne reader study first (the default wherever one is
    offered), then the others by name."""
    others = sorted(p.stem for p in SHIPPED.glob("*.toml") if p.stem != DEFAULT_DESIGN)
    return [DEFAULT_DESIGN, *others]


def shipped_design_path(name: str = DEFAULT_DESIGN) -> Path:
    """Path of a design that ships with the package (`chexone`: the CheXOne reader study)."""
    path = SHIPPED / f"{name}.toml"
    if not path.is_file():
        raise DesignError(f"no shipped design named '{name}' (available: {', '.join(shipped_design_names())})")
    return path
