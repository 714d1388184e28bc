"""Turns a coordinator's uploaded cohort (a zip of a manifest and its images) into a checked folder on the server.

The archive comes from a browser, so nothing in it is trusted: every member name is checked
before a byte is written (no absolute paths, no ``..``, no links, no devices), sizes and file
counts are bounded, members that inflate far beyond their compressed size are refused, and the
bytes actually written are counted rather than the sizes the archive claims. Extraction goes to
a temporary folder next to the target and is renamed into place at the end, so the target is
either complete or absent.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cohorts.manifest import MANIFEST_EXTENSIONS, validate_manifest
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput, ServiceError, Unavailable
from study_app.services.roster import parse_roster
from study_app.services.creation import create_study
from study_app.services.studies import STUDY_ID, StudySummary

# A chest X-ray cohort of a few hundred DICOMs is well under this; a bigger one belongs on the server.
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_MEMBER_BYTES = 512 * 1024**2
MAX_FILES = 20_000
# DICOM and PNG hardly compress; a member inflating 200-fold is a zip bomb, not an image.
MAX_RATIO = 200
# Small members (a CSV of blank lines) may compress very well without being dangerous.
RATIO_FLOOR_BYTES = 1024**2
CHUNK = 1024**2
# One upload request (the zip as the browser sends it, streamed to disk); a larger cohort is copied to the server.
MAX_UPLOAD_MB = 1024
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024**2
# Design files and reader lists are a few kilobytes; they go through Streamlit's uploader, in memory, bounded
# by server.maxUploadSize (streamlit_config.toml), which must equal this.
MAX_SMALL_UPLOAD_MB = 5
# Room the database and the readers' work keep on the disk: an upload or an extraction that would leave less
# is refused before it starts.
RESERVE_BYTES = 256 * 1024**2
RESERVE_FRACTION = 0.10
STAGING_FOLDER = ".uploads"
MANIFEST_NAMES = tuple(f"manifest{ext}" for ext in MANIFEST_EXTENSIONS)


class UploadRefused(InvalidInput):
    """The archive is unsafe or too large; nothing was extracted."""


class DiskFull(Unavailable):
    """The disk has no room for the upload or its extraction; nothing was kept."""

    exit_code = 7


def reserve_bytes(folder: Path) -> int:
    """Free space an upload must leave on ``folder``'s disk: 256 MB, or a tenth of a small disk."""
    return min(RESERVE_BYTES, int(shutil.disk_usage(folder).total * RESERVE_FRACTION))


def require_free_space(folder: Path, needed: int, *, what: str) -> None:
    """DiskFull unless ``needed`` bytes fit on ``folder``'s disk with the reserve left over."""
    usage = shutil.disk_usage(folder)
    reserve = reserve_bytes(folder)
    if needed + reserve > usage.free:
        raise DiskFull(f"not enough disk space for {what}: it needs {_mb(needed)}, the server has {_mb(usage.free)} "
                       f"free and keeps {_mb(reserve)} for the study database; nothing was written")


def _mb(n: int) -> str:
    return f"{n / 1024**2:.1f} MB"


def _disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


DISK_FILLED = "the server's disk filled up while {what}; nothing was kept. Free some space and try again"


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on an uploaded archive; the defaults suit a cohort of a few hundred studies."""

    max_total_bytes: int = MAX_TOTAL_BYTES
    max_member_bytes: int = MAX_MEMBER_BYTES
    max_files: int = MAX_FILES
    max_ratio: float = MAX_RATIO


def cohorts_root(db: Database) -> Path:
    """Where uploaded cohorts live: ``cohorts/`` next to a SQLite database file, else ``var/cohorts``."""
    prefix = "sqlite:///"
    if db.url.startswith(prefix) and db.url[len(prefix):] not in ("", ":memory:"):
        return Path(db.url[len(prefix):]).resolve().parent / "cohorts"
    return Path("var/cohorts").resolve()


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The safe relative path of a member, None for a folder entry; UploadRefused for anything else."""
    name = info.filename
    if "\\" in name or "\x00" in name:
        raise UploadRefused(f"'{name}': backslashes and NUL bytes are not allowed in member names")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UploadRefused(f"'{name}': absolute paths are not allowed in the archive")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise UploadRefused(f"'{name}': '..' is not allowed in the archive (it would write outside the cohort folder)")
    # Unix zips keep the file type in the high bits; zips from elsewhere (and Python's writestr) leave it 0.
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise UploadRefused(f"'{name}': symbolic links are not allowed in the archive")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UploadRefused(f"'{name}': only plain files and folders are allowed in the archive")
    if info.flag_bits & 0x1:
        raise UploadRefused(f"'{name}': encrypted members are not supported")
    if info.is_dir():
        return None
    if not parts:
        raise UploadRefused(f"'{name}': empty member name")
    return PurePosixPath(*parts)


def _check_members(archive: zipfile.ZipFile, limits: UploadLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every file member with its safe path, after all the checks that need no decompression."""
    members = []
    seen: set[str] = set()
    total = 0
    for info in archive.infolist():
        path = _member_path(info)
        if path is None:
            continue
        key = str(path).lower()  # case-insensitive file systems would merge these
        if key in seen:
            raise UploadRefused(f"'{info.filename}': the archive holds this file twice")
        seen.add(key)
        if len(members) + 1 > limits.max_files:
            raise UploadRefused(f"the archive holds more than {limits.max_files} files")
        if info.file_size > limits.max_member_bytes:
            raise UploadRefused(f"'{info.filename}' is larger than {limits.max_member_bytes} bytes once extracted")
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadRefused(f"'{info.filename}' inflates {info.file_size / max(info.compress_size, 1):.0f}-fold: "
                                "refused as a zip bomb")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UploadRefused(f"the archive is larger than {limits.max_total_bytes} bytes once extracted")
        members.append((info, path))
    if not members:
        raise UploadRefused("the archive holds no files")
    return members


def _copy_bounded(source: BinaryIO, target: BinaryIO, *, name: str, declared: int, budget: int) -> int:
    """Copy at most ``declared`` bytes (the size the archive claims), refusing a member that lies about it."""
    written = 0
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return written
        written += len(chunk)
        if written > declared or written > budget:
            raise UploadRefused(f"'{name}' inflates beyond the size the archive declares: refused as a zip bomb")
        target.write(chunk)


def extract_archive(archive: bytes | BinaryIO | str | Path, target: str | Path,
                    *, limits: UploadLimits = UploadLimits()) -> Path:
    """Extract an uploaded zip into ``target``, all or nothing.

    Parameters
    ----------
    archive : bytes, file object or path
        The zip as uploaded.
    target : str or Path
        Folder to create; it must not exist yet.
    limits : UploadLimits
        Bounds on files, sizes and compression ratio.

    Returns
    -------
    Path
        ``target``, holding the archive's files.

    Raises
    ------
    UploadRefused
        Not a zip, an unsafe member (absolute path, ``..``, link, device, encrypted), too many or too
        large files, or a member inflating like a zip bomb. ``target`` is then not created.
    DiskFull
        The files would not fit on the disk (checked before extracting), or the disk filled up meanwhile.
    Conflict
        ``target`` exists already.
    """
    target = Path(target)
    if isinstance(archive, bytes):
        archive = io.BytesIO(archive)
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UploadRefused(f"the upload is not a zip archive ({error})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The empty folder reserves the name: of two uploads for one study, the second stops here.
        target.mkdir()
    except FileExistsError:
        raise Conflict(f"{target} exists already; an upload never overwrites a cohort folder") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-upload-", dir=target.parent))
    try:
        with zipped:
            members = _check_members(zipped, limits)
            # The sizes are the archive's claims; a member that lies is stopped by _copy_bounded below.
            require_free_space(target.parent, sum(info.file_size for info, _ in members), what="unpacking the cohort")
            budget = limits.max_total_bytes
            for info, relpath in members:
                out = staging.joinpath(*relpath.parts)
                # Belt and braces: whatever the name checks missed, nothing may land outside the staging folder.
                if not out.resolve().is_relative_to(staging.resolve()):
                    raise UploadRefused(f"'{info.filename}' would be written outside the cohort folder")
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zipped.open(info) as source, open(out, "xb") as sink:
                        budget -= _copy_bounded(source, sink, name=info.filename, declared=info.file_size,
                                                budget=budget)
                except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as error:
                    raise UploadRefused(f"'{info.filename}' cannot be extracted ({error})") from None
                except FileExistsError:
                    raise UploadRefused(f"'{info.filename}': the archive holds this file twice") from None
                except OSError as error:
                    if _disk_full(error):
                        raise DiskFull(DISK_FILLED.format(what="unpacking the cohort")) from None
                    raise
        os.replace(staging, target)  # replaces our empty reservation in one step
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        target.rmdir()
        raise
    return target


def find_manifest(folder: str | Path) -> Path:
    """The cohort manifest of an extracted folder: ``manifest.csv``/``.jsonl``/``.ndjson`` at its top, or in its
    only sub-folder (a zip made by compressing the cohort folder itself)."""
    folder = Path(folder)
    for base in (folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))):
        found = [base / name for name in MANIFEST_NAMES if (base / name).is_file()]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidInput(f"{base} holds several manifests ({', '.join(p.name for p in found)}); keep one")
    raise InvalidInput(f"no {' or '.join(MANIFEST_NAMES)} at the top of the archive or its one folder")


@dataclass
class CohortCheck:
    """The outcome of checking a new study's inputs: the problems, each with its file, row and column."""

    problems: list[str] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_study_inputs(manifest: str | Path, design_path: str | Path, readers_text: str) -> CohortCheck:
    """Every problem with a manifest (and its images), a design and a readers CSV, without writing anything."""
    from study_app.designs import DesignError, load_design

    check = CohortCheck(manifest=Path(manifest))
    check.problems += [f"manifest {problem}" for problem in validate_manifest(manifest)]
    try:
        roles = load_design(design_path).roles
    except DesignError as error:
        check.problems.append(f"design: {error}")
        roles = None
    try:
        parse_roster(readers_text, roles=roles, source="readers")
    except InvalidInput as error:
        check.problems += str(error).splitlines()
    return check


@dataclass
class NewStudy:
    """What `create_study_from_upload` did: the study, or the problems that stopped it (nothing created)."""

    problems: list[str]
    summary: StudySummary | None = None
    cohort_dir: Path | None = None


def create_study_from_upload(
    db: Database,
    actor: Actor,
    *,
    study_id: str,
    design_path: str | Path | None,
    design_text: str | None = None,
    readers_text: str,
    seed: int | None,
    archive: bytes | BinaryIO | Path | None = None,
    uploaded: bool = False,
    manifest_path: str | Path | None = None,
    name: str | None = None,
    limits: UploadLimits = UploadLimits(),
) -> NewStudy:
    """Create a study from a cohort zip (or a manifest already on the server), a design and a readers CSV.

    Parameters
    ----------
    study_id, seed, name : as in :func:`study_app.services.creation.create_study`.
    design_path : a design file on the server (e.g. the shipped ``chexone``), or None with ``design_text``.
    design_text : an uploaded design (TOML), kept in the study's cohort folder.
    readers_text : the readers CSV as uploaded.
    archive : the cohort zip (manifest and images); extracted under ``cohorts_root(db)/<study_id>``.
    uploaded : instead of ``archive``, the zip streamed for this study id to ``PUT /console/upload/<study id>``
        (see :func:`begin_upload`); removed once the study exists, kept for another try otherwise.
    manifest_path : instead of ``archive``, a manifest already on the server.

    Returns
    -------
    NewStudy
        ``problems`` lists, by file, row and column, everything wrong; when there is any, no study,
        folder or file was created. Otherwise ``summary`` is the new study.
    """
    require_coordinator(actor, "create a study")
    if not STUDY_ID.match(study_id or ""):
        return NewStudy([f"study id '{study_id}' must be lower-case letters, digits, '-' or '_' (at most 32), "
                         "starting with a letter or digit"])
    if uploaded:
        if archive is not None:
            raise InvalidInput("give either an uploaded zip or a cohort zip, not both")
        found = staged_upload(db, actor, study_id)
        if found is None:
            return NewStudy([f"cohort: no zip has been uploaded for '{study_id}' yet; upload it on the "
                             "cohort upload page (/console/upload) first"])
        archive = found.path
    if (archive is None) == (manifest_path is None):
        raise InvalidInput("give either a cohort zip or a manifest on the server, not both or neither")
    if design_path is None and not design_text:
        raise InvalidInput("give a design: a shipped one or an uploaded TOML file")
    cohort_dir = None
    staging = None
    try:
        if archive is not None:
            cohort_dir = cohorts_root(db) / study_id
            if cohort_dir.exists():
                return NewStudy([f"{cohort_dir} exists already (an earlier upload for '{study_id}'); "
                                 "choose another study id"])
            try:
                extract_archive(archive, cohort_dir, limits=limits)
                manifest = find_manifest(cohort_dir)
            except UploadRefused as error:
                return NewStudy([f"upload refused: {error}"])
            except InvalidInput as error:
                shutil.rmtree(cohort_dir, ignore_errors=True)
                return NewStudy([str(error)])
            # Until the study exists the folder is ours to remove on any problem.
            staging = cohort_dir
        else:
            manifest = Path(manifest_path).expanduser().resolve()
        with tempfile.TemporaryDirectory(prefix="readerstudy-new-") as scratch:
            if design_text:
                design_path = Path(scratch) / "design.toml"
                design_path.write_text(design_text, encoding="utf-8")
            check = check_study_inputs(manifest, design_path, readers_text)
            if not check.ok:
                return NewStudy(check.problems)
            keep = cohort_dir if cohort_dir is not None else Path(scratch)
            readers_path = keep / "readers.csv"
            if cohort_dir is not None and readers_path.exists():
                readers_path = keep / "readers.uploaded.csv"
            readers_path.write_text(readers_text, encoding="utf-8")
            summary = create_study(db, actor, study_id=study_id, design_path=design_path, manifest_path=manifest,
                                   readers_path=readers_path, seed=seed, name=name or None)
        staging = None
        if uploaded:
            Path(archive).unlink(missing_ok=True)
        return NewStudy([], summary, cohort_dir)
    except ServiceError as error:
        return NewStudy(str(error).splitlines())
    except OSError as error:
        if _disk_full(error):
            return NewStudy([DISK_FILLED.format(what="creating the study")])
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


# --- the cohort zip, streamed from the browser to disk -----------------------------------------------------


@dataclass(frozen=True)
class StagedUpload:
    """A cohort zip on the server, waiting for the study it was uploaded for to be created."""

    study_id: str
    path: Path
    size_bytes: int
    uploaded_at: float  # seconds since the epoch (the file's modification time)


def _staging_folder(db: Database) -> Path:
    return cohorts_root(db) / STAGING_FOLDER


def staged_upload(db: Database, actor: Actor, study_id: str) -> StagedUpload | None:
    """The zip uploaded for ``study_id`` and not used yet, or None."""
    require_coordinator(actor, "see uploaded cohorts")
    if not STUDY_ID.match(study_id or ""):
        return None
    path = _staging_folder(db) / f"{study_id}.zip"
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return StagedUpload(study_id, path, info.st_size, info.st_mtime)


def staged_uploads(db: Database, actor: Actor) -> list[StagedUpload]:
    """Every uploaded zip whose study is not created yet, newest first."""
    require_coordinator(actor, "see uploaded cohorts")
    folder = _staging_folder(db)
    found = [staged_upload(db, actor, p.stem) for p in folder.glob("*.zip")] if folder.is_dir() else []
    return sorted((f for f in found if f is not None), key=lambda f: -f.uploaded_at)


class UploadWriter:
    """Writes one upload to a partial file as it arrives, never past the size the request declared; the file
    takes its final name only when every declared byte is there."""

    def __init__(self, study_id: str, final: Path, declared: int) -> None:
        self.study_id = study_id
        self.final = final
        self.declared = declared
        self.written = 0
        self.partial = final.with_name(f"{final.name}.{secrets.token_hex(6)}.partial")
        self._file = open(self.partial, "xb")

    def write(self, chunk: bytes) -> None:
        if self.written + len(chunk) > self.declared:
            self.abort()
            raise UploadRefused("the upload is longer than it declared; nothing was kept")
        try:
            self._file.write(chunk)
        except OSError as error:
            self.abort()
            if _disk_full(error):
                raise DiskFull(DISK_FILLED.format(what="receiving the upload")) from None
            raise
        self.written += len(chunk)

    def finish(self) -> StagedUpload:
        if self.written != self.declared:
            self.abort()
            raise UploadRefused(f"the upload stopped after {self.written} of {self.declared} bytes; nothing was kept")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as error:
            self.abort()
            if _disk_full(error):
                raise DiskFull(DISK_FILLED.format(what="receiving the upload")) from None
            raise
        os.replace(self.partial, self.final)  # a second upload for the same study replaces the first whole
        info = self.final.stat()
        return StagedUpload(self.study_id, self.final, info.st_size, info.st_mtime)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.partial.unlink(missing_ok=True)


def begin_upload(db: Database, actor: Actor, study_id: str, declared_bytes: int) -> UploadWriter:
    """Start receiving a cohort zip for the study ``study_id`` (not created yet), after every check that needs
    no byte of it: who, which study, how large, and whether the disk has room.

    Raises
    ------
    PermissionDenied
        Not a coordinator.
    InvalidInput / UploadRefused
        A bad study id, an empty upload, or one above ``MAX_UPLOAD_MB``.
    Conflict
        The study or its cohort folder exists already.
    DiskFull
        The zip would not fit with the reserve left free.
    """
    from study_app.store.models import Study

    require_coordinator(actor, "upload a cohort")
    if not STUDY_ID.match(study_id or ""):
        raise InvalidInput(f"study id '{str(study_id)[:40]}' must be lower-case letters, digits, '-' or '_' "
                           "(at most 32), starting with a letter or digit")
    if declared_bytes <= 0:
        raise UploadRefused("the upload is empty")
    if declared_bytes > MAX_UPLOAD_BYTES:
        raise UploadRefused(f"the zip is larger than {MAX_UPLOAD_MB} MB; copy a cohort that large to the server "
                            "and give its folder instead")
    with db.read() as session:
        if session.get(Study, study_id) is not None:
            raise Conflict(f"study '{study_id}' exists already; an upload never changes a study's cohort")
    if (cohorts_root(db) / study_id).exists():
        raise Conflict(f"{cohorts_root(db) / study_id} exists already; choose another study id")
    folder = _staging_folder(db)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if _disk_full(error):
            raise DiskFull(DISK_FILLED.format(what="receiving the upload")) from None
        raise
    previous = folder / f"{study_id}.zip"
    # The zip it replaces frees its room once the new one is complete, so it does not count as free now.
    require_free_space(folder, declared_bytes, what=f"a {_mb(declared_bytes)} upload")
    return UploadWriter(study_id, previous, declared_bytes)
