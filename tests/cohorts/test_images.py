"""Image loading and rendering: DICOM modality/VOI handling, polarity, bit depths, sizes, errors."""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cohorts import ImageError, downscale, image_fingerprint, load_image, probe_image, render, render_png, write_dicom


def ramp(width=40, height=30, top=4000, dtype=np.uint16):
    return np.repeat(np.linspace(0, top, width)[None, :], height, axis=0).round().astype(dtype)


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    stored = ramp()
    path = write_dicom(tmp_path / "a.dcm", stored, bits_stored=12, rescale=(2.0, -1024.0), window=(0, 100))
    image = load_image(path)
    assert image.format == "dicom" and image.pixels.dtype == np.float32
    np.testing.assert_array_equal(image.pixels, stored.astype(np.float32) * 2 - 1024)


def test_window_is_read_from_the_file_first_value_when_multivalued(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(), bits_stored=12, extra={"WindowCenter": ["1500", "40"], "WindowWidth": ["3000", "400"]})
    assert load_image(path).window == (1500.0, 3000.0)


def test_without_window_the_pixel_range_is_used(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(top=4000), bits_stored=12, window=None, rescale=(1.0, -1000.0))
    center, width = load_image(path).window
    assert (center, width) == (1000.0, 4000.0)  # values span -1000..3000 after rescale


def test_window_maps_center_to_mid_gray_and_clips_outside(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(width=4001, height=16, top=4000), bits_stored=12, window=(2000, 1001))
    out = np.asarray(render(load_image(path)))
    assert out[0, 0] == 0 and out[0, -1] == 255
    assert out[0, 1500] == 0 and out[0, 2500] == 255
    assert abs(int(out[0, 2000]) - 128) <= 1
    assert np.all(np.diff(out[0].astype(int)) >= 0)  # monotone


def test_monochrome1_is_inverted(tmp_path):
    stored = ramp()
    mono2 = load_image(write_dicom(tmp_path / "m2.dcm", stored, bits_stored=12, window=(2000, 4000)))
    mono1 = load_image(write_dicom(tmp_path / "m1.dcm", stored, bits_stored=12, window=(2000, 4000), photometric="MONOCHROME1"))
    assert mono1.invert and not mono2.invert
    row2, row1 = np.asarray(render(mono2))[0].astype(int), np.asarray(render(mono1))[0].astype(int)
    # Higher stored values are brighter in MONOCHROME2 and darker in MONOCHROME1.
    assert row2[0] < row2[-1] and row1[0] > row1[-1]
    np.testing.assert_array_equal(row1, 255 - row2)
    # The reader's invert toggle flips on top of the file's polarity.
    np.testing.assert_array_equal(np.asarray(render(mono1, invert=True))[0], row2)


@pytest.mark.parametrize("bits, dtype, top", [(8, np.uint8, 255), (10, np.uint16, 1023), (12, np.uint16, 4095), (16, np.uint16, 65535)])
def test_8_to_16_bit_dicom(tmp_path, bits, dtype, top):
    stored = ramp(top=top, dtype=dtype)
    image = load_image(write_dicom(tmp_path / "a.dcm", stored, bits_stored=bits, window=(top / 2, top)))
    assert image.bits_stored == bits
    assert image.pixels.max() == top and image.pixels.min() == 0
    out = np.asarray(render(image))
    assert out[0, 0] == 0 and out[0, -1] == 255


def test_signed_dicom(tmp_path):
    stored = np.repeat(np.linspace(-1000, 1000, 40)[None, :], 20, axis=0).round().astype(np.int16)
    image = load_image(write_dicom(tmp_path / "s.dcm", stored, bits_stored=16, signed=True, window=(0, 2000)))
    assert image.pixels.min() == -1000 and image.pixels.max() == 1000


@pytest.mark.parametrize("vr, out_bits", [("US", 8), ("OW", 8), ("US", 12)])
def test_voi_lut_sequence_is_used_for_default_rendering(tmp_path, vr, out_bits):
    # A LUT that inverts a 0..4095 input: clearly not the linear window. With 8 output
    # bits this also guards against pydicom 3.0's 8-bit index wrap-around.
    top = 2**out_bits - 1
    values = [top - (i * top) // 4095 for i in range(4096)]
    item = Dataset()
    item.LUTDescriptor = [4096, 0, out_bits]
    data = np.array(values, dtype="<u2").tobytes() if vr == "OW" else values
    item.add_new(0x00283006, vr, data)  # LUT Data
    path = write_dicom(tmp_path / "v.dcm", ramp(top=4095), bits_stored=12, window=None, extra={"VOILUTSequence": Sequence([item])})
    image = load_image(path)
    assert image.voi_lut is not None and image.window == (2048.0, 4096.0)
    row = np.asarray(render(image))[0].astype(int)
    assert row[0] == 255 and row[-1] == 0
    # An explicit window overrides the LUT.
    assert np.asarray(render(image, window=(2048, 4096)))[0, -1] == 255


def test_render_keeps_aspect_and_max_size(tmp_path):
    path = write_dicom(tmp_path / "big.dcm", ramp(width=500, height=300), bits_stored=12, window=(2000, 4000))
    image = load_image(path)
    assert render(image, max_size=(100, 100)).size == (100, 60)
    assert render(image, max_size=(1000, 150)).size == (250, 150)
    assert render(image, max_size=(1000, 1000)).size == (500, 300)  # never enlarged
    assert render(image).mode == "L"
    small = downscale(image, (100, 100))
    assert small.pixels.shape == (60, 100) and small.window == image.window


def test_render_rejects_a_bad_window(tmp_path):
    image = load_image(write_dicom(tmp_path / "a.dcm", ramp(), bits_stored=12))
    with pytest.raises(ValueError, match="positive width"):
        render(image, window=(100, 0))


def test_png_8_and_16_bit_rgb_and_jpeg(tmp_path):
    Image.fromarray(ramp(top=255, dtype=np.uint8)).save(tmp_path / "g8.png")
    Image.fromarray(ramp(top=4095)).save(tmp_path / "g16.png")
    Image.fromarray(np.stack([ramp(top=255, dtype=np.uint8)] * 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(ramp(top=255, dtype=np.uint8)).save(tmp_path / "g.jpg", quality=95)
    g8, g16, rgb, jpg = (load_image(tmp_path / n) for n in ("g8.png", "g16.png", "rgb.png", "g.jpg"))
    assert (g8.bits_stored, g8.window, g8.format) == (8, (127.5, 255.0), "png")
    assert g16.bits_stored == 16 and g16.pixels.max() == 4095 and g16.window == (2047.5, 4095.0)
    np.testing.assert_array_equal(rgb.pixels, g8.pixels)
    assert jpg.format == "jpeg" and jpg.pixels.shape == (30, 40)
    assert np.asarray(render(g16))[0, -1] == 255


def test_format_is_found_from_content_not_extension(tmp_path):
    Image.fromarray(ramp(top=255, dtype=np.uint8)).save(tmp_path / "scan.dcm", format="PNG")
    assert load_image(tmp_path / "scan.dcm").format == "png"
    assert probe_image(tmp_path / "scan.dcm") == ("png", 40, 30)


def test_render_png_returns_a_lossless_png(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(width=400, height=300), bits_stored=12, window=(2000, 4000))
    data = render_png(path, max_size=(200, 200))
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.mode == "L" and im.size == (200, 150)
        np.testing.assert_array_equal(np.asarray(im), np.asarray(render(load_image(path), max_size=(200, 200))))


def test_fingerprint_is_sha256_of_the_bytes(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(), bits_stored=12)
    assert image_fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "name, data, words",
    [("e.png", b"", "empty"), ("junk.png", b"hello world, not an image", "not a PNG, JPEG or DICOM"),
     ("junk.dcm", b"\x00" * 40, "DICOM")],
)
def test_bad_files_raise_image_error(tmp_path, name, data, words):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ImageError, match=words):
        load_image(tmp_path / name)


def test_missing_file_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "none.png")


def test_truncated_dicom_raises_image_error(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(), bits_stored=12)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ImageError, match="pixel data"):
        load_image(path)


def test_dicom_without_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(), bits_stored=12)
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImageError, match=r"DICOM DX \(Digital X-Ray Image - For Presentation\) has no image"):
        load_image(path)


def test_truncated_png_raises_image_error(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 100), dtype=np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot decode PNG"):
        load_image(tmp_path / "a.png")


def test_modality_lut_sequence_is_applied(tmp_path):
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", [min(2 * i, 65535) for i in range(4096)])  # LUT Data: doubles
    item.ModalityLUTType = "US"
    stored = ramp(top=4095)
    path = write_dicom(tmp_path / "m.dcm", stored, bits_stored=12, window=(4000, 8000), extra={"ModalityLUTSequence": Sequence([item])})
    np.testing.assert_array_equal(load_image(path).pixels, stored.astype(np.float32) * 2)


def test_multiframe_dicom_is_refused(tmp_path):
    stored = np.concatenate([ramp(), ramp()])  # two frames' worth of rows
    path = write_dicom(tmp_path / "mf.dcm", stored, bits_stored=12, extra={"NumberOfFrames": 2})
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows = 30
    ds.save_as(path)
    with pytest.raises(ImageError, match="multi-frame"):
        load_image(path)


def test_rgb_dicom_becomes_luminance(tmp_path):
    gray = ramp(top=255, dtype=np.uint8)
    rgb = np.stack([gray] * 3, axis=-1)
    path = tmp_path / "rgb.dcm"
    write_dicom(path, gray, bits_stored=8, photometric="MONOCHROME2")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "RGB"
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    image = load_image(path)
    assert image.pixels.shape == gray.shape
    np.testing.assert_allclose(image.pixels, gray.astype(np.float32), atol=0.01)


def test_a_palette_colour_image_without_its_palette_is_refused(tmp_path):
    path = write_dicom(tmp_path / "p.dcm", ramp(top=255, dtype=np.uint8), bits_stored=8, photometric="PALETTE COLOR")
    with pytest.raises(ImageError, match="Photometric Interpretation: PALETTE COLOR"):
        load_image(path)


def test_ybr_dicom_becomes_luminance(tmp_path):
    # Gray in YBR_FULL is Y = gray, Cb = Cr = 128; pydicom converts to RGB before we take luminance.
    gray = ramp(top=255, dtype=np.uint8)
    ybr = np.stack([gray, np.full_like(gray, 128), np.full_like(gray, 128)], axis=-1)
    path = tmp_path / "ybr.dcm"
    write_dicom(path, gray, bits_stored=8)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PixelData = ybr.tobytes()
    ds.save_as(path)
    np.testing.assert_allclose(load_image(path).pixels, gray.astype(np.float32), atol=1.0)


def _without_file_meta(source: str, target, *, implicit: bool, little: bool):
    """Write a pydicom test file as old exports do: no preamble, no DICM marker, no file meta."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.filewriter import dcmwrite

    ds = pydicom.dcmread(get_testdata_file(source))
    expected = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    ds.preamble = None
    del ds.file_meta
    dcmwrite(target, ds, implicit_vr=implicit, little_endian=little, enforce_file_format=False)
    return expected


@pytest.mark.parametrize("source, implicit, little", [
    ("MR_small_implicit.dcm", True, True), ("CT_small.dcm", False, True), ("MR_small_bigendian.dcm", False, False),
])
def test_dicom_without_preamble_or_file_meta_is_read_in_the_encoding_it_is_in(tmp_path, source, implicit, little):
    path = tmp_path / "old_export.dcm"
    expected = _without_file_meta(source, path, implicit=implicit, little=little)
    assert path.read_bytes()[128:132] != b"DICM"
    image = load_image(path)
    np.testing.assert_array_equal(image.pixels, expected)
    assert probe_image(path)[1:] == (expected.shape[1], expected.shape[0])


def test_compressed_pixel_data_without_a_transfer_syntax_is_refused_saying_so(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.filewriter import dcmwrite

    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.preamble = None
    del ds.file_meta
    dcmwrite(tmp_path / "rle.dcm", ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    with pytest.raises(ImageError, match="compressed DICOM pixel data in a file without a Transfer Syntax UID"):
        load_image(tmp_path / "rle.dcm")


def test_a_bad_number_of_frames_is_named(tmp_path):
    path = write_dicom(tmp_path / "f.dcm", ramp(), bits_stored=12)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.add_new(0x00280008, "IS", None)
    ds["NumberOfFrames"]._value = "1A"  # as a broken writer leaves it; pydicom itself would not write it
    ds.save_as(path)
    with pytest.raises(ImageError, match="Number of Frames is '1A', not a whole number"):
        load_image(path)


def test_decoder_warnings_are_returned_as_notes_when_asked(tmp_path):
    from pydicom.data import get_testdata_file

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        image = load_image(get_testdata_file("MR_small_padded.dcm"), notes=notes)
    assert not escaped
    assert image.notes == tuple(notes) and "excess padding" in notes[0]


def test_a_compression_no_installed_plugin_decodes_says_what_to_install(monkeypatch):
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset

    def missing(self):
        raise RuntimeError("Unable to decompress 'JPEG-LS Lossless Image Compression' pixel data because all plugins "
                           "are missing dependencies:\n\tgdcm - requires gdcm>=3.0.10\n\tpylibjpeg - requires "
                           "pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1")

    monkeypatch.setattr(Dataset, "pixel_array", property(missing))
    with pytest.raises(ImageError) as refused:
        load_image(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    assert str(refused.value) == (
        "cannot decode DICOM pixel data: no installed pixel-data plugin decodes JPEG-LS Lossless Image Compression "
        "(pydicom would use: gdcm - requires gdcm>=3.0.10; pylibjpeg - requires pylibjpeg>=2.0 and "
        "pylibjpeg-libjpeg>=2.1); readerstudy installs pylibjpeg with its libjpeg, openjpeg and rle plugins: install "
        "them again (pip install --force-reinstall readerstudy)")
