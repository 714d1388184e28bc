"""The cohort upload: a safe, bounded, all-or-nothing zip extraction, and study creation that lists problems first."""

from __future__ import annotations

import csv
import io
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from study_app.demo import DEMO_READERS
from study_app.designs import shipped_design_path
from study_app.services.actors import reader_actor
from study_app.services.errors import Conflict, InvalidInput, PermissionDenied
from study_app.services.studies import list_studies
from study_app.services.uploads import (
    UploadLimits,
    UploadRefused,
    cohorts_root,
    create_study_from_upload,
    extract_archive,
    find_manifest,
)
from tests.web_console.conftest import COORDINATOR

READERS_CSV = "reader_id,role,label\n" + "".join(f"{k},{r},{label}\n" for k, r, label in DEMO_READERS)


def zip_of(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, target)
    return buffer.getvalue()


def zip_folder(folder: Path, prefix: str = "") -> bytes:
    return zip_of({prefix + str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                   if p.is_file()})


@pytest.fixture(scope="module")
def cohort_zip(small_cohort) -> bytes:
    """The demo cohort (manifest and images) zipped the way a coordinator would, inside a top folder."""
    return zip_folder(small_cohort, prefix="my-cohort/")


def break_images_of_row(manifest: Path, row: int) -> None:
    """Make the manifest's case row ``row`` (1-based, header is row 0) name an image that is not there."""
    rows = list(csv.reader(io.StringIO(manifest.read_text(encoding="utf-8"))))
    rows[row][rows[0].index("images")] = "images/missing.png"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    manifest.write_text(out.getvalue(), encoding="utf-8")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


# --- extract_archive ---------------------------------------------------------------------------------


def test_good_zip_is_extracted_with_its_folders(tmp_path):
    target = extract_archive(zip_of({"manifest.csv": b"case_id\n", "img/a.png": b"x", "img/sub/b.png": b"y"}),
                             tmp_path / "pilot")
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "img/a.png", "img/sub/b.png", "manifest.csv"]
    assert (target / "img/sub/b.png").read_bytes() == b"y"
    assert leftovers(tmp_path) == ["pilot"]  # the staging folder is gone


@pytest.mark.parametrize(("members", "symlinks", "says"), [
    ({"../evil.txt": b"x"}, None, "'..'"),
    ({"img/../../evil.txt": b"x"}, None, "'..'"),
    ({"/etc/evil.txt": b"x"}, None, "absolute"),
    ({"C:/evil.txt": b"x"}, None, "absolute"),
    ({"img\\..\\evil.txt": b"x"}, None, "backslash"),
    ({"manifest.csv": b"case_id\n"}, {"img/link.png": "/etc/passwd"}, "symbolic link"),
    ({}, None, "no files"),
    ({"a.png": b"1", "A.PNG": b"2"}, None, "twice"),
], ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash", "symlink", "empty", "duplicate"])
def test_unsafe_zip_is_refused_and_nothing_is_written(tmp_path, members, symlinks, says):
    with pytest.raises(UploadRefused, match=says):
        extract_archive(zip_of({"ok.txt": b"fine", **members}, symlinks=symlinks) if members or symlinks
                        else zip_of({}), tmp_path / "cohorts" / "pilot")
    assert leftovers(tmp_path / "cohorts") == []
    assert not (tmp_path / "evil.txt").exists()


def test_not_a_zip_is_refused(tmp_path):
    with pytest.raises(UploadRefused, match="not a zip"):
        extract_archive(b"manifest.csv is not an archive", tmp_path / "pilot")


def test_limits_on_files_and_sizes(tmp_path):
    many = zip_of({f"img/{i}.png": b"x" for i in range(5)})
    with pytest.raises(UploadRefused, match="more than 4 files"):
        extract_archive(many, tmp_path / "a", limits=UploadLimits(max_files=4))
    big = zip_of({"img/big.dcm": bytes(range(256)) * 64})  # 16 KiB, hardly compressible
    with pytest.raises(UploadRefused, match="larger than 1000 bytes once extracted"):
        extract_archive(big, tmp_path / "b", limits=UploadLimits(max_member_bytes=1000))
    with pytest.raises(UploadRefused, match="larger than 20000 bytes"):
        extract_archive(zip_of({"a.dcm": bytes(range(256)) * 50, "b.dcm": bytes(range(256)) * 50}), tmp_path / "c",
                        limits=UploadLimits(max_total_bytes=20000))
    assert leftovers(tmp_path) == []


def test_zip_bomb_is_refused_from_its_ratio(tmp_path):
    bomb = zip_of({"manifest.csv": b"case_id\n", "img/zeros.dcm": bytes(8 * 1024**2)})  # 8 MiB of zeros: ~1000x
    with pytest.raises(UploadRefused, match="zip bomb"):
        extract_archive(bomb, tmp_path / "pilot")
    assert leftovers(tmp_path) == []


def test_member_lying_about_its_size_is_cut_off(tmp_path):
    data = bytearray(zip_of({"img/a.dcm": bytes(range(256)) * 16}))
    # Patch the central directory's uncompressed size (4096) down to 100: extraction must not trust it.
    central = data.rindex(b"PK\x01\x02")
    data[central + 24:central + 28] = (100).to_bytes(4, "little")
    with pytest.raises(UploadRefused):
        extract_archive(bytes(data), tmp_path / "pilot")
    assert leftovers(tmp_path) == []


def test_existing_target_is_never_overwritten(tmp_path):
    (tmp_path / "pilot").mkdir()
    (tmp_path / "pilot" / "keep.txt").write_text("mine")
    with pytest.raises(Conflict):
        extract_archive(zip_of({"keep.txt": b"theirs"}), tmp_path / "pilot")
    assert (tmp_path / "pilot" / "keep.txt").read_text() == "mine"


def test_two_uploads_to_one_folder_at_once_one_wins_whole(tmp_path):
    """Two coordinators uploading a cohort for the same study id at the same instant: one folder, one archive."""
    import threading

    archives = [zip_of({f"images/{i}.png": bytes([n]) * 200_000 for i in range(20)} | {"who.txt": str(n).encode()})
                for n in (1, 2)]
    barrier, outcomes = threading.Barrier(2), []

    def upload(archive):
        barrier.wait()
        try:
            extract_archive(archive, tmp_path / "pilot")
            outcomes.append("ok")
        except Conflict as error:
            outcomes.append(error)

    threads = [threading.Thread(target=upload, args=(a,)) for a in archives]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2 and outcomes.count("ok") == 1
    assert "exists already" in str(next(o for o in outcomes if o != "ok"))
    winner = int((tmp_path / "pilot" / "who.txt").read_text())
    assert {p.read_bytes() for p in (tmp_path / "pilot" / "images").iterdir()} == {bytes([winner]) * 200_000}
    assert leftovers(tmp_path) == ["pilot"]  # no staging folder left behind


def test_find_manifest_at_top_or_in_the_one_folder(tmp_path):
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "manifest.csv").write_text("case_id\n")
    assert find_manifest(tmp_path / "top") == tmp_path / "top" / "manifest.csv"
    (tmp_path / "nested" / "cohort").mkdir(parents=True)
    (tmp_path / "nested" / "cohort" / "manifest.jsonl").write_text("{}\n")
    assert find_manifest(tmp_path / "nested") == tmp_path / "nested" / "cohort" / "manifest.jsonl"
    (tmp_path / "none").mkdir()
    with pytest.raises(Exception, match="no manifest.csv"):
        find_manifest(tmp_path / "none")


# --- create_study_from_upload ------------------------------------------------------------------------


@pytest.fixture
def empty_db(tmp_path):
    from study_app.services.database import open_database

    db = open_database(f"sqlite:///{tmp_path / 'db' / 'study.sqlite'}")
    yield db
    db.dispose()


def create(db, **overrides):
    arguments = dict(study_id="pilot", design_path=shipped_design_path("chexone"), readers_text=READERS_CSV, seed=7)
    arguments.update(overrides)
    return create_study_from_upload(db, COORDINATOR, **arguments)


def test_good_upload_creates_the_study_in_the_cohorts_folder(empty_db, cohort_zip):
    outcome = create(empty_db, archive=cohort_zip)
    assert outcome.problems == []
    assert outcome.summary.n_cases == 12 and outcome.summary.n_readers == len(DEMO_READERS)
    assert outcome.cohort_dir == cohorts_root(empty_db) / "pilot"
    assert (outcome.cohort_dir / "my-cohort" / "manifest.csv").is_file()
    assert [s.study_id for s in list_studies(empty_db, COORDINATOR)] == ["pilot"]
    # The cohort folder is the study's for good: a second upload under the same id is refused.
    again = create(empty_db, archive=cohort_zip)
    assert again.problems and again.summary is None


def test_bad_manifest_lists_problems_by_row_and_column_and_creates_nothing(empty_db, small_cohort, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small_cohort, broken)
    break_images_of_row(broken / "manifest.csv", 2)
    outcome = create(empty_db, archive=zip_folder(broken))
    assert outcome.summary is None
    assert any(p.startswith("manifest row 2, column images") and "missing.png" in p for p in outcome.problems), \
        outcome.problems
    assert list_studies(empty_db, COORDINATOR) == []
    assert leftovers(cohorts_root(empty_db)) == []


def test_bad_readers_csv_is_listed_by_row_and_nothing_created(empty_db, cohort_zip):
    outcome = create(empty_db, archive=cohort_zip, readers_text="reader_id,role\nres1,resident\nres2,surgeon\n")
    assert any("row 2, column role" in p and "surgeon" in p for p in outcome.problems), outcome.problems
    assert list_studies(empty_db, COORDINATOR) == []
    assert leftovers(cohorts_root(empty_db)) == []


def test_unsafe_upload_creates_nothing(empty_db):
    outcome = create(empty_db, archive=zip_of({"manifest.csv": b"case_id\n", "../escape.csv": b"x"}))
    assert outcome.summary is None and "upload refused" in outcome.problems[0]
    assert leftovers(cohorts_root(empty_db)) == []


def test_manifest_on_the_server_is_used_in_place(empty_db, small_cohort):
    outcome = create(empty_db, manifest_path=small_cohort / "manifest.csv")
    assert outcome.problems == [] and outcome.cohort_dir is None
    assert leftovers(cohorts_root(empty_db)) == []


def test_a_reader_cannot_create_a_study(empty_db, cohort_zip):
    with pytest.raises(PermissionDenied):
        create_study_from_upload(empty_db, reader_actor(1, "res1"), study_id="pilot",
                                 design_path=shipped_design_path("chexone"), readers_text=READERS_CSV, seed=1,
                                 archive=cohort_zip)
    assert leftovers(cohorts_root(empty_db)) == []


def test_streamlits_in_memory_uploader_takes_only_small_files():
    """Streamlit keeps uploads in memory and refuses any above server.maxUploadSize; cohort zips stream to disk
    through /console/upload instead, so the shipped limit is the small files' (design, reader list)."""
    from study_app.serve import streamlit_options
    from study_app.services.uploads import MAX_SMALL_UPLOAD_MB

    assert streamlit_options()["server.maxUploadSize"] == MAX_SMALL_UPLOAD_MB


# --- the streamed upload (PUT /console/upload/<study id>) and the disk -------------------------------------------


def stream(db, study_id: str, data: bytes, declared: int | None = None, chunk: int = 65536):
    from study_app.services.uploads import begin_upload

    writer = begin_upload(db, COORDINATOR, study_id, len(data) if declared is None else declared)
    for start in range(0, len(data), chunk):
        writer.write(data[start:start + chunk])
    return writer.finish()


def test_a_streamed_upload_lands_whole_and_creates_the_study_once(empty_db, cohort_zip):
    from study_app.services.uploads import staged_upload

    staged = stream(empty_db, "pilot", cohort_zip)
    assert staged.size_bytes == len(cohort_zip) and staged.path.read_bytes() == cohort_zip
    assert leftovers(staged.path.parent) == ["pilot.zip"], "no partial file is left beside it"
    outcome = create(empty_db, uploaded=True)
    assert outcome.problems == [] and outcome.summary.n_cases == 12
    assert staged_upload(empty_db, COORDINATOR, "pilot") is None, "used up"
    with pytest.raises(Conflict, match="exists already"):
        stream(empty_db, "pilot", cohort_zip)  # a created study's cohort never changes by upload


def test_an_upload_that_is_short_or_long_of_its_declared_size_is_dropped(empty_db):
    from study_app.services.uploads import begin_upload

    with pytest.raises(UploadRefused, match="stopped after 3 of 10 bytes"):
        stream(empty_db, "s1", b"abc", declared=10)
    writer = begin_upload(empty_db, COORDINATOR, "s2", 4)
    with pytest.raises(UploadRefused, match="longer than it declared"):
        writer.write(b"abcdef")
    assert leftovers(cohorts_root(empty_db) / ".uploads") == []
    for study_id, size, says in (("Bad Id", 10, "must be lower-case"), ("s3", 0, "empty"),
                                 ("s4", 2 * 1024**3, "larger than 1024 MB")):
        with pytest.raises(InvalidInput, match=says):
            begin_upload(empty_db, COORDINATOR, study_id, size)
    with pytest.raises(PermissionDenied):
        begin_upload(empty_db, reader_actor(1, "res1"), "s5", 10)


def test_an_upload_or_an_extraction_that_does_not_fit_the_disk_says_so(tmp_path, cohort_zip):
    from study_app.services.database import open_database
    from study_app.services.uploads import DiskFull, begin_upload
    from tests.fault_support import fill, small_disk

    with small_disk(tmp_path / "disk", "24m") as disk:
        db = open_database(f"sqlite:///{disk / 'study.sqlite'}")
        try:
            with pytest.raises(DiskFull, match="not enough disk space for a 30.0 MB upload"):
                begin_upload(db, COORDINATOR, "big", 30 * 1024**2)
            # Fits when it starts, but the disk fills up meanwhile (another upload, the database, the logs).
            writer = begin_upload(db, COORDINATOR, "racing", 4 * 1024**2)
            filler = fill(disk)
            with pytest.raises(DiskFull, match="filled up while receiving the upload; nothing was kept"):
                for _ in range(4):
                    writer.write(b"\1" * 1024**2)
            assert leftovers(disk / "cohorts" / ".uploads") == []
            filler.unlink()
            # An archive whose files would not fit once unpacked is refused before a byte is unpacked.
            import numpy as np

            bits = np.random.default_rng(0).integers(0, 2, 6 * 1024**2, dtype=np.uint8).tobytes()  # ~8-fold
            roomy = zip_of({f"img/{n}.bin": bits for n in range(4)})  # ~3 MB that unpacks to 24 MB
            stream(db, "roomy", roomy)
            outcome = create(db, study_id="roomy", uploaded=True)
            assert outcome.summary is None
            assert any("not enough disk space for unpacking the cohort" in p for p in outcome.problems), outcome.problems
            assert leftovers(disk / "cohorts") == [".uploads"], "no cohort folder, no staging folder left"
        finally:
            db.dispose()
