"""Display copies of case images: a windowed preview, a lossless 16-bit full copy, one preparation per file, disk
cache, prefetch, window presets and pixel spacing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from cohorts.images import downscale, load_image, render
from study_app.services import images, reading
from study_app.services.errors import NotFound


@pytest.mark.parametrize("fmt", ["webp", "png"])
@pytest.mark.parametrize(
    "pixels",
    [
        np.arange(0, 65536, dtype=np.float32).reshape(256, 256),          # every 16-bit value
        np.linspace(-1024, 3071, 64 * 64, dtype=np.float32).round().reshape(64, 64),  # CT-like with intercept
        np.array([[0, 255], [17, 128]], dtype=np.float32),                 # 8-bit
    ],
)
def test_integer_data_round_trips_exactly(pixels, fmt):
    data, offset, gain = images.pack_display_image(pixels, fmt)
    assert gain == 1.0
    np.testing.assert_array_equal(images.unpack_display_image(data, offset, gain), pixels)


def test_wide_float_range_is_scaled_within_half_a_step():
    pixels = np.linspace(0, 1e6, 100 * 100, dtype=np.float64).reshape(100, 100)
    data, offset, gain = images.pack_display_image(pixels)
    assert gain < 1.0
    back = images.unpack_display_image(data, offset, gain)
    assert np.max(np.abs(back - pixels)) <= 0.5 / gain + 1e-6


def test_the_full_copy_is_smaller_as_webp_than_as_png(demo_cohort_dir):
    # The demo's largest view (a 2500 x 3000 16-bit DICOM): the lossless WebP must earn its place.
    loaded = downscale(load_image(demo_cohort_dir / "images" / "demo-001_pa.dcm"), images.DISPLAY_MAX)
    stored, _, _ = images.pack_values(loaded.pixels)
    webp, png = images.encode_packed(stored, "webp"), images.encode_packed(stored, "png")
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP" and png.startswith(b"\x89PNG")
    assert len(webp) < 0.8 * len(png)


def test_case_images_match_the_decoded_file_and_are_prepared_once(web_study, tmp_path):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor)[0]
    reading.open_case(web_study.db, actor, item.case_ref)
    cache = images.DisplayCache(tmp_path / "cache")
    shown = images.case_display_images(web_study.db, actor, item.case_ref, cache=cache)
    assert shown
    case_image, display = shown[0]
    expected = downscale(load_image(case_image.path), images.DISPLAY_MAX)
    meta = display.meta
    assert (meta.width, meta.height) == (expected.width, expected.height)
    np.testing.assert_allclose(images.unpack_display_image(display.full, meta.offset, meta.gain), expected.pixels,
                               atol=0.5 / meta.gain + 1e-3)
    assert (meta.window_center, meta.window_width) == pytest.approx(expected.window)
    # The preview is the same picture, 8 bits in the opening window (JPEG: close, not exact).
    preview = np.asarray(PILImage.open(io.BytesIO(display.preview)).convert("L"), dtype=np.float64)
    drawn = np.asarray(render(expected, window=expected.window), dtype=np.float64)
    assert display.preview.startswith(b"\xff\xd8") and preview.shape == drawn.shape
    assert np.mean(np.abs(preview - drawn)) < 2.0
    again = images.case_display_images(web_study.db, actor, item.case_ref, cache=cache)
    assert again[0][1] is display, "the second view is a memory hit"
    reloaded = images.DisplayCache(tmp_path / "cache")
    assert reloaded._from_disk(reloaded._key(case_image.sha256, images.DISPLAY_MAX)) == display


def test_the_preview_does_not_wait_for_the_full_copy(demo_cohort_dir, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    release = Event()
    real = images.encode_packed
    monkeypatch.setattr(images, "encode_packed", lambda stored, fmt="webp": release.wait(30) and real(stored, fmt))
    path = demo_cohort_dir / "images" / "demo-002_pa.png"
    with ThreadPoolExecutor(1) as encoder:
        shown = images.prepare_display(path, "x", encoder=encoder)
        assert shown.preview and not shown.full_ready, "the preview is out while the full copy is still encoding"
        release.set()
        assert images.unpack_display_image(shown.full, shown.meta.offset, shown.meta.gain).shape == (
            shown.meta.height, shown.meta.width)


def test_presets_and_spacing_come_from_the_dicom_header(demo_cohort_dir, tmp_path):
    import pydicom

    source = demo_cohort_dir / "images" / "demo-001_pa.dcm"
    ds = pydicom.dcmread(source)
    ds.WindowCenter, ds.WindowWidth = [14000, 12000], [26000, 8000]
    ds.WindowCenterWidthExplanation = ["SOFT", "BONE"]
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.15, 0.15]
    path = tmp_path / "two-windows.dcm"
    ds.save_as(path)
    shown = images.prepare_display(path, "y", window="file2")
    meta = shown.meta
    keys = [p.key for p in meta.presets]
    assert keys[:2] == ["file", "file2"] and [p.label for p in meta.presets[:2]] == ["SOFT", "BONE"]
    assert {"auto", "full"} <= set(keys) and "lung" not in keys, "no CT windows for a radiograph"
    assert (meta.window_center, meta.window_width) == (12000, 8000), "the design's default window opens"
    # Spacing of the display copy: the file's, times the downsizing (3000 rows shown as 2048).
    assert meta.spacing_source == "ImagerPixelSpacing"
    assert meta.spacing_mm == pytest.approx((0.15 * 3000 / meta.height, 0.15 * 2500 / meta.width))
    png = images.prepare_display(demo_cohort_dir / "images" / "demo-002_pa.png", "z").meta
    assert png.spacing_mm is None and png.spacing_source is None and png.presets[0].key == "file"


def test_ct_like_values_get_lung_mediastinum_and_bone_windows():
    from cohorts.images import LoadedImage

    ct = LoadedImage(pixels=np.linspace(-1024, 3071, 400, dtype=np.float32).reshape(20, 20), window=(40, 400),
                     invert=False, bits_stored=12, format="dicom")
    keys = [p.key for p in images.window_presets(ct, images.HeaderFacts())]
    assert keys == ["file", "auto", "full", "lung", "mediastinum", "bone"]
    assert images.choose_window(images.window_presets(ct, images.HeaderFacts()), "lung").center == -600
    assert images.choose_window(images.window_presets(ct, images.HeaderFacts()), "nonesuch").key == "file"


def test_damaged_disk_entry_is_rebuilt(web_study, tmp_path):
    _, actor = web_study.sign_in("res1")
    item = web_study.items(actor)[0]
    cache = images.DisplayCache(tmp_path / "cache")
    image, display = images.case_display_images(web_study.db, actor, item.case_ref, cache=cache)[0]
    display.full  # the full copy's file is written once encoded
    meta = tmp_path / "cache" / f"{cache._key(image.sha256, images.DISPLAY_MAX)}.json"
    meta.write_text("{broken", encoding="utf-8")
    fresh = images.DisplayCache(tmp_path / "cache")
    assert fresh.get(image.path, image.sha256) == display


def test_other_readers_and_finished_cases_are_refused(web_study, finish_case):
    _, res1 = web_study.sign_in("res1")
    _, res2 = web_study.sign_in("res2")
    theirs = web_study.items(res2)[0].case_ref
    with pytest.raises(NotFound):
        images.case_display_images(web_study.db, res1, theirs)
    mine = web_study.items(res1)[0]
    image_id = reading.case_view(web_study.db, res1, mine.case_ref).images[0].ordinal
    with pytest.raises(NotFound):
        images.case_image_bytes(web_study.db, res1, mine.case_ref, image_id + 10_000)
    with pytest.raises(NotFound):
        images.case_image_bytes(web_study.db, res1, mine.case_ref, image_id, "original")
    finish_case(web_study, res1, mine.case_ref)
    from study_app.services.errors import Conflict

    with pytest.raises(Conflict):
        images.case_image_bytes(web_study.db, res1, mine.case_ref, image_id, "preview")


def test_next_case_is_prepared_in_the_background_and_named_for_the_browser(web_study, tmp_path):
    _, actor = web_study.sign_in("res1")
    first, second = web_study.items(actor)[:2]
    cache = images.DisplayCache(None)
    ahead = images.next_case_ahead(web_study.db, actor, first.case_ref, cache=cache)
    assert ahead is not None
    prepared = ahead.prepared.result(timeout=30)
    ordinals = [v.ordinal for v in reading.case_view(web_study.db, actor, second.case_ref).images]
    assert [img.ordinal for img, _ in prepared] == ordinals
    assert len(cache._memory) == len(prepared)
    assert (ahead.case_ref, ahead.ordinals) == (second.case_ref, ordinals)
    last = web_study.items(actor)[-1]
    assert images.next_case_ahead(web_study.db, actor, last.case_ref, cache=cache) is None
    # Another reader's case names nothing ahead.
    _, other = web_study.sign_in("res2")
    assert images.next_case_ahead(web_study.db, other, first.case_ref, cache=cache) is None


def test_memory_cache_is_bounded_by_bytes(web_study):
    _, actor = web_study.sign_in("res1")
    cases = [i.case_ref for i in web_study.items(actor)[:4]]
    shown = [pair for case in cases for pair in images.case_display_images(web_study.db, actor, case,
                                                                            cache=images.DisplayCache(None))]
    largest = max(len(display.preview) + len(display.full) for _, display in shown)
    cache = images.DisplayCache(None, max_bytes=largest * 2)
    for image, _ in shown:
        cache.get(image.path, image.sha256).full
        cache._full_done(*next(reversed(cache._memory.items())))
        assert cache._bytes <= max(largest * 2, next(reversed(cache._memory.values())).nbytes)
    assert cache._bytes == sum(d.nbytes for d in cache._memory.values())
    assert len(cache._memory) < len(shown)
