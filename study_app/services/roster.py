"""Reads the coordinator's reader list (CSV): pseudonymous ids and roles, contact details kept private."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from study_app.services.errors import InvalidInput

READER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
COLUMNS = ("reader_id", "role", "label", "name", "email", "site")
REQUIRED = ("reader_id", "role")


@dataclass(frozen=True)
class RosterEntry:
    row: int
    reader_key: str
    role: str
    label: str
    name: str | None
    email: str | None
    # The reader's site in a multi-site study (the same identifiers as the manifest's site column); None: no site.
    site: str | None = None


def parse_roster(text: str, *, roles: dict[str, str] | None = None, source: str = "readers") -> list[RosterEntry]:
    """Parse a readers CSV (columns reader_id, role, and optional label, name, email, site).

    Every problem is collected and reported together, each with its row and column. Rows are
    numbered as in case manifests: the header is row 0, the first reader row 1.
    """
    problems: list[str] = []
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput(f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        problems.append(f"{source}: unknown column(s) {', '.join(unknown)} (expected {', '.join(COLUMNS)})")
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    rows = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as error:
        # The csv module cannot resume after a broken line (a stray carriage return, a NUL byte).
        problems.append(f"{source} row {len(rows) + 1}: cannot parse the CSV ({error}); rows after it were not read")
    for row_number, row in enumerate(rows, start=1):
        if None in row:
            problems.append(f"{source} row {row_number}: more cells than columns")
            continue
        key = (row.get("reader_id") or "").strip()
        role = (row.get("role") or "").strip()
        if not key:
            problems.append(f"{source} row {row_number}, column reader_id: empty")
        elif not READER_KEY.match(key):
            problems.append(
                f"{source} row {row_number}, column reader_id: '{key}' must be letters, digits, '.', '_' or '-' "
                "(at most 64)"
            )
        elif key in seen:
            problems.append(f"{source} row {row_number}, column reader_id: '{key}' already on row {seen[key]}")
        else:
            seen[key] = row_number
        if not role:
            problems.append(f"{source} row {row_number}, column role: empty")
        elif roles is not None and role not in roles:
            problems.append(
                f"{source} row {row_number}, column role: '{role}' is not a role of the design ({', '.join(roles)})"
            )
        email = (row.get("email") or "").strip() or None
        if email and "@" not in email:
            problems.append(f"{source} row {row_number}, column email: '{email}' is not an e-mail address")
        site = (row.get("site") or "").strip() or None
        if site and not READER_KEY.match(site):
            problems.append(
                f"{source} row {row_number}, column site: '{site}' must be letters, digits, '.', '_' or '-' "
                "(at most 64), e.g. site_a"
            )
        entries.append(
            RosterEntry(
                row=row_number,
                reader_key=key,
                role=role,
                label=(row.get("label") or "").strip() or key,
                name=(row.get("name") or "").strip() or None,
                email=email,
                site=site,
            )
        )
    if not entries and not problems:
        problems.append(f"{source}: no readers listed")
    if problems:
        raise InvalidInput("\n".join(problems))
    return entries


def load_roster(path: str | Path, *, roles: dict[str, str] | None = None) -> list[RosterEntry]:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the reader list ({error.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: the reader list is not UTF-8 text") from None
    return parse_roster(text, roles=roles, source=str(path))
