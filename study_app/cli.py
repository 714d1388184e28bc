"""The `readerstudy` command: a thin layer that opens the database, calls one service, and prints the result.

User errors print one line (or one line per problem) on stderr and exit non-zero; never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from study_app.services.actors import SYSTEM
from study_app.services.database import Database, open_database
from study_app.services.errors import ServiceError
from study_app.store.engine import DEFAULT_DB_ENV

DEFAULT_PORT = 8501


class CleanErrors(click.Group):
    """Turns expected failures into one clear message and an exit code, for every subcommand."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.exc import SQLAlchemyError

        from study_app.services.database import translate

        try:
            return super().invoke(ctx)
        except ServiceError as error:
            _fail(str(error), error.exit_code)
        except SQLAlchemyError as error:
            # A database fault outside a service's transaction (a command reading the schema revision, say).
            translated = translate(error)
            if not isinstance(translated, ServiceError):
                raise
            _fail(str(translated), translated.exit_code)
        except SettingError as error:
            _fail(str(error), 2)
        except (ValueError, OSError) as error:
            # Library-level input errors (design, manifest, image) carry their own clear messages.
            from cohorts.manifest import ManifestError
            from study_app.designs import DesignError

            if isinstance(error, (ManifestError, DesignError, OSError)):
                _fail(str(error), 1)
            raise


def _fail(message: str, code: int) -> None:
    for line in message.splitlines() or [message]:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


class SettingError(ValueError):
    """A malformed setting (an origin, a proxy address): one line, exit 2."""


def db_option(function=None, *, create: bool = False):
    """--db URL, shared by every command that touches the database.

    Only the commands that start a study database (``db upgrade``, ``coordinator add``, ``study create``,
    ``demo``) take ``create=True``; every other command refuses a SQLite file that is not there, so a mistyped
    path says so instead of opening a new, empty study.
    """
    if function is None:
        return functools.partial(db_option, create=create)

    @click.option(
        "--db",
        "db_url",
        envvar=DEFAULT_DB_ENV,
        default=None,
        metavar="URL",
        help=f"SQLAlchemy URL or SQLite file path (default: ${DEFAULT_DB_ENV}, else ./var/readerstudy.sqlite).",
    )
    @functools.wraps(function)
    def wrapper(*args, db_url: str | None, **kwargs):
        db = open_database(db_url, create=create)
        try:
            return function(*args, db=db, **kwargs)
        finally:
            db.dispose()

    return wrapper


class BackendChoice(click.Choice):
    """The drafting backends, asked of the registry when the command runs (not hard-coded, and the registry's
    import, which is slow, is paid only by the commands that draft)."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):  # type: ignore[override]
        from study_app.services.drafting import generating_backends

        return generating_backends()

    @choices.setter
    def choices(self, value) -> None:
        pass


def vllm_server_options(function):
    """--url and --model, shared by the commands that talk to a vLLM server."""

    @click.option("--url", "urls", multiple=True, default=("http://127.0.0.1:8000",), show_default=True,
                  help="A vLLM server's root URL; repeat it for several replicas of one model (requests spread by "
                       "load, a dead server failed over).")
    @click.option("--model", "served_name", default=None, help="The served model name (vllm serve --served-model-name).")
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


def bind_options(function):
    """--host and --port, shared by the commands that start the web app."""

    @click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind (put a TLS proxy in front for anything but a laptop).")
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="readerstudy")
def main() -> None:
    """Reader studies of AI-drafted chest X-ray reports.

    \b
    Example:
      readerstudy demo --no-serve
    """


# --- database -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The study database.

    \b
    Example:
      readerstudy db upgrade --db var/study.sqlite
    """


@db.command("upgrade")
@db_option(create=True)
def db_upgrade(db: Database) -> None:
    """Create the database or bring it to the newest schema (migrations are recorded in it).

    \b
    Example:
      readerstudy db upgrade --db postgresql+psycopg://study@localhost/study
    """
    from study_app.store import current_revision

    click.echo(f"database at revision {current_revision(db.engine)}")


# --- coordinators --------------------------------------------------------------------------------


@main.group()
def coordinator() -> None:
    """Coordinator accounts for the web console.

    \b
    Example:
      readerstudy coordinator add alice
    """


@coordinator.command("add")
@click.argument("username")
@click.password_option("--password", envvar="READERSTUDY_COORDINATOR_PASSWORD",
                       help="The password (prompted for when not given; or $READERSTUDY_COORDINATOR_PASSWORD).")
@db_option(create=True)
def coordinator_add(db: Database, username: str, password: str) -> None:
    """Create a coordinator account (argon2id password hash) who signs in to the console at /console/signin.

    \b
    Example:
      readerstudy coordinator add alice
    """
    from study_app.services.auth import create_coordinator

    create_coordinator(db, SYSTEM, username, password)
    click.echo(f"coordinator '{username}' created; sign in at /console/signin")


@coordinator.command("unlock")
@click.argument("username", required=False)
@click.option("--address", default=None, metavar="ADDR", help="Unlock a client address instead of a username.")
@click.option("--reason", default="", help="Why (recorded in the audit log).")
@db_option
def coordinator_unlock(db: Database, username: str | None, address: str | None, reason: str) -> None:
    """Lift a sign-in lockout (after too many wrong passwords) of a username or a client address; audited.

    \b
    Example:
      readerstudy coordinator unlock alice --reason "forgot her password, reset by phone"
      readerstudy coordinator unlock --address 10.0.4.17
    """
    from study_app.services.throttle import unlock_sign_in

    lifted = unlock_sign_in(db, SYSTEM, username=username, address=address, reason=reason)
    what = "username" if lifted.kind == "user" else "address"
    click.echo(f"{what} '{lifted.key}' unlocked (it had {lifted.failures} failed sign-ins)")


@coordinator.command("locked")
@db_option
def coordinator_locked(db: Database) -> None:
    """List the usernames and client addresses locked after too many failed sign-ins.

    \b
    Example:
      readerstudy coordinator locked
    """
    from study_app.services.throttle import locked_sign_ins

    locked = locked_sign_ins(db, SYSTEM)
    if not locked:
        click.echo("nothing is locked")
    for row in locked:
        click.echo(f"{'username' if row.kind == 'user' else 'address'}\t{row.key}\t{row.failures} failures\t"
                   f"locked {row.locked_at:%Y-%m-%d %H:%M} UTC")


# --- cohorts --------------------------------------------------------------------------------------


@main.group()
def cohort() -> None:
    """Case cohorts (manifests of images, indications and drafts).

    \b
    Example:
      readerstudy cohort validate cohorts/my_study/manifest.csv
    """


@cohort.command("validate")
@click.argument("manifest", type=click.Path(path_type=Path))
def cohort_validate(manifest: Path) -> None:
    """List every problem of a manifest, with row and column; exit 1 if there is any.

    \b
    Example:
      readerstudy cohort validate cohorts/demo/manifest.csv
    """
    from cohorts.manifest import check_manifest

    report = check_manifest(manifest)
    # Notes are what the image decoders warned about (pydicom's warnings): part of the report, not the terminal's.
    for note in report.notes:
        click.echo(f"{manifest}: note: {note}", err=True)
    if report.problems:
        for problem in report.problems:
            click.echo(f"{manifest}: {problem}", err=True)
        click.echo(f"{len(report.problems)} problem(s); nothing can be imported until they are fixed", err=True)
        sys.exit(1)
    cohort_ = report.cohort
    n_images = sum(len(c.images) + len(c.priors) for c in cohort_.cases)
    noted = f"; {len(report.notes)} note(s) from the image decoders above" if report.notes else ""
    click.echo(f"{manifest}: valid, {len(cohort_.cases)} case(s), {n_images} image(s){noted}")


@cohort.command("import")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--study", "study_id", required=True, help="The study (not launched yet) to add the cases to.")
@db_option
def cohort_import(db: Database, manifest: Path, study_id: str) -> None:
    """Add a manifest's cases to a study before launch, all or nothing, and allocate again from the seed.

    \b
    Example:
      readerstudy cohort import cohort/second_batch.csv --study pilot
    """
    from study_app.services.creation import import_cohort

    summary = import_cohort(db, SYSTEM, study_id, manifest)
    click.echo(f"imported into '{study_id}': now {summary.n_cases} cases, {summary.n_assignments} assignments")


# --- studies --------------------------------------------------------------------------------------


@main.group()
def study() -> None:
    """Create, inspect and launch studies.

    \b
    Example:
      readerstudy study create pilot --design design.toml --cohort manifest.csv --readers readers.csv --seed 7
    """


@study.command("create")
@click.argument("study_id")
@click.option("--design", "design_path", required=True, type=click.Path(path_type=Path),
              help="Design file (TOML), or 'chexone' for the shipped CheXOne design.")
@click.option("--cohort", "manifest_path", required=True, type=click.Path(path_type=Path), help="Cohort manifest.")
@click.option("--readers", "readers_path", required=True, type=click.Path(path_type=Path),
              help="Reader list (CSV: reader_id, role, label, name, email).")
@click.option("--seed", type=int, default=None, help="Allocation seed (default: a random one, printed and stored).")
@click.option("--name", default=None, help="Study name (default: the design's).")
@db_option(create=True)
def study_create(db: Database, study_id: str, design_path: Path, manifest_path: Path, readers_path: Path,
                 seed: int | None, name: str | None) -> None:
    """Create a study: import the cohort and readers and allocate every assignment, all or nothing.

    \b
    Example:
      readerstudy study create pilot --design chexone --cohort cohort/manifest.csv \\
          --readers readers.csv --seed 20240601
    """
    from study_app.designs import shipped_design_path
    from study_app.services.creation import create_study

    if not design_path.exists() and "/" not in str(design_path) and not design_path.suffix:
        design_path = shipped_design_path(str(design_path))
    summary = create_study(
        db, SYSTEM, study_id=study_id, design_path=design_path, manifest_path=manifest_path,
        readers_path=readers_path, seed=seed, name=name,
    )
    click.echo(
        f"created study '{summary.study_id}' (seed {summary.seed}): {summary.n_cases} cases, "
        f"{summary.n_readers} readers, {summary.n_assignments} assignments"
    )


@study.command("list")
@db_option
def study_list(db: Database) -> None:
    """List the studies in the database.

    \b
    Example:
      readerstudy study list
    """
    from study_app.services.studies import list_studies

    studies = list_studies(db, SYSTEM)
    if not studies:
        click.echo("no studies yet (create one with `readerstudy study create` or `readerstudy demo`)")
    for s in studies:
        done = s.by_status.get("completed", 0)
        click.echo(f"{s.study_id}\t{s.status}\t{s.name}\t{done}/{s.n_assignments} completed")


@study.command("describe")
@click.argument("study_id")
@db_option
def study_describe(db: Database, study_id: str) -> None:
    """Print the allocation's balance: reads per case and reader per arm, reading rounds, A/B balance, overlap.

    \b
    Example:
      readerstudy study describe demo
    """
    from study_app.services.balance import describe_study

    balance = describe_study(db, SYSTEM, study_id)
    s = balance.summary
    click.echo(f"study {s.study_id}: {s.name} [{s.status}], seed {s.seed}, design {s.design_sha256[:12]}")
    click.echo(f"{s.n_cases} cases, {s.n_readers} readers, {s.n_assignments} assignments")
    per_case = balance.reads_per_case
    click.echo("\nreads per case, by arm (min / max over the arm's cases):")
    for arm in per_case.columns:
        values = per_case[arm][per_case[arm] > 0]
        click.echo(f"  {arm:<28} {len(values):>4} cases  {values.min() if len(values) else 0} / {values.max() if len(values) else 0}")
    click.echo("\ncases per reader, by arm:")
    click.echo(_indent(balance.reads_per_reader.to_string()))
    click.echo("\nreading rounds (a reader's cases of one round open together; nothing opens case by case):")
    click.echo(_indent(balance.rounds.to_string(index=False)))
    waiting = balance.reader_rounds[balance.reader_rounds["open"] < balance.reader_rounds["cases"]]
    if len(waiting):
        click.echo("\nrounds not open yet, per reader:")
        click.echo(_indent(waiting.to_string(index=False)))
    if len(balance.ab_balance):
        ab = balance.ab_balance
        n, model_a = int(ab["model_as_a"].sum() + ab["reader_as_a"].sum()), int(ab["model_as_a"].sum())
        click.echo("\nA/B position in comparisons (which draft stood as A), per reader and worklist half:")
        click.echo(_indent(ab.to_string(index=False)))
        click.echo(f"  study-wide: model as A in {model_a} of {n} comparisons ({model_a / n:.1%})")
    click.echo("\nreader x reader overlap (cases both read, any arm):")
    click.echo(_indent(balance.overlap.to_string()))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@study.command("launch")
@click.argument("study_id")
@db_option
def study_launch(db: Database, study_id: str) -> None:
    """Freeze the design, cohort, drafts and allocation, and open the study to its readers.

    \b
    Example:
      readerstudy study launch pilot
    """
    from study_app.services.launch import launch_notes, launch_study

    summary = launch_study(db, SYSTEM, study_id)
    ready = summary.by_status.get("ready", 0)
    click.echo(f"launched '{study_id}': {ready} assignments ready, {summary.by_status.get('pending', 0)} held for a "
               "later reading round")
    for note in launch_notes(db, SYSTEM, study_id):
        click.echo(f"note: {note}", err=True)


@study.command("rehearse")
@click.argument("study_id")
@click.option("--out", "out_dir", default=None, type=click.Path(path_type=Path),
              help="Folder for the scratch database, the export and the report (default: var/rehearsals/STUDY).")
@click.option("--seed", type=int, default=None, help="Seed of the simulated readers (default: the study's seed).")
@click.option("--n-boot", type=click.IntRange(100, 100_000), default=200, show_default=True,
              help="Bootstrap resamples of the analysis.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the summary as JSON to this file.")
@db_option
def study_rehearse(db: Database, study_id: str, out_dir: Path | None, seed: int | None, n_boot: int,
                   json_out: Path | None) -> None:
    """A dress rehearsal before launch: copy the study into a scratch database, launch the copy, let seeded simulated
    readers read every case through the real reading services (plausible times, edits and answers), then export,
    analyse and report it. The study itself is not touched; what the real launch would refuse is said first.

    \b
    Example:
      readerstudy study rehearse pilot --out var/rehearsals/pilot
      readerstudy progress pilot --db var/rehearsals/pilot/rehearsal.sqlite   # look inside the rehearsal
    """
    from study_app.services.rehearsal import rehearse_study

    out = out_dir or Path("var") / "rehearsals" / study_id
    report = rehearse_study(db, SYSTEM, study_id, out, seed=seed, n_boot=n_boot)
    for line in report.lines():
        click.echo(line)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")


def _status_command(action: str, summary_line: str):
    @click.argument("study_id")
    @click.option("--reason", default="", help="Why (recorded in the audit log).")
    @db_option
    def command(db: Database, study_id: str, reason: str) -> None:
        from study_app.services.lifecycle import change_status

        summary = change_status(db, SYSTEM, study_id, action, reason=reason)
        click.echo(summary_line.format(study=study_id, status=summary.status))

    return command


study.command("pause", help="""Pause a launched study: readers cannot work until it is resumed.

    \b
    Example:
      readerstudy study pause pilot --reason "PACS maintenance"
    """)(_status_command("pause", "study '{study}' is now {status}"))
study.command("resume", help="""Resume a paused study.

    \b
    Example:
      readerstudy study resume pilot
    """)(_status_command("resume", "study '{study}' is now {status}"))
study.command("close", help="""Close a study for good: no more reading; the data stays for export.

    \b
    Example:
      readerstudy study close pilot --reason "all reads done"
    """)(_status_command("close", "study '{study}' is now {status}"))


@main.command("progress")
@click.argument("study_id")
@click.option("--stalled-hours", type=click.FloatRange(0), default=48, show_default=True,
              help="A reader with cases left and no activity for this long is stalled.")
@db_option
def progress(db: Database, study_id: str, stalled_hours: float) -> None:
    """Where the study stands: per arm and per reader (done, in progress, waiting, not started), stalled readers;
    with reading sessions, each reader's schedule (session, state, opens at, cases done); with sites, per site of
    the case and of the reader.

    \b
    Example:
      readerstudy progress pilot --stalled-hours 24
    """
    from datetime import timedelta

    from study_app.services.progress import study_progress

    p = study_progress(db, SYSTEM, study_id, stalled_after=timedelta(hours=stalled_hours))
    click.echo(f"{p.completed}/{p.total} assignments completed")
    click.echo("\nby arm:")
    click.echo(_indent(p.by_arm.to_string(index=False)))
    click.echo("\nby reader:")
    click.echo(_indent(p.by_reader.to_string(index=False)))
    if len(p.by_site):
        click.echo("\nby site (of the case, of the reader):")
        click.echo(_indent(p.by_site.to_string(index=False)))
    if len(p.schedule):
        click.echo("\nreading sessions (washout by the server clock, UTC):")
        click.echo(_indent(p.schedule_display.to_string(index=False)))
    if len(p.durations):
        stats = p.durations.groupby("arm")["duration_s"].describe()[["count", "mean", "50%", "max"]]
        click.echo("\ntime per case (s):")
        click.echo(_indent(stats.round(1).to_string()))
    if len(p.stalled):
        click.echo("\nstalled readers:")
        click.echo(_indent(p.stalled.to_string(index=False)))


@main.group()
def assignment() -> None:
    """Corrections to single assignments.

    \b
    Example:
      readerstudy assignment reset pilot att2 7 --reason "reader reported a browser crash before typing"
    """


@assignment.command("reset")
@click.argument("study_id")
@click.argument("reader_key")
@click.argument("position", type=int)
@click.option("--reason", required=True, help="Why; recorded with the original data in the audit log.")
@db_option
def assignment_reset(db: Database, study_id: str, reader_key: str, position: int, reason: str) -> None:
    """Send a reader's case (by worklist position) back to the start; the original stays in the event log.

    \b
    Example:
      readerstudy assignment reset pilot res1 3 --reason "opened the wrong patient's prior in PACS"
    """
    from study_app.services.interventions import reset_assignment

    assignment_id = reset_assignment(db, SYSTEM, study_id, reader_key, position, reason=reason)
    click.echo(f"reset assignment {assignment_id} (case {position} of {reader_key}); the original is in the event log")


# --- readers --------------------------------------------------------------------------------------


@main.group()
def readers() -> None:
    """Readers and their personal links.

    \b
    Example:
      readerstudy readers invite demo --reader att1
    """


@readers.command("invite")
@click.argument("study_id")
@click.option("--reader", "reader_keys", multiple=True, help="Reader id (repeatable; default: every reader).")
@click.option("--base-url", default=f"http://127.0.0.1:{DEFAULT_PORT}", show_default=True,
              help="Where the app is reached.")
@db_option
def readers_invite(db: Database, study_id: str, reader_keys: tuple[str, ...], base_url: str) -> None:
    """Issue a personal link per reader (shown once; earlier links of theirs stop working).

    \b
    Example:
      readerstudy readers invite pilot --reader res1 --base-url https://study.example.org
    """
    from study_app.services.invites import issue_invites

    for invite in issue_invites(db, SYSTEM, study_id, list(reader_keys) or None):
        click.echo(f"{invite.reader_key}\t{invite.role}\t{invite.link(base_url)}")


@readers.command("add")
@click.argument("study_id")
@click.option("--reader", "reader_key", required=True, help="Pseudonymous reader id.")
@click.option("--role", required=True, help="A role of the study's design.")
@click.option("--label", default="", help="Display label.")
@click.option("--site", default="", help="The reader's site (a multi-site study; required with [sites]).")
@db_option
def readers_add(db: Database, study_id: str, reader_key: str, role: str, label: str, site: str) -> None:
    """Add a reader to a study before launch (the allocation is generated again from the seed).

    \b
    Example:
      readerstudy readers add pilot --reader att5 --role attending
      readerstudy readers add two --reader att5 --role attending --site site_b
    """
    from study_app.services.readers import add_reader

    summary = add_reader(db, SYSTEM, study_id, reader_key, role, label, site)
    click.echo(f"added {reader_key}: now {summary.n_readers} readers, {summary.n_assignments} assignments")


@readers.command("import")
@click.argument("study_id")
@click.argument("csv_path", type=click.Path(path_type=Path))
@db_option
def readers_import(db: Database, study_id: str, csv_path: Path) -> None:
    """Add the readers of a CSV (reader_id, role, label, name, email) to a study before launch, all or nothing.

    \b
    Example:
      readerstudy readers import pilot more_readers.csv
    """
    from study_app.services.readers import import_readers

    summary = import_readers(db, SYSTEM, study_id, csv_path)
    click.echo(f"now {summary.n_readers} readers, {summary.n_assignments} assignments")


@readers.command("revoke")
@click.argument("study_id")
@click.argument("reader_key")
@db_option
def readers_revoke(db: Database, study_id: str, reader_key: str) -> None:
    """Cut a reader's links and signed-in sessions (their data stays); `readers invite` issues a new link.

    \b
    Example:
      readerstudy readers revoke pilot res2
    """
    from study_app.services.readers import revoke_reader

    n = revoke_reader(db, SYSTEM, study_id, reader_key)
    click.echo(f"revoked {n} link(s) and session(s) of {reader_key}")


# --- drafts ---------------------------------------------------------------------------------------


@main.group()
def drafts() -> None:
    """Model and reader drafts.

    \b
    Example:
      readerstudy drafts import demo
    """


@drafts.command("import")
@click.argument("study_id")
@db_option
def drafts_import(db: Database, study_id: str) -> None:
    """Store the model outputs recorded in the study's manifest (the replay backend), with provenance.

    \b
    Example:
      readerstudy drafts import pilot
    """
    from study_app.services.drafting import import_recorded_drafts

    summary = import_recorded_drafts(db, SYSTEM, study_id)
    click.echo(f"{summary.succeeded} draft(s) stored, {summary.skipped} already present, {summary.failed} failed")


# Exit status of `drafts generate` / `drafts regenerate` when drafts readers would see have problems no one accepted.
DRAFT_PROBLEMS_EXIT = 9


def drafting_options(function):
    """The backend, model, sampling and timeout options shared by `drafts generate` and `drafts regenerate`."""

    @click.option("--backend", "backend_name", default="vllm-server", show_default=True, type=BackendChoice())
    @vllm_server_options
    @click.option("--model-id", default=None, help="Hugging Face id recorded as provenance (default: CheXOne).")
    @click.option("--revision", default=None, help="Model revision (commit) the server runs; recorded as provenance.")
    @click.option("--mode", type=click.Choice(["reasoning", "instruction"]), default="reasoning", show_default=True)
    @click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True)
    @click.option("--max-tokens", type=click.IntRange(16, 32768), default=1024, show_default=True)
    @click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True)
    @click.option("--connect-timeout", type=click.FloatRange(0.5, 7200), default=30.0, show_default=True,
                  metavar="SECONDS", help="How long to wait for the server to be reachable and healthy before "
                  "stopping with one error (raise it for a server still loading its weights).")
    @click.option("--first-response-timeout", type=click.FloatRange(1, 7200), default=600.0, show_default=True,
                  metavar="SECONDS", help="How long one request waits for the server's answer.")
    @click.option("--api-key-env", default="READERSTUDY_VLLM_API_KEY", show_default=True, metavar="VAR",
                  help="Environment variable holding the server's API key (vllm serve --api-key), sent as the "
                       "bearer token; the job records the variable's name, never the key.")
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


def _job_parameters(options: dict, regenerate: dict | None = None) -> dict:
    """A drafting job's parameters from the shared drafting options."""
    return {"backend": options["backend_name"], "urls": list(options["urls"]), "served_model_name": options["served_name"],
            "model_id": options["model_id"], "model_revision": options["revision"], "mode": options["mode"],
            "max_tokens": options["max_tokens"], "temperature": options["temperature"],
            "concurrency": options["concurrency"], "ready_timeout_s": options["connect_timeout"],
            "first_response_timeout_s": options["first_response_timeout"], "api_key_env": options["api_key_env"],
            "regenerate": regenerate}


def _run_drafting_job(db: Database, study_id: str, parameters: dict) -> None:
    """Check the server, queue the job and run it here in the foreground; report what was stored, what failed,
    and which drafts readers would see have problems (exit 1 on a failure, 9 on a problem)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from model_runtime import unpinned_revision_warning
    from study_app.services.draft_review import draft_issues
    from study_app.services.drafting import check_backend, drafts_status
    from study_app.services.drafting_jobs import backend_of, enqueue_drafting, run_job, worker_name

    if parameters["backend"] == "vllm-server":
        click.echo(f"waiting up to {parameters['ready_timeout_s']:g} s for the vLLM server at "
                   f"{', '.join(parameters['urls'])} ...", err=True)
    check_backend(backend_of(parameters))  # a wrong URL or model: one line, nothing queued
    worker = worker_name()
    job = enqueue_drafting(db, SYSTEM, study_id, parameters, claim_as=worker)
    if warning := unpinned_revision_warning(job.parameters["model_revision"]):
        click.echo(f"warning: {warning} (--revision)", err=True)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(f"drafting (job {job.job_id})", total=None)
        finished = run_job(db, job, worker, progress=lambda done, total: bar.update(task, completed=done, total=total))
    open_issues = [i for i in draft_issues(db, SYSTEM, study_id) if not i.accepted]
    counts: dict[str, int] = {}
    for issue in open_issues:
        for code in issue.problems:
            counts[code] = counts.get(code, 0) + 1
    problems = (f"; {len(open_issues)} with problems (" + ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
                + ")") if open_issues else ""
    click.echo(f"{finished.succeeded} generated, {finished.skipped} already stored, {finished.failed} failed"
               f"{problems} (job {finished.job_id})")
    for row in drafts_status(db, SYSTEM, study_id):
        if not row.stored and row.failures:
            click.echo(f"failed: {row.case_key} ({row.task}{' ' + row.item_key if row.item_key else ''}): "
                       f"{(row.last_error or '')[:200]}", err=True)
    for issue in open_issues:
        click.echo(f"problem: {issue.describe()}", err=True)
    if open_issues:
        click.echo(f"launch refuses these drafts: regenerate them (`readerstudy drafts regenerate {study_id} --problems "
                   f"--max-tokens {max(2 * int(parameters['max_tokens']), 2048)}`) or accept a case's with a reason "
                   f"(`readerstudy drafts accept {study_id} --case CASE --reason ...`)", err=True)
    if finished.failed:
        sys.exit(1)
    if open_issues:
        sys.exit(DRAFT_PROBLEMS_EXIT)


@drafts.command("generate")
@click.argument("study_id")
@drafting_options
@db_option
def drafts_generate(db: Database, study_id: str, **options) -> None:
    """Generate the study's missing model drafts; rerun it after a failure or a kill, it skips what is stored.

    The run is a drafting job in the database, run here in the foreground: if this process dies, a worker
    (`readerstudy worker`, or a running `readerstudy serve`) takes it over once its lease runs out. Drafts
    readers would see that are cut by the token limit, not parsed, empty or duplicated are listed as problems
    after the run; the command then exits 9 (1 when a request failed).

    \b
    Example:
      readerstudy drafts generate pilot --backend vllm-server --url http://gpu-host:8000 \\
          --model chexone --revision <commit> --concurrency 64 --connect-timeout 120
    """
    _run_drafting_job(db, study_id, _job_parameters(options))


@drafts.command("regenerate")
@click.argument("study_id")
@click.option("--case", "case_keys", multiple=True, metavar="CASE", help="A case whose model drafts to make again "
              "(repeatable).")
@click.option("--problems", "problems_only", is_flag=True,
              help="Every draft that is cut, not parsed, empty or duplicated (and not accepted).")
@drafting_options
@db_option
def drafts_regenerate(db: Database, study_id: str, case_keys: tuple[str, ...], problems_only: bool, **options) -> None:
    """Make some cases' model drafts again with other settings (a larger --max-tokens for drafts cut by the token
    limit); each new draft replaces the one readers would have seen, which is kept with its provenance. Before launch;
    a drafting job like `drafts generate`.

    \b
    Example:
      readerstudy drafts regenerate pilot --problems --max-tokens 2048 --url http://gpu-host:8000 --revision <commit>
      readerstudy drafts regenerate pilot --case c017 --case c042 --max-tokens 4096
    """
    if not case_keys and not problems_only:
        raise click.UsageError("name the cases to regenerate (--case) or ask for every draft with a problem (--problems)")
    _run_drafting_job(db, study_id, _job_parameters(options, {"case_keys": list(case_keys),
                                                              "problems_only": problems_only}))


@drafts.command("accept")
@click.argument("study_id")
@click.option("--case", "case_keys", multiple=True, required=True, metavar="CASE",
              help="A case whose drafts with problems may be shown as they are (repeatable).")
@click.option("--reason", required=True, help="Why (recorded with the decision and in the audit log).")
@db_option
def drafts_accept(db: Database, study_id: str, case_keys: tuple[str, ...], reason: str) -> None:
    """Record that a case's draft with a problem (cut, not parsed, empty, duplicated) may be shown to readers as it
    is; launch refuses such drafts otherwise. The decision covers the problems the draft has now.

    \b
    Example:
      readerstudy drafts accept pilot --case c017 --reason "cut after the last finding; nothing is missing"
    """
    from study_app.services.draft_review import accept_draft_problems

    for issue in accept_draft_problems(db, SYSTEM, study_id, list(case_keys), reason=reason):
        click.echo(f"accepted: {issue.describe()}")


@drafts.command("jobs")
@click.argument("study_id")
@db_option
def drafts_jobs(db: Database, study_id: str) -> None:
    """The study's drafting jobs, newest first: queued, running (on which worker), finished or failed.

    \b
    Example:
      readerstudy drafts jobs pilot
    """
    from study_app.services.drafting_jobs import study_jobs

    jobs = study_jobs(db, SYSTEM, study_id)
    if not jobs:
        click.echo("no drafting job yet")
    for job in jobs:
        click.echo(f"{job.job_id}\t{job.status}\t{job.created_at:%Y-%m-%d %H:%M}\t{job.describe()}")


@drafts.command("cancel")
@click.argument("job_id", type=int)
@db_option
def drafts_cancel(db: Database, job_id: int) -> None:
    """Cancel a queued or running drafting job (a worker running it stops at its next heartbeat).

    \b
    Example:
      readerstudy drafts cancel 3
    """
    from study_app.services.drafting_jobs import cancel_job

    click.echo(cancel_job(db, SYSTEM, job_id).describe())


@main.command("worker")
@click.option("--once", is_flag=True, help="Run at most one job, then stop (default: keep polling).")
@click.option("--poll-s", type=click.FloatRange(0.1, 600), default=2.0, show_default=True,
              help="Seconds between looks for a queued job.")
@click.option("--lease-s", type=click.FloatRange(2, 3600), default=60.0, show_default=True,
              help="How long a job stays this worker's without a heartbeat (another worker takes it over after).")
@db_option
def worker_command(db: Database, once: bool, poll_s: float, lease_s: float) -> None:
    """Run drafting jobs from the database: claim one (or take over one whose worker died), run it, repeat.

    Several workers (and `serve` replicas, which run one each) may poll one database: one runs each job.

    \b
    Example:
      readerstudy worker --db postgresql://study@db/readerstudy
    """
    from study_app.services.drafting_jobs import work, worker_name

    name = worker_name()
    click.echo(f"worker {name} polling every {poll_s:g} s (Ctrl-C stops)")
    try:
        ran = work(db, worker=name, once=once, poll_s=poll_s, lease_s=lease_s, heartbeat_s=max(0.5, lease_s / 12),
                   log=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        ran = None
    if ran is not None:
        click.echo(f"ran {ran} job(s)")


@drafts.command("status")
@click.argument("study_id")
@db_option
def drafts_status_command(db: Database, study_id: str) -> None:
    """Which drafts the study needs, which are stored with their provenance, and which failed; drafts with
    problems (cut, not parsed, empty, duplicated) first.

    \b
    Example:
      readerstudy drafts status pilot
    """
    from study_app.services.drafting import drafts_status, unfinished_drafting_run

    rows = drafts_status(db, SYSTEM, study_id)
    for row in rows:
        what = f"{row.case_key} {row.task}{' ' + row.item_key if row.item_key else ''}"
        if row.problems:
            state = "ACCEPTED" if row.accepted else "PROBLEM"
            click.echo(f"{what}\t{state} {row.problems}\t{row.problem_details}"
                       + (f"\taccepted by {row.accepted}" if row.accepted else ""))
        elif row.stored:
            click.echo(f"{what}\tstored\t{row.model_id}@{row.model_revision or '-'}\t{row.backend}\t{row.mode}"
                       f"\t{row.parse_status}\t{row.finish_reason or '-'}")
        else:
            click.echo(f"{what}\tmissing\t{row.failures} failure(s)\t{(row.last_error or '')[:80]}")
    stored = sum(r.stored for r in rows)
    problems = sum(1 for r in rows if r.problems and not r.accepted)
    click.echo(f"{stored}/{len(rows)} drafts stored" + (f", {problems} with problems launch refuses" if problems else ""))
    unfinished = unfinished_drafting_run(db, SYSTEM, study_id)
    if unfinished is not None:
        click.echo(f"note: {unfinished.describe()}", err=True)


# --- model ----------------------------------------------------------------------------------------


@main.group()
def model() -> None:
    """Serving the drafting model.

    \b
    Example:
      readerstudy model serve-command --port 8000
    """


@model.command("serve-command")
@click.option("--study", "study_id", default=None,
              help="Serve the model and revision this study's drafts record (its stored drafts, else its latest "
                   "drafting run).")
@click.option("--revision", default=None,
              help="Model revision (40-hex commit) to serve (default: the study's with --study, else the main "
                   "branch, unpinned: a warning says so).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the server binds; anything but loopback (0.0.0.0) needs the API key.")
@click.option("--api-key-env", default="READERSTUDY_VLLM_API_KEY", show_default=True, metavar="VAR",
              help="Environment variable holding the server's API key; `drafts generate` sends the same variable.")
@click.option("--no-api-key", is_flag=True, help="Serve without an API key (only on 127.0.0.1).")
@click.option("--served-model-name", default=None)
@click.option("--db", "db_url", envvar=DEFAULT_DB_ENV, default=None, metavar="URL",
              help=f"With --study: SQLAlchemy URL or SQLite file path (default: ${DEFAULT_DB_ENV}, else "
                   "./var/readerstudy.sqlite).")
def model_serve_command(study_id: str | None, revision: str | None, port: int, host: str, api_key_env: str,
                        no_api_key: bool, served_model_name: str | None, db_url: str | None) -> None:
    """Print the recommended `vllm serve` command line for CheXOne (see docs/model-serving.md), with an API key.

    \b
    Example:
      readerstudy model serve-command --study pilot --host 0.0.0.0
      READERSTUDY_VLLM_API_KEY=$(openssl rand -hex 16) readerstudy model serve-command --revision <commit>
    """
    from model_runtime import DEFAULT_MODEL_ID, DEFAULT_MODEL_REVISION, is_pinned_revision, serve_command

    model_id = DEFAULT_MODEL_ID
    recorded = None
    if study_id is not None:
        from study_app.services.drafting import study_model_revision

        db = open_database(db_url, create=False)
        try:
            recorded = study_model_revision(db, SYSTEM, study_id)
        finally:
            db.dispose()
        model_id = recorded.model_id
        if revision is not None and revision != recorded.revision:
            raise click.UsageError(f"study '{study_id}' records revision {recorded.revision}, not {revision}; "
                                   "leave --revision out to serve what the study records")
        revision = recorded.revision
        served_model_name = served_model_name or recorded.served_model_name
    revision = revision or DEFAULT_MODEL_REVISION
    try:
        line = serve_command(model_id, revision=revision, port=port, host=host, served_model_name=served_model_name,
                             api_key_env=None if no_api_key else api_key_env)
    except ValueError as error:
        raise SettingError(str(error)) from None
    if recorded is not None:
        click.echo(f"# {model_id} at revision {revision}, as study '{study_id}' records it ({recorded.source})",
                   err=True)
    click.echo(line)
    if not no_api_key:
        click.echo(f"# the server and `readerstudy drafts generate` both read the key from ${api_key_env}; set it "
                   "to the same secret on both machines", err=True)
    if not is_pinned_revision(revision):
        where = f"study '{study_id}' records" if recorded is not None else "this command serves"
        click.echo("\n".join([
            "",
            "WARNING " + "=" * 70,
            f"WARNING: {where} revision '{revision}', a branch or tag, not a commit.",
            "WARNING: a branch moves: the weights served now may not be those that wrote the drafts, and the",
            "WARNING: drafts cannot be traced to one set of weights. Serve and record the 40-hex commit",
            "WARNING: (huggingface.co/StanfordAIMI/CheXOne, 'Files and versions', the commit hash).",
            "WARNING " + "=" * 70,
        ]), err=True)


@model.command("check-determinism")
@click.argument("study_id")
@vllm_server_options
@click.option("--sample", type=click.IntRange(1, 10_000), default=32, show_default=True,
              help="How many of the study's requests to compare.")
@click.option("--high", type=click.IntRange(2, 1024), default=64, show_default=True, help="The high concurrency.")
@db_option
def model_check_determinism(db: Database, study_id: str, urls: tuple[str, ...], served_name: str | None, sample: int,
                            high: int) -> None:
    """Generate a sample of the study's drafts at concurrency 1 and at --high and compare them; exit 1 if any differ.

    \b
    Example:
      readerstudy model check-determinism pilot --url http://gpu-host:8000 --sample 64
    """
    from study_app.services.drafting import check_determinism, drafting_backend

    if len(urls) > 1:
        raise click.UsageError("check-determinism compares one server with itself: give one --url")
    backend = drafting_backend("vllm-server", urls=list(urls), served_model_name=served_name, concurrency=high)
    report = check_determinism(db, SYSTEM, study_id, backend, sample=sample, high=high)
    click.echo(f"{report.n_requests} requests at concurrency {report.concurrency[0]} and {report.concurrency[1]}: "
               + ("identical outputs" if report.identical else f"{len(report.mismatched_keys)} differ"))
    for key in report.mismatched_keys:
        click.echo(f"differs: {key}", err=True)
    for key in report.failed_keys:
        click.echo(f"failed: {key}", err=True)
    if not report.identical:
        click.echo("see docs/model-serving.md, 'When outputs differ'", err=True)
        sys.exit(1)


# --- export ---------------------------------------------------------------------------------------


@main.command("export")
@click.argument("study_id")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder to write into.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "sqlite"]), default="csv", show_default=True,
              help="sqlite: one study.sqlite with keys, indexes and full-text search, for Datasette and the analysis.")
@db_option
def export(db: Database, study_id: str, out_dir: Path, fmt: str) -> None:
    """Write the tidy tables of the data dictionary and export_meta.json.

    \b
    Example:
      readerstudy export demo --out exports/demo --format parquet
      readerstudy export demo --out exports/demo-db --format sqlite   # then: datasette exports/demo-db/study.sqlite
    """
    from study_app.services.export import write_export

    out = write_export(db, SYSTEM, study_id, out_dir, fmt=fmt)
    meta = json.loads((out / "export_meta.json").read_text())
    counts = ", ".join(f"{n} {t}" for t, n in meta["tables"].items())
    click.echo(f"exported '{study_id}' to {out}: {counts}")


@main.command("backup")
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path), help="The copy to write.")
@db_option
def backup(db: Database, out_file: Path) -> None:
    """Take a consistent copy of a live SQLite database while readers work (SQLite's online backup API).

    \b
    Example:
      readerstudy backup --db var/readerstudy.sqlite --out backups/study-2026-11-23.sqlite
    """
    from study_app.services.backup import backup_database

    result = backup_database(db, SYSTEM, out_file)
    click.echo(f"backed up to {result.path} ({result.size_bytes / 1e6:.1f} MB, integrity {result.integrity})")


@main.command("analyze")
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for report.html, results.json and text_metrics.csv.")
@click.option("--study", "study_id", default=None, help="With a database SOURCE: the study to analyse.")
@click.option("--seed", type=int, default=None, help="Bootstrap seed (default: the study's seed, so figures reproduce).")
@click.option("--n-boot", type=click.IntRange(100, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples.")
@click.option("--in-progress", is_flag=True, help="Analyse a study still running (arms without reads are left out).")
def analyze(source: str, out_dir: Path, study_id: str | None, seed: int | None, n_boot: int, in_progress: bool) -> None:
    """Run the reader-study analysis on an export folder or straight from a database; write report.html, results.json and text_metrics.csv.

    \b
    Example:
      readerstudy analyze exports/pilot --out reports/pilot
      readerstudy analyze sqlite:///var/readerstudy.sqlite --study pilot --out reports/pilot
    """
    from analysis import AnalysisInputError, load_tables, run_analysis, write_report

    if Path(source).is_dir():
        try:
            result = run_analysis(load_tables(source), seed=seed, n_boot=n_boot, require_all_arms=not in_progress)
        except AnalysisInputError as error:
            _fail(f"cannot analyse {source}: {error}", 5)
    else:
        if not study_id:
            raise click.UsageError("SOURCE is not an export folder; name the study with --study to read a database")
        from study_app.services.analysis import analyse_study

        db = open_database(source, create=False)
        try:
            result = analyse_study(db, SYSTEM, study_id, seed=seed, n_boot=n_boot, in_progress=in_progress)
        finally:
            db.dispose()
    report = write_report(result, out_dir)
    primary = next((e for e in result.results["endpoints"] if e["family"] == "primary"), None)
    if primary is not None:
        from analysis.report import format_p

        plan = result.results["plan"]
        if primary.get("error"):
            click.echo(f"primary endpoint {primary['name']}: no result ({primary['error']})")
        else:
            click.echo(f"primary endpoint {primary['name']} ({'pre-specified' if plan['source'] == 'design' else 'shipped default plan'}): "
                       f"{primary['estimate']:.3f} (95% CI {primary['ci_low']:.3f} to {primary['ci_high']:.3f}), "
                       f"p {format_p(primary['p_val'])}")
    click.echo(f"wrote {report}, {Path(out_dir) / 'results.json'} and {Path(out_dir) / 'text_metrics.csv'}")


@main.group()
def audit() -> None:
    """Checks a study's evidence can be trusted.

    \b
    Example:
      readerstudy audit blinding demo
    """


@audit.command("blinding")
@click.argument("study_id")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Family-wise error rate over all features (Holm).")
@click.option("--permutations", type=click.IntRange(100, 1_000_000), default=5000, show_default=True,
              help="Monte-Carlo permutations per feature when exact enumeration is larger.")
@click.option("--no-pages", is_flag=True, help="Skip rendering the case pages (faster; worklists, ids and routes only).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the whole report as JSON to this file.")
@db_option
def audit_blinding_command(db: Database, study_id: str, alpha: float, permutations: int, no_pages: bool,
                           json_out: Path | None) -> None:
    """Test everything each reader is sent about each blinded case for association with the draft's source.

    Works on a snapshot of the database (the study is not touched), through the same pages, routes and
    services a browser uses. Exits 0 when no presentation feature predicts the source, 8 when one does.

    \b
    Example:
      readerstudy audit blinding demo --json var/blinding.json
    """
    from study_app.web.blinding_audit import audit_blinding

    report = audit_blinding(db, SYSTEM, study_id, alpha=alpha, permutations=permutations, pages=not no_pages)
    click.echo(f"blinding audit of {study_id}: {report.n_cases} blinded case(s) of {report.n_readers} reader(s), "
               f"{report.n_held} held for a later round; {len(report.verdicts)} features tested, "
               f"Holm family-wise alpha {alpha}")
    if report.verdicts:
        table = report.table()
        table["p"] = table["p"].map(lambda p: f"{p:.3g}")
        table["p_holm"] = table["p_holm"].map(lambda p: f"{p:.3g}")
        click.echo(_indent(table.to_string(index=False)))
    if len(report.content):
        click.echo("\ndraft content by true label (the study's subject: described, not a leak):")
        click.echo(_indent(report.content.to_string(index=False)))
    click.echo("\nwhat the audit cannot see:")
    for line in report.cannot_see:
        click.echo(f"  - {line}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    if report.leaks:
        for verdict in report.leaks:
            click.echo(f"LEAK: {verdict.group} {verdict.feature} ({verdict.kind}) predicts the source: "
                       f"p = {verdict.p_val:.3g}, Holm {verdict.p_holm:.3g}; values {verdict.values_by_label}", err=True)
        sys.exit(8)
    click.echo("\nno presentation feature predicts the draft source.")

# --- planning --------------------------------------------------------------------------------------


@main.group("plan")
def plan_group() -> None:
    """Plan a study before it runs: power and sample size of the pre-specified primary endpoint.

    \b
    Example:
      readerstudy plan power --design chexone
    """


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected whole numbers separated by commas, got {text!r}", param_hint=option)
    if not values or min(values) < 2:
        raise click.BadParameter("expected whole numbers of at least 2", param_hint=option)
    return values


@plan_group.command("power")
@click.option("--design", "design_path", required=True, type=click.Path(path_type=Path),
              help="Design file (TOML) with an [analysis] plan, or 'chexone' for the shipped design.")
@click.option("--pilot", "pilot_dir", default=None, type=click.Path(path_type=Path),
              help="A pilot export folder: its variance components replace the design's assumptions.")
@click.option("--readers", default=None, help="Readers per role to consider, e.g. 4,6,8,12 (default: the plan's).")
@click.option("--cases", default=None, help="Cases to consider, e.g. 40,80,160 (default: the plan's).")
@click.option("--effect", type=float, default=None,
              help="Effect to detect: a time ratio (0.8 = 20% faster) or a difference (default: the plan's).")
@click.option("--simulate", "n_sim", type=click.IntRange(0, 100_000), default=0, show_default=True,
              help="Also simulate this many studies per grid cell through the analysis (OR and mixed model).")
@click.option("--seed", type=int, default=None, help="Seed of the simulations (default: the plan's).")
@click.option("--allocation", type=click.Choice(["chexone", "factorial"]), default="chexone", show_default=True,
              help="chexone: each case read once per condition by different readers; factorial: every reader "
                   "reads every case in both conditions.")
@click.option("--out", "out_dir", default=None, type=click.Path(path_type=Path),
              help="Folder for power.csv and power.html (a plotly plot, works offline).")
def plan_power(design_path: Path, pilot_dir: Path | None, readers: str | None, cases: str | None,
               effect: float | None, n_sim: int, seed: int | None, allocation: str, out_dir: Path | None) -> None:
    """Power of the primary endpoint over a grid of readers x cases (Obuchowski-Rockette/Hillis; optional simulation).

    \b
    Example:
      readerstudy plan power --design chexone --readers 6,8,12 --cases 80,160 --out plans/power
      readerstudy plan power --design design.toml --pilot exports/pilot --simulate 200
    """
    from analysis import load_tables
    from analysis.plan import default_plan
    from analysis.power import power_figure, power_grid
    from analysis.tables import AnalysisInputError
    from study_app.designs import load_design, shipped_design_path

    if not design_path.exists() and "/" not in str(design_path) and not design_path.suffix:
        design_path = shipped_design_path(str(design_path))
    design = load_design(design_path)
    plan = design.analysis_plan or default_plan()
    try:
        pilot = load_tables(pilot_dir) if pilot_dir is not None else None
        grid = power_grid(plan, pilot=pilot, readers=_int_list(readers, "--readers"),
                          cases=_int_list(cases, "--cases"), effect=effect, n_sim=n_sim, seed=seed,
                          allocation=allocation)
    except (AnalysisInputError, ValueError) as error:
        _fail(f"cannot plan power: {error}", 5)
    a = grid.attrs
    what = f"time ratio {a['effect']:g}" if plan.primary.endpoint == "time_ratio" else f"difference {a['effect']:g}"
    click.echo(f"power of {plan.primary.name} ({what}, alpha {plan.alpha:g}, random readers and cases, "
               f"{a['source']} variance components{'' if plan.source == 'design' else ', shipped default plan'}):")
    shown = grid.copy()
    shown["cases_per_reader_condition"] = shown["cases_per_reader_condition"].round(1)
    for col in [c for c in shown.columns if c.startswith("power") or c in ("se", "ddf", "mc_se")]:
        shown[col] = shown[col].round(3)
    click.echo(shown.to_string(index=False))
    enough = grid.loc[grid["power"] >= 0.8]
    if enough.empty:
        click.echo("no grid cell reaches 80% power: add readers (reader x condition variance does not shrink with cases)")
    else:
        best = enough.sort_values(["n_readers", "n_cases"]).iloc[0]
        click.echo(f"fewest readers reaching 80%: {int(best['n_readers'])} readers x {int(best['n_cases'])} cases "
                   f"(power {best['power']:.2f})")
    if out_dir is not None:
        import plotly.io as pio

        out_dir.mkdir(parents=True, exist_ok=True)
        grid.to_csv(out_dir / "power.csv", index=False)
        pio.write_html(power_figure(grid), out_dir / "power.html", include_plotlyjs=True, full_html=True)
        click.echo(f"wrote {out_dir / 'power.csv'} and {out_dir / 'power.html'}")

def security_options(function):
    """--public-origin and --trusted-proxy, shared by the commands that start the web app."""

    @click.option("--public-origin", "public_origins", multiple=True, metavar="URL",
                  help="The address readers' browsers use, e.g. https://study.example.org (repeatable; default: "
                       "$READERSTUDY_PUBLIC_ORIGIN, else the bound address). Only pages from it may sign in, "
                       "submit or open the app's websocket.")
    @click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDR",
                  help="A reverse proxy's address or network whose X-Forwarded-For/-Proto are believed (repeatable; "
                       "default: $READERSTUDY_TRUSTED_PROXIES, else none).")
    @functools.wraps(function)
    def wrapper(*args, public_origins: tuple[str, ...], trusted_proxies: tuple[str, ...], **kwargs):
        from study_app.serve import security_settings

        host, port = kwargs.get("host", "127.0.0.1"), kwargs.get("port", DEFAULT_PORT)
        try:
            security_settings(host, port, list(public_origins), list(trusted_proxies))  # refuse bad ones up front
        except ValueError as error:
            raise SettingError(str(error)) from None
        return function(*args, public_origins=list(public_origins), trusted_proxies=list(trusted_proxies), **kwargs)

    return wrapper


@main.command("serve")
@bind_options
@click.option("--image-cache", type=click.Path(path_type=Path), default=Path("var/image-cache"), show_default=True,
              help="Folder for display copies of the images, kept across restarts.")
@click.option("--no-worker", is_flag=True,
              help="Do not run drafting jobs in this process (run `readerstudy worker` elsewhere).")
@security_options
@db_option
def serve_command(db: Database, port: int, host: str, image_cache: Path, no_worker: bool, public_origins: list[str],
                  trusted_proxies: list[str]) -> None:
    """Start the web app (reader pages, coordinator console, sign-in links) with streamlit_config.toml's options.

    \b
    Example:
      readerstudy serve --db var/readerstudy.sqlite --port 8501
      readerstudy serve --port 8501 --public-origin https://study.example.org --trusted-proxy 127.0.0.1
    """
    from study_app.serve import serve

    url = db.url
    db.dispose()
    click.echo(f"serving {url} on http://{host}:{port} (Ctrl-C stops)")
    serve(url, host=host, port=port, image_cache=image_cache, public_origins=public_origins,
          trusted_proxies=trusted_proxies, worker=not no_worker)


# --- demo -----------------------------------------------------------------------------------------


@main.command("demo")
@click.option("--no-serve", is_flag=True, help="Build the demo study and print the links, start nothing.")
@click.option("--design", "design_name", default="chexone", show_default=True,
              help="Shipped design of the demo study (e.g. crossover_washout: an AB/BA crossover with a 28-day "
                   "washout; draft_errors: error annotation of model and resident drafts); its study is "
                   "'demo-<design>' unless it is chexone ('demo').")
@bind_options
@click.option("--cohort-dir", type=click.Path(path_type=Path), default=Path("var/demo-cohort"), show_default=True)
@security_options
@db_option(create=True)
def demo(db: Database, no_serve: bool, design_name: str, port: int, host: str, cohort_dir: Path,
         public_origins: list[str], trusted_proxies: list[str]) -> None:
    """Build the demo study (generated images and texts, no patient data) and print the readers' links.

    \b
    Example:
      readerstudy demo --no-serve --port 8501
      readerstudy demo --design crossover_washout --no-serve   # an AB/BA crossover, 28-day washout
      readerstudy demo --design two_site --no-serve   # readers and cases at two sites, crossed
      readerstudy demo --design draft_errors --no-serve        # attendings annotate the drafts' errors
    """
    from study_app.demo import build_demo_study

    result = build_demo_study(db, cohort_dir=cohort_dir, design=design_name)
    click.echo(result.message)
    base_url = f"http://{host}:{port}"
    click.echo("personal links of the demo readers:")
    for invite in result.invites:
        click.echo(f"  {invite.reader_key:<8} {invite.role:<12} {invite.link(base_url)}")
    click.echo(f"coordinator console: {base_url}/console/signin  user '{result.coordinator}', "
               f"password {result.coordinator_password}")
    if no_serve:
        return
    from study_app.serve import serve

    url = db.url
    db.dispose()
    click.echo(f"serving on {base_url} (Ctrl-C stops)")
    serve(url, host=host, port=port, image_cache=Path("var/image-cache"), public_origins=public_origins,
          trusted_proxies=trusted_proxies)
