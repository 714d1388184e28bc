"""What the coordinator console shows that no other service gives: reader links, launch readiness, the audit log,
in-memory export and report, and drafting runs in the background."""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, Unavailable
from study_app.services.export import iso, write_export
from study_app.services.invites import link_state, newest_invite
from study_app.services.balance import describe_study, StudyBalance
from study_app.services.launch import launch_checklist
from study_app.services.studies import get_study
from study_app.store.models import Event, Reader

READER_COLUMNS = ["reader", "role", "label", "link", "link_issued_at", "link_expires_at", "signed_in_at"]
EVENT_COLUMNS = ["event_id", "at", "actor", "reader", "assignment_id", "kind", "payload"]


def reader_links(db: Database, actor: Actor, study_id: str) -> pd.DataFrame:
    """The study's readers and the state of each one's newest invite link.

    Returns
    -------
    pandas.DataFrame
        One row per reader, columns ``reader``, ``role``, ``label``, ``link`` (``none``, ``issued``:
        not used yet, ``used``: the reader signed in with it, ``expired``, ``revoked``),
        ``link_issued_at``, ``link_expires_at``, ``signed_in_at`` (ISO 8601 UTC or empty).
    """
    require_coordinator(actor, "see the readers")
    rows = []
    with db.read() as session:
        get_study(session, study_id)
        for reader in session.scalars(select(Reader).where(Reader.study_id == study_id).order_by(Reader.id)):
            invite = newest_invite(session, reader.id)
            rows.append({
                "reader": reader.reader_key, "role": reader.role, "label": reader.label, "link": link_state(invite),
                "link_issued_at": iso(invite.created_at) if invite else None,
                "link_expires_at": iso(invite.expires_at) if invite else None,
                "signed_in_at": iso(invite.used_at) if invite else None,
            })
    return pd.DataFrame(rows, columns=READER_COLUMNS)


@dataclass
class LaunchReadiness:
    """Everything the launch page shows: the launch checklist (``launch.launch_checklist``) and the balance."""

    status: str
    draft_problems: list[str]
    readers_without_link: list[str]
    balance: StudyBalance
    draft_notes: list[str] = field(default_factory=list)  # drafts with problems shown by recorded decision

    @property
    def ok(self) -> bool:
        """True when the study may be launched now: a draft study whose checklist has no problem. Readers
        without a link are a note, not a block (links can be issued after launch), here and on the CLI."""
        return self.status == "draft" and not self.draft_problems

    @property
    def problems(self) -> list[str]:
        return list(self.draft_problems)


def launch_readiness(db: Database, actor: Actor, study_id: str) -> LaunchReadiness:
    """The launch checklist of a study (`launch.launch_checklist`, the rule the launch itself applies) and its
    allocation balance."""
    require_coordinator(actor, "check a study before launch")
    with db.read() as session:
        study = get_study(session, study_id)
        status = study.status
        check = launch_checklist(session, study)
    accepted = [i.describe() for i in check.draft_issues if i.accepted] if status == "draft" else []
    return LaunchReadiness(status, check.problems if status == "draft" else [], check.readers_without_link,
                           describe_study(db, actor, study_id), accepted)


def audit_log(db: Database, actor: Actor, study_id: str, *, limit: int | None = None) -> pd.DataFrame:
    """The study's audit log, newest first.

    Returns
    -------
    pandas.DataFrame
        Columns ``event_id``, ``at`` (ISO 8601 UTC), ``actor``, ``reader`` (reader id of the study or
        empty), ``assignment_id``, ``kind``, ``payload`` (a dict).
    """
    require_coordinator(actor, "read the audit log")
    with db.read() as session:
        get_study(session, study_id)
        keys = dict(session.execute(select(Reader.id, Reader.reader_key).where(Reader.study_id == study_id)).all())
        query = select(Event).where(Event.study_id == study_id).order_by(Event.id.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = [
            {"event_id": e.id, "at": iso(e.at), "actor": e.actor, "reader": keys.get(e.reader_id),
             "assignment_id": e.assignment_id, "kind": e.kind, "payload": dict(e.payload or {})}
            for e in session.scalars(query)
        ]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def export_zip(db: Database, actor: Actor, study_id: str, *, fmt: str = "csv") -> bytes:
    """The study's export (every data-dictionary table and ``export_meta.json``) as one zip, built in memory."""
    with tempfile.TemporaryDirectory(prefix="readerstudy-export-") as scratch:
        folder = write_export(db, actor, study_id, Path(scratch) / study_id, fmt=fmt)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(folder.iterdir()):
                zipped.write(path, f"{study_id}/{path.name}")
    return buffer.getvalue()


def analysis_available() -> bool:
    """Whether the `analysis` package (run_analysis, write_report) can be imported here."""
    try:
        from analysis import run_analysis, write_report  # noqa: F401
    except ImportError:
        return False
    return True


def analysis_report(db: Database, actor: Actor, study_id: str, *, n_boot: int = 1000,
                    in_progress: bool = True) -> str:
    """Run the reader-study analysis on the study as it stands and return the HTML report.

    ``in_progress`` lets a study with arms still unread be analysed (as ``readerstudy analyze
    --in-progress``). Raises Unavailable when the `analysis` package is missing, InvalidInput when
    the data cannot be analysed yet (no counted read, for instance).
    """
    from study_app.services.analysis import analyse_study

    result = analyse_study(db, actor, study_id, n_boot=n_boot, in_progress=in_progress)
    from analysis import write_report

    with tempfile.TemporaryDirectory(prefix="readerstudy-report-") as scratch:
        return write_report(result, scratch).read_text(encoding="utf-8")


# --- drafting in the background ---------------------------------------------------------------


def vllm_server_backend(url: str, *, served_model_name: str | None = None, model_id: str | None = None,
                        model_revision: str | None = None, concurrency: int = 16, ready_timeout_s: float = 120.0,
                        first_response_timeout_s: float | None = None):
    """A vLLM-server backend for `start_drafting`, built where the CLI builds its own (``drafting_backend``).

    ``ready_timeout_s`` bounds the wait for the server's ``/health`` before the run gives up;
    ``first_response_timeout_s`` one request's wait for its answer.
    """
    from study_app.services.drafting import drafting_backend

    return drafting_backend("vllm-server", url=url, served_model_name=served_model_name, model_id=model_id,
                            model_revision=model_revision, concurrency=concurrency, ready_timeout_s=ready_timeout_s,
                            first_response_timeout_s=first_response_timeout_s)


# --- small reads and writes the pages need ---------------------------------------------------


def shipped_designs() -> list[str]:
    """Names of the designs that ship with the platform, ``chexone`` (the default) first."""
    from study_app.designs.design import shipped_design_names

    return shipped_design_names()


def design_roles(db: Database, actor: Actor, study_id: str) -> dict[str, str]:
    """The reader roles the study's design declares (key -> description)."""
    from study_app.services.studies import study_design

    require_coordinator(actor, "see a study's design")
    with db.read() as session:
        return dict(study_design(get_study(session, study_id)).roles)


MIN_STATUS_REASON_CHARS = 3


def change_study_status(db: Database, actor: Actor, study_id: str, action: str, *, reason: str):
    """Pause, resume or close a study from the console, where a reason for the audit log is required."""
    from study_app.services.errors import InvalidInput
    from study_app.services.lifecycle import change_status

    require_coordinator(actor, f"{action} a study")
    if len((reason or "").strip()) < MIN_STATUS_REASON_CHARS:
        raise InvalidInput(f"say why you {action} the study (a few words for the audit log)")
    return change_status(db, actor, study_id, action, reason=reason.strip())


def blinding_audit(db: Database, actor: Actor, study_id: str, *, pages: bool = True, timeout_s: float = 1800) -> dict:
    """Run ``readerstudy audit blinding`` on the study in a process of its own and return its report (a dict).

    A process of its own: the audit runs the reader pages on a snapshot of the database, pointing the pages'
    database setting at the snapshot while it runs; inside the serving process that would reach readers.
    """
    import json
    import subprocess
    import sys

    require_coordinator(actor, "audit a study's blinding")
    with db.read() as session:
        get_study(session, study_id)
    with tempfile.TemporaryDirectory(prefix="readerstudy-console-audit-") as folder:
        out = Path(folder) / "audit.json"
        command = [sys.executable, "-c", "from study_app.cli import main; main()", "audit", "blinding", study_id,
                   "--db", db.url, "--json", str(out)] + ([] if pages else ["--no-pages"])
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"the blinding audit did not finish within {timeout_s / 60:.0f} minutes") from None
        if done.returncode not in (0, 8) or not out.is_file():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise Unavailable(f"the blinding audit failed: {last}")
        return json.loads(out.read_text(encoding="utf-8"))


def dress_rehearsal(db: Database, actor: Actor, study_id: str, *, n_boot: int = 200, timeout_s: float = 1800) -> dict:
    """Run ``readerstudy study rehearse`` on the study in a process of its own; return its summary (``lines`` and
    the other keys of ``rehearsal.RehearsalReport``) and the rehearsed study's report (``report_html``, or None).

    A process of its own, like the blinding audit: the rehearsal reads every case of a copy of the database on a
    simulated clock, for seconds to minutes of work the serving process should not do in a reader's thread.
    Everything it writes goes to a temporary folder, read back and removed.
    """
    import json
    import subprocess
    import sys

    require_coordinator(actor, "rehearse a study")
    with db.read() as session:
        get_study(session, study_id)
    with tempfile.TemporaryDirectory(prefix="readerstudy-console-rehearsal-") as folder:
        out, summary = Path(folder) / "rehearsal", Path(folder) / "summary.json"
        command = [sys.executable, "-c", "from study_app.cli import main; main()", "study", "rehearse", study_id,
                   "--db", db.url, "--out", str(out), "--json", str(summary), "--n-boot", str(n_boot)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"the dress rehearsal did not finish within {timeout_s / 60:.0f} minutes") from None
        if done.returncode != 0 or not summary.is_file():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("error: ")
            raise (Conflict if done.returncode == 4 else Unavailable)(f"the dress rehearsal failed: {last}")
        from study_app.services.rehearsal import RehearsalReport

        result = json.loads(summary.read_text(encoding="utf-8"))
        result["lines"] = RehearsalReport(**result).lines()
        report = out / "report" / "report.html"
        result["report_html"] = report.read_text(encoding="utf-8") if report.is_file() else None
        return result
