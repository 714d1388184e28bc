"""Every DICOM test file pydicom ships (offline, in its wheel) either validates and displays, or is refused
with a message that says why in a coordinator's words.

pydicom's test files are the widest offline sample of real-world encodings: every transfer syntax (implicit and
explicit VR, big endian, deflate, RLE, JPEG baseline, extended 12-bit, lossless, JPEG-LS, JPEG 2000), files
without preamble or file meta, colour encodings, and objects that are not images (SR, RT plans, DICOMDIRs).
Each goes through the manifest validation a coordinator runs, as a one-case cohort. None is skipped: the
slowest (``examples_ybr_color.dcm``, 30 frames, refused from its header) takes well under a second.
"""

from __future__ import annotations

import io
import re
import shutil
import warnings
from pathlib import Path

import pydicom.data
import pytest
from PIL import Image

from cohorts import check_manifest, render_png


def _dicom_test_files() -> list[Path]:
    """The wheel's DICOM test files: a .dcm name or the DICM marker (DICOMDIR members have no extension)."""
    found = []
    for name in pydicom.data.get_testdata_files():
        path = Path(name)
        if not path.is_file():
            continue
        with open(path, "rb") as handle:
            head = handle.read(132)
        if path.suffix.lower() == ".dcm" or head[128:132] == b"DICM":
            found.append(path)
    return sorted(found)


FILES = _dicom_test_files()
ROOT = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent

# Why a file may be refused, each in words a coordinator can act on. A refusal matching none of these (say
# "'FileDataset' object has no attribute 'Columns'") fails the test.
CLEAR_REASONS = {
    "no image": r"DICOM .+ has no image \(no Pixel Data element\)|a DICOMDIR \(media directory\) has no image",
    "not DICOM": r"not a DICOM data set",
    "no layout": r"has pixel data but no (Rows|Columns)",
    "multi-frame": r"multi-frame DICOM \(\d+ frames\) is not a radiograph",
    "too small": r"implausible image size \d+ x \d+ px",
    "truncated": r"cannot decode DICOM pixel data: The number of bytes of pixel data is less than expected",
    "corrupt stream": r"cannot decode DICOM pixel data: Unable to decode as exceptions were raised by all available "
                      r"plugins: pylibjpeg: .*(misplaced marker|failed to read the header)",
    "bad number": r"DICOM Number of Frames is '.*', not a whole number",
}

# Files whose outcome matters to a real cohort, pinned so that a missing plugin or a regression shows here.
EXPECTED = {
    "JPGExtended.dcm": "accepted",  # 12-bit JPEG (process 2 & 4): pylibjpeg-libjpeg
    "SC_rgb_jpeg_gdcm.dcm": "accepted",  # JPEG lossless, process 14 SV1
    "MR_small_jpeg_ls_lossless.dcm": "accepted",  # JPEG-LS lossless
    "JPEGLSNearLossless_16.dcm": "too small",  # JPEG-LS near-lossless decodes; 50 x 10 px is no radiograph
    "MR_small_jp2klossless.dcm": "accepted",  # JPEG 2000: pylibjpeg-openjpeg
    "GDCMJ2K_TextGBR.dcm": "accepted",  # JPEG 2000 with the reversible colour transform (YBR_RCT)
    "MR_small_RLE.dcm": "accepted",
    "image_dfl.dcm": "accepted",  # deflated explicit VR little endian
    "MR_small_bigendian.dcm": "accepted",
    "examples_palette.dcm": "accepted",  # PALETTE COLOR through its lookup table
    "test-SR.dcm": "no image",
    "rtplan.dcm": "no image",
    "ExplVR_LitEndNoMeta.dcm": "no image",  # no preamble, no file meta: read, and named for what it is
    "DICOMDIR": "no image",
    "MR_truncated.dcm": "truncated",
    "examples_ybr_color.dcm": "multi-frame",
    "no_meta.dcm": "not DICOM",
    "meta_missing_tsyntax.dcm": "no layout",
}


def _one_case_cohort(folder: Path, source: Path) -> Path:
    images = folder / "images"
    images.mkdir()
    shutil.copyfile(source, images / "x.dcm")  # a copy: a symbolic link out of the cohort is refused
    manifest = folder / "manifest.csv"
    manifest.write_text("case_id,images,indication\nc1,PA:images/x.dcm,\n", encoding="utf-8")
    return manifest


def test_the_wheel_ships_the_files_this_test_expects():
    names = {p.name for p in FILES}
    assert len(FILES) >= 150 and set(EXPECTED) <= names


@pytest.mark.parametrize("source", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_pydicom_test_file_is_accepted_and_displays_or_refused_with_a_reason(tmp_path, source):
    manifest = _one_case_cohort(tmp_path, source)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        report = check_manifest(manifest)
    # pydicom's warnings are in the report (notes), never left to the terminal.
    assert [str(w.message) for w in escaped if not issubclass(w.category, DeprecationWarning)] == []
    if report.cohort is not None:
        outcome = "accepted"
        record = report.cohort.cases[0].images[0]
        picture = Image.open(io.BytesIO(render_png(record.path)))
        assert picture.mode == "L" and picture.size[0] >= 1
        assert (record.width, record.height) >= (16, 16)
    else:
        [problem] = report.problems
        assert (problem.row, problem.column) == (1, "images")
        matched = [name for name, pattern in CLEAR_REASONS.items() if re.search(pattern, problem.message)]
        assert matched, f"refused without a clear reason: {problem.message}"
        assert not re.search(r"object has no attribute|NoneType|Traceback|invalid literal", problem.message)
        outcome = matched[0]
    if source.name in EXPECTED and source.parent == ROOT or source.name == "DICOMDIR":
        assert outcome == EXPECTED[source.name]


def test_pydicom_warnings_go_into_the_validation_report(tmp_path):
    # The file's meta says explicit VR, its data set is implicit: pydicom warns, and reads it.
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        report = check_manifest(_one_case_cohort(tmp_path, ROOT / "SC_rgb_jpeg.dcm"))
    assert report.cohort is not None and not report.problems and not escaped
    [note] = report.notes
    assert (note.row, note.column) == (1, "images")
    assert "Expected explicit VR, but found implicit VR" in note.message and note.message.endswith("images/x.dcm")
    assert report.cohort.notes == (note,)


def test_the_validate_command_prints_the_notes_as_part_of_its_report(tmp_path):
    from click.testing import CliRunner

    from study_app.cli import main

    manifest = _one_case_cohort(tmp_path, ROOT / "SC_rgb_jpeg.dcm")
    result = CliRunner().invoke(main, ["cohort", "validate", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "note: row 1, column images: pydicom: Expected explicit VR" in result.output
    assert "valid, 1 case(s), 1 image(s); 1 note(s)" in result.output
