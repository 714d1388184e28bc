"""Read and validate case manifests (CSV or JSONL, one row per case) into a checked cohort."""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cohorts.images import ImageError, image_fingerprint, load_image, probe_image

__all__ = [
    "Problem",
    "ManifestError",
    "ImageRecord",
    "DraftRecord",
    "MCItem",
    "CaseRecord",
    "Cohort",
    "validate_manifest",
    "check_manifest",
    "ManifestCheck",
    "load_manifest",
    "normalise_view",
    "VIEWS",
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "MANIFEST_EXTENSIONS",
    "MAX_FINDING_NAME_LENGTH",
    "finding_key",
]

VIEWS = ("PA", "AP", "LATERAL")

# Spellings seen in PACS exports and hand-made spreadsheets; compared case-insensitively
# after collapsing separators, so "Left-Lateral" and "left lateral" both match.
_VIEW_ALIASES = {
    "pa": "PA",
    "posteroanterior": "PA",
    "frontalpa": "PA",
    "ap": "AP",
    "anteroposterior": "AP",
    "apsupine": "AP",
    "apupright": "AP",
    "frontalap": "AP",
    "lateral": "LATERAL",
    "lat": "LATERAL",
    "ll": "LATERAL",
    "rl": "LATERAL",
    "leftlateral": "LATERAL",
    "rightlateral": "LATERAL",
    "lateralleft": "LATERAL",
    "lateralright": "LATERAL",
}

REQUIRED_COLUMNS = ("case_id", "images", "indication")
COLUMNS = (
    "case_id",
    "images",
    "priors",
    "indication",
    "comparison",
    "reference_findings",
    "reader_draft",
    "reader_draft_author",
    "model_output",
    "model_id",
    "model_mode",
    "mc_item_id",
    "mc_question",
    "mc_options",
    "mc_answer",
    "mc_model_output",
    "mc_image_view",
    "mc_items",
    "site",
    "reference_labels",
    "model_labels",
)
# A site is a short identifier (it labels the rows of the progress table and a stratum of the analysis).
SITE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MC_FLAT_COLUMNS = ("mc_item_id", "mc_question", "mc_options", "mc_answer", "mc_model_output", "mc_image_view")
_MC_ITEM_KEYS = ("item_id", "question", "options", "answer", "model_output", "image_view")
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
MODEL_MODES = ("reasoning", "instruction")

MIN_IMAGE_SIDE = 16
MAX_IMAGE_SIDE = 20000
MAX_CASE_ID_LENGTH = 64
MAX_FINDING_NAME_LENGTH = 64


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located as precisely as possible.

    Attributes
    ----------
    row : int or None
        1-based case row: in a CSV the N-th line after the header (the header is row 0),
        in a JSONL file the line number. None for a problem with the whole file.
    column : str or None
        The column (CSV) or key (JSONL) at fault, None when no single column is.
    message : str
        What is wrong, in words a coordinator can act on.
    """

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ManifestError(ValueError):
    """A manifest that cannot be loaded; ``problems`` lists everything wrong with it."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in manifest:"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ImageRecord:
    """One checked image of a case: where it is, what view, and what it decodes to."""

    path: Path
    relpath: str
    view: str
    is_prior: bool
    sha256: str
    width: int
    height: int
    format: str
    bits_stored: int


@dataclass(frozen=True)
class DraftRecord:
    """A draft imported with the cohort: a reader's text or a recorded raw model output."""

    source: str
    text: str | None
    raw_output: str | None
    model_id: str | None
    mode: str | None
    author_label: str | None


@dataclass(frozen=True)
class MCItem:
    """A multiple-choice question for reasoning review, with the model's recorded answer."""

    item_id: str
    question: str
    options: dict[str, str]
    answer: str | None
    model_output: str | None
    image_view: str | None


@dataclass(frozen=True)
class CaseRecord:
    """One case of the cohort: its current images, priors, clinical text and imported drafts."""

    case_id: str
    row: int
    images: tuple[ImageRecord, ...]
    priors: tuple[ImageRecord, ...]
    indication: str
    comparison: str
    reference_findings: str | None
    drafts: tuple[DraftRecord, ...]
    mc_items: tuple[MCItem, ...]
    # The site the case comes from (a multi-site study); None when the manifest has no site column or the cell is
    # empty: a cohort without sites is one site.
    site: str | None = None
    # The reference standard per finding, names as the coordinator wrote them: 1 present, 0 absent, None not known.
    # Empty when the manifest gives none. Which findings a study scores is the design's business, so the names are
    # checked against its list later (cohorts.findings.check_labels), and read through
    # cohorts.findings.reference_standard, which also expands the listed form.
    # Left out of the hash (not of ==) so that a case without multiple-choice items stays hashable, as it was.
    reference_labels: dict[str, int | None] = field(default_factory=dict, hash=False)
    # True when reference_labels came as a list of the findings present ("Cardiomegaly; Edema"): every finding of the
    # study's list that is not named is absent. The manifest cannot expand that itself, as it does not know the list.
    reference_labels_listed: bool = False
    # The model's probability per finding, in [0, 1]; empty when the manifest gives none.
    model_labels: dict[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Cohort:
    """A manifest that passed validation: the cases in file order and the manifest's hash.

    ``notes`` are what the image decoders warned about (each located by row and column, like a problem):
    the images decoded all the same, but a coordinator may want to look at them.
    """

    manifest_path: Path
    root: Path
    cases: tuple[CaseRecord, ...]
    manifest_sha256: str
    notes: tuple[Problem, ...] = ()

    def case(self, case_id: str) -> CaseRecord:
        """Return the case with this id; raise KeyError when there is none."""
        for record in self.cases:
            if record.case_id == case_id:
                return record
        raise KeyError(case_id)


def finding_key(name: str) -> str:
    """The form in which two finding names are the same finding: case, spaces and underscores do not count.

    Examples
    --------
    >>> finding_key(" Pleural  Effusion"), finding_key("pleural_effusion")
    ('pleural effusion', 'pleural effusion')
    """
    return " ".join(str(name).replace("_", " ").split()).casefold()


def normalise_view(text: str) -> str | None:
    """Map a view label to ``"PA"``, ``"AP"`` or ``"LATERAL"``.

    Parameters
    ----------
    text : str
        A view as written by a coordinator: ``"pa"``, ``"Lat"``, ``"LL"``,
        ``"left lateral"``, ``"AP supine"``...

    Returns
    -------
    str or None
        The canonical view, or None when the label is not recognised.

    Examples
    --------
    >>> normalise_view("ll"), normalise_view(" Left-Lateral "), normalise_view("oblique")
    ('LATERAL', 'LATERAL', None)
    """
    key = "".join(ch for ch in str(text).lower() if ch.isalnum())
    return _VIEW_ALIASES.get(key)


def validate_manifest(path: str | Path) -> list[Problem]:
    """Check a manifest and every image it names; return all problems found.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.jsonl`` or ``.ndjson`` manifest (format in ``docs/cohorts.md``).

    Returns
    -------
    list of Problem
        Empty when the manifest is valid. File-level problems come first, then row
        problems in row order. Never raises for bad content: a missing file, bad
        encoding or corrupt image is reported as a problem.

    Examples
    --------
    >>> for problem in validate_manifest("cohort/manifest.csv"):  # doctest: +SKIP
    ...     print(problem)
    row 3, column images: file not found: img/x.png
    """
    return check_manifest(path).problems


@dataclass(frozen=True)
class ManifestCheck:
    """A validation report: the problems (nothing can be imported while there is one), the decoders' notes
    (warnings about files that were read all the same), and the cohort when there is no problem."""

    problems: list[Problem]
    notes: list[Problem]
    cohort: Cohort | None


def check_manifest(path: str | Path) -> ManifestCheck:
    """Validate a manifest like :func:`validate_manifest` and also return the notes: what the image decoders
    warned about while reading files that are valid (pydicom's warnings go here, not to the terminal).

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.jsonl`` or ``.ndjson`` manifest.

    Returns
    -------
    ManifestCheck

    Examples
    --------
    >>> report = check_manifest("cohort/manifest.csv")  # doctest: +SKIP
    >>> for note in report.notes:
    ...     print(note)
    row 4, column images: pydicom: Expected explicit VR, but found implicit VR - using implicit: img/c4.dcm
    """
    checker, cohort = _run(Path(path))
    problems = sorted(checker.problems, key=lambda p: (p.row is not None, p.row or 0))
    return ManifestCheck(problems, list(checker.notes), cohort)


def load_manifest(path: str | Path) -> Cohort:
    """Load a manifest into a :class:`Cohort`, refusing it when anything is wrong.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.jsonl`` or ``.ndjson`` manifest.

    Returns
    -------
    Cohort
        Cases in file order, each image decoded once to record its size, bit depth and
        SHA-256.

    Raises
    ------
    ManifestError
        With every problem :func:`validate_manifest` finds (not only the first).
    """
    report = check_manifest(path)
    if report.problems or report.cohort is None:
        raise ManifestError(report.problems or [Problem(None, None, "manifest could not be read")])
    return report.cohort


# --------------------------------------------------------------------------- reading


@dataclass
class _Checker:
    """Collects problems for one validation pass; images are decoded once per file."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    image_cache: dict[Path, tuple[tuple[str, str, int, int, int] | str, tuple[str, ...]]] = field(default_factory=dict)

    def add(self, row: int | None, column: str | None, message: str) -> None:
        self.problems.append(Problem(row, column, message))


def _run(path: Path) -> tuple[_Checker, Cohort | None]:
    """Check a manifest; the checker holds the problems and notes, the cohort is None after a problem."""
    checker = _Checker(root=path.parent)
    problems, cohort = _check(path, checker)
    if problems is not checker.problems:  # a problem with the whole file, found before any row
        checker.problems = problems
    return checker, cohort


def _check(path: Path, checker: _Checker) -> tuple[list[Problem], Cohort | None]:
    try:
        if not path.exists():
            return [Problem(None, None, f"manifest not found: {path}")], None
        if not path.is_file():
            return [Problem(None, None, f"manifest is not a file: {path}")], None
    except OSError as exc:
        return [Problem(None, None, f"cannot read manifest: {exc}")], None
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_EXTENSIONS:
        return [
            Problem(
                None,
                None,
                f"unknown manifest extension {path.suffix or '(none)'!r}; use .csv, .jsonl or .ndjson",
            )
        ], None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Problem(None, None, f"cannot read manifest: {exc}")], None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [
            Problem(
                None,
                None,
                f"manifest is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                f"(line {line}); save it as UTF-8",
            )
        ], None
    if not text.strip():
        return [Problem(None, None, "manifest is empty")], None

    checker.root = path.parent.resolve()
    if suffix == ".csv":
        records = _read_csv(text, checker)
    else:
        records = _read_jsonl(text, checker)
    if not records and not checker.problems:
        checker.add(None, None, "manifest has no cases (only a header or blank lines)")

    cases: list[CaseRecord] = []
    first_row_of: dict[str, int] = {}
    # Images are decoded one after another: a thread pool measured no faster on the
    # 2-core target machine (decoding is memory-bound) and held several films at once.
    for row, values in records:
        case = _build_case(row, values, checker)
        case_id = _case_id_of(values)
        if case_id:
            if case_id in first_row_of:
                checker.add(row, "case_id", f"duplicate case id {case_id!r} (first on row {first_row_of[case_id]})")
            else:
                first_row_of[case_id] = row
        if case is not None:
            cases.append(case)

    if checker.problems:
        return checker.problems, None
    cohort = Cohort(
        manifest_path=path.resolve(),
        root=checker.root,
        cases=tuple(cases),
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        notes=tuple(checker.notes),
    )
    return checker.problems, cohort


def _read_csv(text: str, checker: _Checker) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        checker.add(None, None, f"cannot parse the CSV header: {exc}")
        return []
    columns = [name.strip().lower() for name in header]
    if len(columns) == 1 and any(sep in columns[0] for sep in ";\t"):
        # Spreadsheets in some locales save "CSV" with semicolons; say so instead of
        # reporting one long unknown column.
        separator = "';'" if ";" in columns[0] else "tabs"
        checker.add(None, None, f"the header has a single column; the file seems separated by {separator}: "
                    "save it as comma-separated CSV (UTF-8)")
        return []
    if not _check_columns(columns, None, checker, file_level=True):
        return []
    records: list[tuple[int, dict[str, Any]]] = []
    row = 0
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            checker.add(row, None, f"cannot parse the CSV row: {exc}")
            break  # the reader cannot resynchronise after a parse error
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            checker.add(
                row,
                None,
                f"row has {len(cells)} cells but the header has {len(columns)} columns "
                "(a stray comma or an unquoted line break?)",
            )
            continue
        records.append((row, dict(zip(columns, cells))))
    return records


def _read_jsonl(text: str, checker: _Checker) -> list[tuple[int, dict[str, Any]]]:
    records: list[tuple[int, dict[str, Any]]] = []
    # splitlines() would also break on U+2028 and friends, which JSON allows inside strings.
    for row, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_JSONObject.from_pairs)
        except json.JSONDecodeError as exc:
            checker.add(row, None, f"invalid JSON: {exc.msg} (character {exc.colno})")
            continue
        if not isinstance(value, dict):
            checker.add(row, None, f"each line must be a JSON object, got {_type_name(value)}")
            continue
        keys = [str(key) for key in value]
        if not _check_columns([key.strip().lower() for key in keys], row, checker, file_level=False):
            continue
        records.append((row, {str(k).strip().lower(): v for k, v in value.items()}))
    return records


class _JSONObject(dict):
    """A JSON object that remembers the keys given more than once (json keeps the last silently): a finding
    labelled twice must be refused, not resolved by whichever came last."""

    repeated: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _JSONObject:
        obj = cls(pairs)
        if len(obj) != len(pairs):
            keys = [key for key, _ in pairs]
            obj.repeated = tuple(dict.fromkeys(key for key in keys if keys.count(key) > 1))
        return obj


def _check_columns(columns: list[str], row: int | None, checker: _Checker, *, file_level: bool) -> bool:
    """Report unknown, duplicate, blank and missing columns; False when rows cannot be read."""
    word = "column" if file_level else "key"
    usable = True
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        if not name:
            checker.add(row, None, f"{word} {position} has no name")
            continue
        if name in seen:
            checker.add(row, name, f"duplicate {word} {name!r}")
            usable = False
        seen.add(name)
        if name not in COLUMNS:
            # An unknown column is almost always a typo of a known one; ignoring it would
            # silently drop data (e.g. "indicaton"), so it is an error, with a suggestion.
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known {word}s: {', '.join(COLUMNS)}"
            checker.add(row, name, f"unknown {word} {name!r}{hint}")
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            extra = " (it may be empty, but must be there)" if name == "indication" else ""
            # Rows are still read: a missing column must not hide the other problems.
            checker.add(row, name, f"missing required {word} {name!r}{extra}")
    return usable


# --------------------------------------------------------------------------- one case


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _text(
    values: dict[str, Any], column: str, row: int, checker: _Checker, *, keep_whitespace: bool = False
) -> str | None:
    """A text cell: None when absent or blank; a problem when JSON gives a non-string."""
    value = values.get(column)
    if value is None:
        return None
    if not isinstance(value, str):
        checker.add(row, column, f"must be text, got {_type_name(value)}")
        return None
    if not value.strip():
        return None
    return value if keep_whitespace else value.strip()


def _case_id_of(values: dict[str, Any]) -> str | None:
    value = values.get("case_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _build_case(row: int, values: dict[str, Any], checker: _Checker) -> CaseRecord | None:
    before = len(checker.problems)

    case_id = _check_case_id(row, values, checker)
    images = _image_list(row, values, "images", checker, is_prior=False, required=True)
    priors = _image_list(row, values, "priors", checker, is_prior=True, required=False)
    indication = _text(values, "indication", row, checker) or ""
    comparison = _text(values, "comparison", row, checker) or ""
    reference = _text(values, "reference_findings", row, checker)
    drafts = _drafts(row, values, checker)
    views = {image.view for image in images}
    mc_items = _mc_items(row, values, case_id or "case", views, checker)
    site = _site(row, values, checker)
    reference_labels, listed = _reference_labels(row, values, checker)
    model_labels = _model_labels(row, values, checker)

    if len(checker.problems) != before or case_id is None:
        return None
    return CaseRecord(
        case_id=case_id,
        row=row,
        images=tuple(images),
        priors=tuple(priors),
        indication=indication,
        comparison=comparison,
        reference_findings=reference,
        drafts=tuple(drafts),
        mc_items=tuple(mc_items),
        site=site,
        reference_labels=reference_labels,
        reference_labels_listed=listed,
        model_labels=model_labels,
    )


def _site(row: int, values: dict[str, Any], checker: _Checker) -> str | None:
    site = _text(values, "site", row, checker)
    if site is not None and not SITE_PATTERN.match(site):
        checker.add(row, "site", f"site {site!r} must be letters, digits, '.', '_' or '-' (at most 64), e.g. site_a")
        return None
    return site


_REFERENCE_EXAMPLE = '{"Cardiomegaly": 1, "Edema": 0}'
_MODEL_EXAMPLE = '{"Cardiomegaly": 0.82, "Edema": 0.07}'


def _label_object(row: int, column: str, value: Any, example: str, checker: _Checker) -> dict[str, Any] | str | None:
    """A labels cell as an object (a JSON object, or one in a CSV cell), the text of a listed form, or None after
    a problem or when the cell is empty."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[:1] not in "{[":
            return text
        try:
            value = json.loads(text, object_pairs_hook=_JSONObject.from_pairs)
        except json.JSONDecodeError as exc:
            checker.add(row, column, f"invalid JSON object: {exc.msg} (character {exc.colno}); write e.g. {example}")
            return None
    if not isinstance(value, dict):
        checker.add(row, column, f"must be a JSON object of finding -> value, e.g. {example}; got {_type_name(value)}")
        return None
    return value


def _finding_names(row: int, column: str, names: list[Any], repeated: tuple[str, ...], checker: _Checker) -> bool:
    """Check the finding names of one cell; False after a problem."""
    ok = True
    first: dict[str, str] = {}
    for name in repeated:
        checker.add(row, column, f"finding {name!r} is given twice")
        ok = False
    for name in names:
        if not isinstance(name, str) or not name.strip():
            checker.add(row, column, "a finding name is empty")
            ok = False
            continue
        shown = name.strip()
        if len(shown) > MAX_FINDING_NAME_LENGTH:
            checker.add(
                row, column, f"finding name {shown[:20]!r}... is {len(shown)} characters long; at most {MAX_FINDING_NAME_LENGTH}"
            )
            ok = False
            continue
        if not shown.isprintable():
            checker.add(row, column, f"finding name {shown!r} contains non-printable characters")
            ok = False
            continue
        key = finding_key(shown)
        if key in first:
            checker.add(row, column, f"finding {shown!r} is given twice (also as {first[key]!r}; case and spaces do not count)")
            ok = False
            continue
        first[key] = shown
    return ok


def _reference_labels(row: int, values: dict[str, Any], checker: _Checker) -> tuple[dict[str, int | None], bool]:
    """The reference_labels cell: (labels, listed). A JSON object gives 1/0/null per finding; a ';'-separated
    list names the findings present (listed is then True: the others of the study's list are absent)."""
    column = "reference_labels"
    example = f"{_REFERENCE_EXAMPLE}, or the findings present separated by ';', e.g. Cardiomegaly; Edema"
    value = _label_object(row, column, values.get(column), example, checker)
    if value is None:
        return {}, False
    if isinstance(value, str):
        names = [part.strip() for part in value.split(";") if part.strip()]
        for name in names:
            if ":" in name or "=" in name:
                checker.add(
                    row, column, f"{name!r} is not a finding name: list only the findings present, e.g. "
                    f"Cardiomegaly; Edema, or give a JSON object, e.g. {_REFERENCE_EXAMPLE}",
                )
                return {}, False
        if not _finding_names(row, column, names, (), checker):
            return {}, False
        return {name: 1 for name in names}, True
    if not _finding_names(row, column, list(value), getattr(value, "repeated", ()), checker):
        return {}, False
    labels: dict[str, int | None] = {}
    ok = True
    for name, given in value.items():
        name = name.strip()
        if given is None or isinstance(given, bool):
            labels[name] = None if given is None else int(given)
        elif isinstance(given, (int, float)) and given in (0, 1):
            labels[name] = int(given)  # 1.0 and 0.0, as spreadsheets and pandas write them
        else:
            shown = f"text {given!r} (write it without quotes)" if isinstance(given, str) else (
                repr(given) if isinstance(given, (int, float)) else _type_name(given)
            )
            hint = "; map CheXpert's uncertain -1 to 1, 0 or null" if given == -1 and not isinstance(given, bool) else ""
            checker.add(row, column, f"reference for {name!r} must be 1, 0, true, false or null (not known), got {shown}{hint}")
            ok = False
    return (labels, False) if ok else ({}, False)


def _model_labels(row: int, values: dict[str, Any], checker: _Checker) -> dict[str, float]:
    """The model_labels cell: the model's probability per finding, a JSON object of numbers in [0, 1]."""
    column = "model_labels"
    value = _label_object(row, column, values.get(column), _MODEL_EXAMPLE, checker)
    if value is None:
        return {}
    if isinstance(value, str):
        checker.add(row, column, f"must be a JSON object of finding -> probability, e.g. {_MODEL_EXAMPLE}")
        return {}
    if not _finding_names(row, column, list(value), getattr(value, "repeated", ()), checker):
        return {}
    labels: dict[str, float] = {}
    ok = True
    for name, given in value.items():
        name = name.strip()
        if isinstance(given, (int, float)) and not isinstance(given, bool) and math.isfinite(given) and 0 <= given <= 1:
            labels[name] = float(given)
            continue
        shown = f"text {given!r}" if isinstance(given, str) else (
            repr(given) if isinstance(given, (int, float)) and not isinstance(given, bool) else _type_name(given)
        )
        checker.add(row, column, f"probability for {name!r} must be a number from 0 to 1, got {shown}")
        ok = False
    return labels if ok else {}


def _check_case_id(row: int, values: dict[str, Any], checker: _Checker) -> str | None:
    if "case_id" not in values:
        return None  # reported once as a missing column
    value = values.get("case_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        checker.add(row, "case_id", "case id is empty")
        return None
    if not isinstance(value, str):
        checker.add(row, "case_id", f"case id must be text, got {_type_name(value)}")
        return None
    case_id = value.strip()
    if len(case_id) > MAX_CASE_ID_LENGTH:
        checker.add(row, "case_id", f"case id is {len(case_id)} characters long; at most {MAX_CASE_ID_LENGTH}")
        return None
    if not case_id.isprintable():
        checker.add(row, "case_id", f"case id {case_id!r} contains non-printable characters")
        return None
    if "/" in case_id or "\\" in case_id or case_id in (".", ".."):
        # Case ids end up in URLs, export file names and cache keys.
        checker.add(row, "case_id", f"case id {case_id!r} must not contain '/' or '\\' or be '.' / '..'")
        return None
    return case_id


def _image_entries(row: int, column: str, value: Any, checker: _Checker) -> list[tuple[str, str]] | None:
    """Split an images/priors cell into (view text, path) pairs."""
    raw: list[Any]
    if isinstance(value, str):
        raw = [part for part in value.split(";") if part.strip()]
    elif isinstance(value, list):
        raw = value
    else:
        checker.add(row, column, f"must be 'VIEW:path;VIEW:path' text or a list, got {_type_name(value)}")
        return None
    entries: list[tuple[str, str]] = []
    for position, entry in enumerate(raw, start=1):
        if isinstance(entry, dict):
            view, path = entry.get("view"), entry.get("path")
            unknown = set(entry) - {"view", "path"}
            if unknown:
                checker.add(row, column, f"image entry {position} has unknown keys {sorted(map(str, unknown))}; use 'view' and 'path'")
                continue
            if not isinstance(view, str) or not isinstance(path, str):
                example = '{"view": "PA", "path": "img/c1.png"}'
                checker.add(row, column, f"image entry {position} needs text 'view' and 'path', e.g. {example}")
                continue
            entries.append((view, path))
        elif isinstance(entry, str):
            view, sep, path = entry.strip().partition(":")
            if not sep:
                checker.add(row, column, f"image entry {position} ({entry.strip()!r}) has no view; write VIEW:path, e.g. PA:img/c1_pa.png")
                continue
            entries.append((view, path))
        else:
            checker.add(row, column, f"image entry {position} must be 'VIEW:path' or an object, got {_type_name(entry)}")
    return entries


def _image_list(
    row: int, values: dict[str, Any], column: str, checker: _Checker, *, is_prior: bool, required: bool
) -> list[ImageRecord]:
    if column not in values:
        return []  # a missing required column is reported once for the file
    value = values.get(column)
    if value is None or (isinstance(value, (str, list)) and not (value.strip() if isinstance(value, str) else value)):
        if required:
            checker.add(row, column, "no images: give at least one, e.g. PA:img/c1_pa.png")
        return []
    entries = _image_entries(row, column, value, checker)
    if entries is None:
        return []
    if required and not entries and not any(p.row == row and p.column == column for p in checker.problems):
        checker.add(row, column, "no images: give at least one, e.g. PA:img/c1_pa.png")
    records: list[ImageRecord] = []
    seen: set[str] = set()
    for view_text, rel in entries:
        rel = rel.strip()
        if rel in seen:
            checker.add(row, column, f"image {rel!r} is listed twice")
            continue
        seen.add(rel)
        view = normalise_view(view_text)
        if view is None:
            checker.add(row, column, f"unknown view {view_text.strip()!r} for {rel}; use PA, AP or LATERAL (or lat, ll)")
        checked = _check_image(row, column, rel, checker)
        if checked is None or view is None:
            continue
        resolved, rel_posix, sha, width, height, kind, bits = checked
        records.append(
            ImageRecord(
                path=resolved,
                relpath=rel_posix,
                view=view,
                is_prior=is_prior,
                sha256=sha,
                width=width,
                height=height,
                format=kind,
                bits_stored=bits,
            )
        )
    return records


def _locate(root: Path, rel: str) -> tuple[Path, str] | str:
    """Resolve an image path inside ``root``: (resolved path, posix relpath) or what is wrong."""
    if not rel:
        return "image path is empty"
    if "\x00" in rel:
        return f"image path {rel!r} contains a NUL character"
    # Manifests made on Windows use backslashes; the folder layout is what matters.
    posix = rel.replace("\\", "/")
    if posix.startswith("/") or (len(posix) >= 2 and posix[1] == ":" and posix[0] in string.ascii_letters):
        return f"absolute path {rel!r} not allowed; give it relative to the manifest's folder"
    parts = PurePosixPath(posix).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return f"path {rel!r} escapes the manifest's folder"
    try:
        resolved = root.joinpath(*parts).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        return f"cannot resolve path {rel!r}: {exc}"
    if not resolved.is_relative_to(root):
        return f"path {rel!r} points outside the manifest's folder (symlink to {resolved})"
    try:
        if not resolved.exists():
            return f"file not found: {rel}"
        if not resolved.is_file():
            return f"not a file: {rel}"
        if resolved.stat().st_size == 0:
            return f"file is empty (0 bytes): {rel}"
    except OSError as exc:
        return f"cannot read {rel}: {exc}"
    return resolved, "/".join(parts)


def _check_image(row: int, column: str, rel: str, checker: _Checker):
    """Check one image path end to end; returns the record fields or None after a problem."""
    located = _locate(checker.root, rel)
    if isinstance(located, str):
        checker.add(row, column, located)
        return None
    resolved, rel_posix = located
    if resolved not in checker.image_cache:
        checker.image_cache[resolved] = _inspect(resolved)
    cached, notes = checker.image_cache[resolved]
    checker.notes.extend(Problem(row, column, f"{note}: {rel}") for note in notes)
    if isinstance(cached, str):
        checker.add(row, column, f"{cached}: {rel}")
        return None
    sha, kind, width, height, bits = cached
    return resolved, rel_posix, sha, width, height, kind, bits


def _inspect(path: Path) -> tuple[tuple[str, str, int, int, int] | str, tuple[str, ...]]:
    """Decode one image fully; return its facts, or a message saying what is wrong, and the decoder's notes."""
    notes: list[str] = []

    def result(facts):
        return facts, tuple(dict.fromkeys(notes))  # the header and the pixels may warn of the same thing

    try:
        kind, width, height = probe_image(path, notes=notes)
        # Checked on the header first so that a 100000-px file is not decoded to find out.
        if not (MIN_IMAGE_SIDE <= width <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= height <= MAX_IMAGE_SIDE):
            return result(
                f"implausible image size {width} x {height} px "
                f"(each side must be {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE})"
            )
        image = load_image(path, notes=notes)
        sha = image_fingerprint(path)
    except ImageError as exc:
        return result(f"unreadable image ({exc})")
    except OSError as exc:
        return result(f"cannot read image ({exc})")
    if (image.width, image.height) != (width, height):
        return result(f"image header says {width} x {height} px but the pixels are {image.width} x {image.height}")
    return result((sha, image.format, image.width, image.height, int(image.bits_stored)))


def _drafts(row: int, values: dict[str, Any], checker: _Checker) -> list[DraftRecord]:
    drafts: list[DraftRecord] = []
    reader_text = _text(values, "reader_draft", row, checker)
    author = _text(values, "reader_draft_author", row, checker)
    if reader_text is not None:
        drafts.append(DraftRecord("reader", reader_text, None, None, None, author))
    elif author is not None:
        checker.add(row, "reader_draft_author", "reader_draft_author given without reader_draft")

    # The raw output is kept byte for byte: it is provenance, and parsing it is the model
    # runtime's job.
    raw = _text(values, "model_output", row, checker, keep_whitespace=True)
    model_id = _text(values, "model_id", row, checker)
    mode_text = _text(values, "model_mode", row, checker)
    mode = None
    if mode_text is not None:
        mode = mode_text.lower()
        if mode not in MODEL_MODES:
            checker.add(row, "model_mode", f"unknown model mode {mode_text!r}; use reasoning or instruction")
    if raw is not None:
        drafts.append(DraftRecord("model", None, raw, model_id, mode, None))
    else:
        for column, given in (("model_id", model_id), ("model_mode", mode_text)):
            if given is not None:
                checker.add(row, column, f"{column} given without model_output")
    return drafts


def _mc_items(row: int, values: dict[str, Any], case_id: str, views: set[str], checker: _Checker) -> list[MCItem]:
    items: list[MCItem] = []
    flat = {column: values.get(column) for column in _MC_FLAT_COLUMNS}
    flat_given = any(v is not None and not (isinstance(v, str) and not v.strip()) for v in flat.values())
    listed = values.get("mc_items")
    if isinstance(listed, str):
        if listed.strip():
            try:
                listed = json.loads(listed)
            except json.JSONDecodeError as exc:
                checker.add(row, "mc_items", f"invalid JSON list of items: {exc.msg}")
                return []
        else:
            listed = None
    if listed is not None and flat_given:
        checker.add(row, "mc_items", "give multiple-choice items either in mc_items or in the mc_* columns, not both")
        return []
    if flat_given:
        spec = {key: flat[f"mc_{key}"] for key in _MC_ITEM_KEYS}
        item = _mc_item(row, spec, f"{case_id}-mc1", views, checker, prefix="mc_")
        return [item] if item else []
    if listed is None:
        return []
    if not isinstance(listed, list):
        checker.add(row, "mc_items", f"must be a list of item objects, got {_type_name(listed)}")
        return []
    seen_ids: set[str] = set()
    for position, spec in enumerate(listed, start=1):
        if not isinstance(spec, dict):
            checker.add(row, "mc_items", f"item {position} must be an object, got {_type_name(spec)}")
            continue
        unknown = set(map(str, spec)) - set(_MC_ITEM_KEYS)
        if unknown:
            checker.add(row, "mc_items", f"item {position} has unknown keys {sorted(unknown)}; known: {', '.join(_MC_ITEM_KEYS)}")
            continue
        item = _mc_item(row, spec, f"{case_id}-mc{position}", views, checker, prefix=f"mc_items[{position}].")
        if item is None:
            continue
        if item.item_id in seen_ids:
            checker.add(row, "mc_items", f"duplicate item id {item.item_id!r}")
            continue
        seen_ids.add(item.item_id)
        items.append(item)
    return items


def _mc_item(
    row: int, spec: dict[str, Any], default_id: str, views: set[str], checker: _Checker, *, prefix: str
) -> MCItem | None:
    # Problems name the column the coordinator typed: "mc_answer" for the flat columns,
    # "mc_items" (with the item number in the message) for the list form.
    def where(key: str) -> str:
        return f"mc_{key}" if prefix == "mc_" else "mc_items"

    def label(key: str) -> str:
        return "" if prefix == "mc_" else f"{prefix}{key}: "

    before = len(checker.problems)
    texts: dict[str, str | None] = {}
    for key in ("item_id", "question", "answer", "model_output", "image_view"):
        value = spec.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            texts[key] = None
        elif isinstance(value, str):
            texts[key] = value if key == "model_output" else value.strip()
        else:
            checker.add(row, where(key), f"{label(key)}must be text, got {_type_name(value)}")
            texts[key] = None
    if texts["question"] is None:
        checker.add(row, where("question"), f"{label('question')}a multiple-choice item needs a question")
    options = _mc_options(row, spec.get("options"), where("options"), label("options"), checker)
    answer = texts["answer"]
    if answer is not None:
        answer = answer.upper()
        if options is not None and answer not in options:
            checker.add(
                row, where("answer"), f"{label('answer')}answer {texts['answer']!r} is not among the options {', '.join(options)}"
            )
    image_view = None
    if texts["image_view"] is not None:
        image_view = normalise_view(texts["image_view"])
        if image_view is None:
            checker.add(row, where("image_view"), f"{label('image_view')}unknown view {texts['image_view']!r}; use PA, AP or LATERAL")
        elif views and image_view not in views:
            checker.add(row, where("image_view"), f"{label('image_view')}the case has no {image_view} image")
    item_id = texts["item_id"] or default_id
    if len(item_id) > MAX_CASE_ID_LENGTH or not item_id.isprintable():
        checker.add(row, where("item_id"), f"{label('item_id')}item id must be printable and at most {MAX_CASE_ID_LENGTH} characters")
    if len(checker.problems) != before or options is None or texts["question"] is None:
        return None
    return MCItem(
        item_id=item_id,
        question=texts["question"],
        options=options,
        answer=answer,
        model_output=texts["model_output"],
        image_view=image_view,
    )


def _mc_options(row: int, value: Any, column: str, label: str, checker: _Checker) -> dict[str, str] | None:
    """Parse options given as 'A=..|B=..', a JSON object, or a list of texts (lettered A, B, ...)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        checker.add(row, column, f"{label}a multiple-choice item needs options, e.g. A=Yes|B=No")
        return None
    pairs: list[tuple[Any, Any]]
    if isinstance(value, str) and value.strip()[:1] in "{[":
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            checker.add(row, column, f"{label}options are not valid JSON: {exc.msg}")
            return None
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        if len(value) > 26:
            checker.add(row, column, f"{label}at most 26 options (A to Z), got {len(value)}")
            return None
        pairs = [(string.ascii_uppercase[i], text) for i, text in enumerate(value)]
    elif isinstance(value, str):
        pairs = []
        for part in value.split("|"):
            letter, sep, text = part.partition("=")
            if not sep:
                checker.add(row, column, f"{label}malformed option {part.strip()!r}; write options as A=text|B=text")
                return None
            pairs.append((letter, text))
    else:
        checker.add(row, column, f"{label}options must be 'A=..|B=..', a JSON object or a list, got {_type_name(value)}")
        return None
    options: dict[str, str] = {}
    for letter, text in pairs:
        key = letter.strip().upper() if isinstance(letter, str) else None
        if key is None or len(key) != 1 or key not in string.ascii_uppercase:
            checker.add(row, column, f"{label}option label {letter!r} must be a single letter A to Z")
            return None
        if not isinstance(text, str) or not text.strip():
            checker.add(row, column, f"{label}option {key} has no text")
            return None
        if key in options:
            checker.add(row, column, f"{label}option {key} is given twice")
            return None
        options[key] = text.strip()
    if len(options) < 2:
        checker.add(row, column, f"{label}a multiple-choice item needs at least two options, got {len(options)} (separate options with |)")
        return None
    return options
