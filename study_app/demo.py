"""Builds the demo study: a generated cohort (no patient data), the CheXOne design (or another shipped design),
demo readers (at two sites for a design with [sites]), launched."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from study_app.designs import shipped_design_path
from study_app.services.actors import SYSTEM
from study_app.services.database import Database
from study_app.services.drafting import import_recorded_drafts
from study_app.services.errors import NotFound
from study_app.services.invites import IssuedInvite, issue_invites
from study_app.services.creation import create_study
from study_app.services.launch import launch_study
from study_app.services.studies import study_summary

DEMO_STUDY_ID = "demo"
DEMO_SEED = 20240601
DEMO_CASES = 12
DEMO_READERS = (
    ("res1", "resident", "Resident 1"),
    ("res2", "resident", "Resident 2"),
    ("att1", "attending", "Attending 1"),
    ("att2", "attending", "Attending 2"),
    ("att3", "attending", "Attending 3"),
    ("att4", "attending", "Attending 4"),
    ("rad1", "radiologist", "Radiologist 1"),
    ("rad2", "radiologist", "Radiologist 2"),
)


DEMO_COORDINATOR = "demo"
# A design with [sites] gets a two-site demo: cases dealt to the sites in turn, and each role's readers too (so
# every site has readers of every role, whether the design crosses the sites or keeps readers to their own).
DEMO_SITES = ("site_a", "site_b")


@dataclass(frozen=True)
class DemoResult:
    message: str
    invites: list[IssuedInvite]
    created: bool
    coordinator: str = DEMO_COORDINATOR
    coordinator_password: str = ""


def write_demo_readers(path: Path, sites: tuple[str, ...] = ()) -> Path:
    """The demo roster as a readers CSV; with ``sites``, each role's readers dealt to the sites in turn."""
    if not sites:
        lines = ["reader_id,role,label"] + [",".join(row) for row in DEMO_READERS]
    else:
        lines, seen = ["reader_id,role,label,site"], {}
        for row in DEMO_READERS:
            n = seen[row[1]] = seen.get(row[1], -1) + 1
            lines.append(",".join([*row, sites[n % len(sites)]]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def demo_study_id(design: str = "chexone") -> str:
    """The demo study of a shipped design: ``demo`` for CheXOne, ``demo-<design>`` for another."""
    return DEMO_STUDY_ID if design == "chexone" else f"{DEMO_STUDY_ID}-{design}"


def build_demo_study(db: Database, *, cohort_dir: str | Path = Path("var/demo-cohort"),
                     design: str = "chexone") -> DemoResult:
    """Create and launch the demo study of a shipped design (``chexone``, ``crossover_washout``, ...) if the
    database lacks it; issue fresh links for its readers either way."""
    cohort_dir = Path(cohort_dir).resolve()
    study_id = demo_study_id(design)
    design_path = shipped_design_path(design)  # an unknown name is refused before anything is built
    try:
        summary = study_summary(db, SYSTEM, study_id)
        created = False
    except NotFound:
        from cohorts.demo import build_demo_cohort

        from study_app.designs import load_design

        sites = DEMO_SITES if load_design(design_path).sites is not None else ()
        # A sited manifest sits beside the plain one, on the same images (same seed, same bytes).
        name = "manifest_sites.csv" if sites else "manifest.csv"
        manifest = cohort_dir / name
        if not manifest.is_file():
            manifest = build_demo_cohort(cohort_dir, n_cases=DEMO_CASES, seed=0, sites=sites, manifest_name=name)
        readers = write_demo_readers(cohort_dir / ("readers_sites.csv" if sites else "readers.csv"), sites)
        create_study(
            db, SYSTEM, study_id=study_id, design_path=design_path,
            manifest_path=manifest, readers_path=readers, seed=DEMO_SEED,
            name="CheXOne reader study (demo)" if design == "chexone" else None,
        )
        import_recorded_drafts(db, SYSTEM, study_id)
        summary = launch_study(db, SYSTEM, study_id)
        created = True
    invites = issue_invites(db, SYSTEM, study_id)
    password = _demo_coordinator_password(db)
    verb = "built" if created else "found"
    message = (
        f"{verb} demo study '{study_id}' [{summary.status}]: {summary.n_cases} cases, {summary.n_readers} readers, "
        f"{summary.n_assignments} assignments (database {db.url})"
    )
    return DemoResult(message=message, invites=invites, created=created, coordinator_password=password)


def _demo_coordinator_password(db: Database) -> str:
    """A fresh password for the demo's coordinator account on every run (only its hash is stored)."""
    from study_app.services.auth import create_coordinator, set_coordinator_password

    password = secrets.token_urlsafe(12)
    try:
        set_coordinator_password(db, SYSTEM, DEMO_COORDINATOR, password)
    except NotFound:
        create_coordinator(db, SYSTEM, DEMO_COORDINATOR, password)
    return password
