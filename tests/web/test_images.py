"""Display copies of case images: lossless 16-bit packing, one preparation per file, disk cache, prefetch."""

from __future__ import annotations

import numpy as np
import pytest

from cohorts.images import downscale, load_image
from study_app.services import images, reading
from study_app.services.errors import NotFound


@pytest.mark.parametrize(
    "pixels",
    [
        np.arange(0, 65536, dtype=np.float32).reshape(256, 256),          # every 16-bit value
        np.linspace(-1024, 3071, 64 * 64, dtype=np.float32).round().reshape(64, 64),  # CT-like with intercept
        np.array([[0, 255], [17, 128]], dtype=np.float32),                 # 8-bit
    ],
)
def test_integer_data_round_trips_exactly(pixels):
    png, offset, gain = images.pack_display_image(pixels)
    assert gain == 1.0
    np.testing.assert_array_equal(images.unpack_display_png(png, offset, gain), pixels)


def test_wide_float_range_is_scaled_within_half_a_step():
    pixels = np.linspace(0, 1e6, 100 * 100, dtype=np.float64).reshape(100, 100)
    png, offset, gain = images.pack_display_image(pixels)
    assert gain < 1.0
    back = images.unpack_display_png(png, offset, gain)
    assert np.max(np.abs(back - pixels)) <= 0.5 / gain + 1e-6


def test_case_images_match_the_decoded_file_and_are_prepared_once(web_study, tmp_path):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor)[0]
    reading.open_case(web_study.db, actor, item.case_ref)
    cache = images.DisplayCache(tmp_path / "cache")
    shown = images.case_display_images(web_study.db, actor, item.case_ref, cache=cache)
    assert shown
    case_image, display = shown[0]
    expected = downscale(load_image(case_image.path), images.DISPLAY_MAX)
    assert (display.width, display.height) == (expected.width, expected.height)
    np.testing.assert_allclose(
        images.unpack_display_png(display.png, display.offset, display.gain), expected.pixels,
        atol=0.5 / display.gain + 1e-3,
    )
    assert (display.window_center, display.window_width) == pytest.approx(expected.window)
    again = images.case_display_images(web_study.db, actor, item.case_ref, cache=cache)
    assert again[0][1] is display, "the second view is a memory hit"
    reloaded = images.DisplayCache(tmp_path / "cache")
    assert reloaded._from_disk(reloaded._key(case_image.sha256, images.DISPLAY_MAX)) == display


def test_damaged_disk_entry_is_rebuilt(web_study, tmp_path):
    _, actor = web_study.sign_in("res1")
    item = web_study.items(actor)[0]
    cache = images.DisplayCache(tmp_path / "cache")
    image, display = images.case_display_images(web_study.db, actor, item.case_ref, cache=cache)[0]
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
        images.case_image_png(web_study.db, res1, mine.case_ref, image_id + 10_000)
    finish_case(web_study, res1, mine.case_ref)
    from study_app.services.errors import Conflict

    with pytest.raises(Conflict):
        images.case_image_png(web_study.db, res1, mine.case_ref, image_id)


def test_next_case_is_prepared_in_the_background(web_study, tmp_path):
    _, actor = web_study.sign_in("res1")
    first, second = web_study.items(actor)[:2]
    cache = images.DisplayCache(None)
    future = images.prefetch_next_case(web_study.db, actor, first.case_ref, cache=cache)
    assert future is not None
    prepared = future.result(timeout=30)
    assert [img.ordinal for img, _ in prepared] == [
        v.ordinal for v in reading.case_view(web_study.db, actor, second.case_ref).images
    ]
    assert len(cache._memory) == len(prepared)
    last = web_study.items(actor)[-1]
    assert images.prefetch_next_case(web_study.db, actor, last.case_ref, cache=cache) is None


def test_memory_cache_is_bounded_by_bytes(web_study):
    _, actor = web_study.sign_in("res1")
    cases = [i.case_ref for i in web_study.items(actor)[:4]]
    shown = [pair for case in cases for pair in images.case_display_images(web_study.db, actor, case,
                                                                            cache=images.DisplayCache(None))]
    largest = max(len(display.png) for _, display in shown)
    cache = images.DisplayCache(None, max_bytes=largest * 2)
    for image, _ in shown:
        cache.get(image.path, image.sha256)
        assert cache._bytes <= max(largest * 2, len(cache._memory[next(reversed(cache._memory))].png))
    assert cache._bytes == sum(len(d.png) for d in cache._memory.values())
    assert len(cache._memory) < len(shown)
