"""The pre-specified analysis plan: primary and secondary endpoints, alpha, multiplicity and the reader/case model, parsed from a design's [analysis] table."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field

#: Endpoints the analysis knows, and what each needs. Conditions are the analysis's
#: condition names (``write``, ``edit_model``, ``edit_reader``, ``compare``,
#: ``rate_reasoning``), found from the task and draft source columns, never from arm names.
ENDPOINTS = {
    "time_ratio": "ratio of geometric-mean durations, comparison / reference (per-reader mean log duration)",
    "likert_mean": "mean score of a rating item (a Likert scale of any length, or a visual-analogue scale)",
    "no_edit_share": "share of edits answered 'no editing needed'",
    "preference_share": "share of blinded comparisons preferring the model draft minus the share preferring the reader draft",
    "significant_errors": "clinically significant errors per draft, as readers annotated them (ReXVal)",
    "detection_auc": "readers' empirical AUC of their detect marks, averaged over the study's findings",
}
METHODS = ("or_hillis", "mixed_model")
MULTIPLICITY = ("holm", "bonferroni", "none")
READER_MODELS = ("random", "fixed")
CASE_MODELS = ("random", "fixed")
PLAN_KEYS = {"alpha", "multiplicity", "readers", "cases", "confidence", "primary", "secondary", "sensitivity",
             "power"}
ENDPOINT_KEYS = {"name", "endpoint", "role", "reference", "comparison", "condition", "item", "method", "null"}
POWER_KEYS = {"effect", "readers", "cases", "n_sim", "seed", "reader_sd", "reader_condition_sd", "case_sd",
              "residual_sd", "cases_per_reader_condition"}


@dataclass(frozen=True)
class Endpoint:
    """One pre-specified endpoint: what is compared, in which role, by which method.

    Attributes
    ----------
    name, endpoint, role : str
    reference, comparison : str or None
        Two conditions compared (comparison vs reference); both None for a
        single-condition endpoint tested against ``null``.
    condition : str or None
        The condition of a single-condition endpoint.
    item : str or None
        The question key of a ``likert_mean``.
    method : str
        ``or_hillis`` or ``mixed_model`` (time ratios only).
    null : float or None
        The null value of a single-condition endpoint (0: neutral Likert score).
    """

    name: str
    endpoint: str
    role: str
    reference: str | None = None
    comparison: str | None = None
    condition: str | None = None
    item: str | None = None
    method: str = "or_hillis"
    null: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def describe(self) -> str:
        """One line a methods section can use."""
        what = ENDPOINTS[self.endpoint] + (f" ({self.item})" if self.item else "")
        if self.reference:
            where = f"{self.comparison} vs {self.reference}"
        elif self.endpoint == "preference_share":
            where = "model vs reader draft"
        else:
            where = f"{self.condition} against " + (f"{self.null:g}" if self.null is not None
                                                     else "the scale's neutral point")
        return f"{self.name}: {what}, {self.role}s, {where}, {self.method.replace('_', '-')}"


@dataclass(frozen=True)
class AnalysisPlan:
    """A parsed, checked analysis plan (see :func:`parse_plan`)."""

    primary: Endpoint
    secondary: tuple = ()
    sensitivity: tuple = ()
    alpha: float = 0.05
    multiplicity: str = "holm"
    readers: str = "random"
    cases: str = "random"
    confidence: float = 0.95
    power: dict = field(default_factory=dict)
    source: str = "design"

    @property
    def conclusion(self) -> str:
        """The OR conclusion the plan's reader/case model names."""
        if self.readers == "fixed":
            return "fixed_readers_random_cases"
        return "random_readers_fixed_cases" if self.cases == "fixed" else "random_readers_random_cases"

    def to_dict(self) -> dict:
        """The plan as the design's ``[analysis]`` table would state it (``parse_plan`` reads it back)."""
        out = {"alpha": self.alpha, "multiplicity": self.multiplicity, "readers": self.readers, "cases": self.cases,
               "confidence": self.confidence, "primary": self.primary.to_dict(),
               "secondary": [e.to_dict() for e in self.secondary],
               "sensitivity": [e.to_dict() for e in self.sensitivity]}
        if self.power:
            out["power"] = copy.deepcopy(self.power)
        return out

    @property
    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` (sorted keys, no whitespace)."""
        return plan_sha256(self.to_dict())

    def endpoints(self) -> list[tuple[str, Endpoint]]:
        """``[(family, endpoint)]`` with family ``primary``, ``secondary`` or ``sensitivity``."""
        return ([("primary", self.primary)] + [("secondary", e) for e in self.secondary]
                + [("sensitivity", e) for e in self.sensitivity])


def plan_sha256(plan_dict: dict) -> str:
    """SHA-256 of a plan dict's canonical JSON: what export_meta.json records and the analysis checks."""
    text = json.dumps(plan_dict, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _get(table: dict, key: str, where: str, kinds, default=None, required: bool = False):
    if key not in table:
        if required:
            raise ValueError(f"{where}: missing required key '{key}'")
        return default
    value = table[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ValueError(f"{where}.{key}: expected {_name(kinds)}, got true/false")
    if not isinstance(value, kinds):
        raise ValueError(f"{where}.{key}: expected {_name(kinds)}, got {type(value).__name__}")
    return value


def _name(kinds) -> str:
    names = {str: "text", int: "an integer", float: "a number", list: "a list", dict: "a table", bool: "true or false"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _unknown(table: dict, allowed: set, where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ValueError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def _choice(value, allowed, where):
    if value not in allowed:
        raise ValueError(f"{where}: '{value}' is not one of {', '.join(allowed)}")
    return value


def _parse_endpoint(table, where: str) -> Endpoint:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table")
    _unknown(table, ENDPOINT_KEYS, where)
    name = _get(table, "name", where, str, required=True).strip()
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"{where}.name: use letters, digits and '_' (got {name!r})")
    endpoint = _choice(_get(table, "endpoint", where, str, required=True), tuple(ENDPOINTS), f"{where}.endpoint")
    role = _get(table, "role", where, str, required=True)
    method = _choice(_get(table, "method", where, str, "or_hillis"), METHODS, f"{where}.method")
    if method == "mixed_model" and endpoint != "time_ratio":
        raise ValueError(f"{where}.method: the mixed model is for time_ratio endpoints; use or_hillis")
    reference = _get(table, "reference", where, str)
    comparison = _get(table, "comparison", where, str)
    condition = _get(table, "condition", where, str)
    item = _get(table, "item", where, str)
    null = _get(table, "null", where, (int, float))
    if endpoint == "likert_mean" and not item:
        raise ValueError(f"{where}.item: a likert_mean endpoint names its question (item = \"...\")")
    if endpoint != "likert_mean" and item:
        raise ValueError(f"{where}.item: only a likert_mean endpoint takes an item")
    if endpoint == "preference_share":
        if reference or comparison or condition not in (None, "compare"):
            raise ValueError(f"{where}: a preference_share compares the model and the reader draft within the "
                             "compare reads; give no reference/comparison/condition")
        condition = "compare"
        null = 0.0 if null is None else null
    elif (reference is None) != (comparison is None):
        raise ValueError(f"{where}: give both reference and comparison, or neither (with condition)")
    elif reference is not None:
        if condition is not None:
            raise ValueError(f"{where}: give reference and comparison, or condition, not both")
        if reference == comparison:
            raise ValueError(f"{where}: reference and comparison are the same condition '{reference}'")
        if null is not None:
            raise ValueError(f"{where}.null: only a single-condition endpoint is tested against a null value")
    else:
        if condition is None:
            raise ValueError(f"{where}: give reference and comparison (two conditions) or condition (one)")
        if endpoint in ("time_ratio", "detection_auc"):
            raise ValueError(f"{where}: a {endpoint} compares two conditions (reference and comparison)")
        # A rating item without a null is tested against its scale's neutral point, which the export's question
        # scoring gives (analysis.endpoints._levels); the plan says only what the design stated.
        if null is None and endpoint != "likert_mean":
            raise ValueError(f"{where}.null: a single-condition endpoint needs the value it is tested against")
    return Endpoint(name=name, endpoint=endpoint, role=role, reference=reference, comparison=comparison,
                    condition=condition if reference is None else None, item=item, method=method,
                    null=None if null is None else float(null))


def _parse_power(table, where: str) -> dict:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table")
    _unknown(table, POWER_KEYS, where)
    out = {}
    effect = _get(table, "effect", where, (int, float))
    if effect is not None:
        if not 0 < effect:
            raise ValueError(f"{where}.effect: a time ratio must be positive")
        out["effect"] = float(effect)
    for key in ("readers", "cases"):
        grid = _get(table, key, where, list)
        if grid is not None:
            if not grid or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in grid):
                raise ValueError(f"{where}.{key}: expected a list of whole numbers >= 2")
            out[key] = sorted(set(grid))
    for key in ("n_sim", "seed"):
        value = _get(table, key, where, int)
        if value is not None:
            if value < (10 if key == "n_sim" else 0):
                raise ValueError(f"{where}.{key}: too small ({value})")
            out[key] = value
    for key in ("reader_sd", "reader_condition_sd", "case_sd", "residual_sd"):
        value = _get(table, key, where, (int, float))
        if value is not None:
            if value < 0:
                raise ValueError(f"{where}.{key}: a standard deviation cannot be negative")
            out[key] = float(value)
    return out


def parse_plan(table: dict, *, source: str = "design") -> AnalysisPlan:
    """Parse and check a design's ``[analysis]`` table.

    Parameters
    ----------
    table : dict
        The TOML table (or :meth:`AnalysisPlan.to_dict` output).
    source : {'design', 'default'}
        Where the plan came from; reported with the results.

    Returns
    -------
    AnalysisPlan

    Raises
    ------
    ValueError
        With the key path of what is wrong, e.g. ``analysis.secondary[2].role: ...``.
    """
    where = "analysis"
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table")
    _unknown(table, PLAN_KEYS, where)
    alpha = float(_get(table, "alpha", where, (int, float), 0.05))
    if not 0 < alpha < 0.5:
        raise ValueError(f"{where}.alpha: expected between 0 and 0.5, got {alpha}")
    confidence = float(_get(table, "confidence", where, (int, float), 1 - alpha))
    if not 0.5 < confidence < 1:
        raise ValueError(f"{where}.confidence: expected between 0.5 and 1, got {confidence}")
    multiplicity = _choice(_get(table, "multiplicity", where, str, "holm"), MULTIPLICITY, f"{where}.multiplicity")
    readers = _choice(_get(table, "readers", where, str, "random"), READER_MODELS, f"{where}.readers")
    cases = _choice(_get(table, "cases", where, str, "random"), CASE_MODELS, f"{where}.cases")
    if readers == "fixed" and cases == "fixed":
        raise ValueError(f"{where}: readers and cases cannot both be fixed (nothing would be random)")
    primary = _parse_endpoint(_get(table, "primary", where, dict, required=True), f"{where}.primary")
    secondary = tuple(_parse_endpoint(t, f"{where}.secondary[{i}]")
                      for i, t in enumerate(_get(table, "secondary", where, list, []), 1))
    sensitivity = tuple(_parse_endpoint(t, f"{where}.sensitivity[{i}]")
                        for i, t in enumerate(_get(table, "sensitivity", where, list, []), 1))
    names = [e.name for e in (primary, *secondary, *sensitivity)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: endpoint name(s) used twice: {', '.join(dup)}")
    power = _parse_power(table["power"], f"{where}.power") if "power" in table else {}
    return AnalysisPlan(primary=primary, secondary=secondary, sensitivity=sensitivity, alpha=alpha,
                        multiplicity=multiplicity, readers=readers, cases=cases, confidence=confidence,
                        power=power, source=source)


def check_plan_against_design(plan: AnalysisPlan, conditions_by_role: dict[str, set[str]],
                              likert_items: set[str]) -> None:
    """Check that every endpoint names a role, conditions and items the design has.

    Parameters
    ----------
    plan : AnalysisPlan
    conditions_by_role : dict of str to set of str
        For each role, the conditions its arms produce (``write``, ``edit_model``, ...).
    likert_items : set of str
        Keys of the design's rating questions (kind ``likert``, any scale, or ``vas``).

    Raises
    ------
    ValueError
        Naming the endpoint's key path.
    """
    for family, i, e in _numbered(plan):
        where = f"analysis.{family}" + (f"[{i}]" if family != "primary" else "")
        if e.role not in conditions_by_role:
            raise ValueError(f"{where}.role: '{e.role}' is not a role of this design "
                             f"({', '.join(sorted(conditions_by_role))})")
        have = conditions_by_role[e.role]
        for key in ("reference", "comparison", "condition"):
            cond = getattr(e, key)
            if cond is not None and cond not in have:
                raise ValueError(f"{where}.{key}: no arm of role '{e.role}' produces condition '{cond}' "
                                 f"(it has {', '.join(sorted(have))})")
        if e.item is not None and e.item not in likert_items:
            raise ValueError(f"{where}.item: '{e.item}' is not a Likert or visual-analogue question of this design")
        if e.endpoint == "no_edit_share":
            for cond in (e.reference, e.comparison, e.condition):
                if cond is not None and not cond.startswith("edit_"):
                    raise ValueError(f"{where}: 'no editing needed' is answered after edits; '{cond}' is not an edit")
        if e.endpoint == "significant_errors":
            for cond in (e.reference, e.comparison, e.condition):
                if cond is not None and not cond.startswith("edit_"):
                    raise ValueError(f"{where}: errors are annotated in the drafts of edits; '{cond}' is not an edit")
        if e.endpoint == "detection_auc":
            for cond in (e.reference, e.comparison):
                if cond is not None and not cond.startswith("detect_"):
                    raise ValueError(f"{where}: an AUC is of detect reads' marks; '{cond}' is not a detect condition")


def _numbered(plan):
    yield "primary", 0, plan.primary
    for i, e in enumerate(plan.secondary, 1):
        yield "secondary", i, e
    for i, e in enumerate(plan.sensitivity, 1):
        yield "sensitivity", i, e


#: The plan a study without an ``[analysis]`` table gets, stated as the shipped default
#: in the report: the CheXOne reader study's endpoints (an endpoint whose role or
#: conditions the study lacks is reported as not estimable).
DEFAULT_PLAN_TABLE = {
    "alpha": 0.05, "multiplicity": "holm", "readers": "random", "cases": "random",
    "primary": {"name": "resident_drafting_time", "endpoint": "time_ratio", "role": "resident",
                "reference": "write", "comparison": "edit_model", "method": "or_hillis"},
    "secondary": [
        {"name": "attending_editing_time", "endpoint": "time_ratio", "role": "attending",
         "reference": "edit_reader", "comparison": "edit_model"},
        {"name": "attending_no_edit_needed", "endpoint": "no_edit_share", "role": "attending",
         "reference": "edit_reader", "comparison": "edit_model"},
        {"name": "attending_indication_applicability", "endpoint": "likert_mean", "role": "attending",
         "item": "indication_applicability", "reference": "edit_reader", "comparison": "edit_model"},
        {"name": "attending_preference", "endpoint": "preference_share", "role": "attending"},
    ],
    "sensitivity": [
        {"name": "resident_drafting_time_mixed_model", "endpoint": "time_ratio", "role": "resident",
         "reference": "write", "comparison": "edit_model", "method": "mixed_model"},
    ],
}


def default_plan() -> AnalysisPlan:
    """The shipped default plan (:data:`DEFAULT_PLAN_TABLE`), marked ``source='default'``."""
    return parse_plan(DEFAULT_PLAN_TABLE, source="default")


def plan_from_meta(meta: dict) -> AnalysisPlan:
    """The plan an export carries (``analysis_plan`` in export_meta.json), checked against its hash.

    Parameters
    ----------
    meta : dict
        export_meta.json content.

    Returns
    -------
    AnalysisPlan
        The design's plan, or the shipped default (``source='default'``) when the
        export carries none.

    Raises
    ------
    ValueError
        The plan does not parse, or its SHA-256 differs from ``analysis_plan_sha256``
        (the plan was changed after the study was frozen).
    """
    raw = meta.get("analysis_plan")
    if raw is None:
        return default_plan()
    source = meta.get("analysis_plan_source", "design")
    plan = parse_plan(raw, source=source)
    stated = meta.get("analysis_plan_sha256")
    if stated is not None and plan_sha256(raw) != stated:
        raise ValueError("export_meta.json: analysis_plan does not match analysis_plan_sha256; the pre-specified "
                         "plan was changed after export")
    return plan
