"""Smart resize matches the Qwen reference arithmetic; prepared images are what the model will see."""

import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from model_runtime.preprocess import prepare_image, smart_resize

QWEN_DEFAULT_MAX = 16384 * 28 * 28


# Expected values worked by hand from qwen_vl_utils.vision_process.smart_resize
# (QwenLM/Qwen2-VL, qwen-vl-utils): round to 28, then floor(h/beta) or ceil(h*beta).
@pytest.mark.parametrize(
    ("height", "width", "max_pixels", "expected", "tokens"),
    [
        # beta = sqrt(1024*1024/262144) = 2 -> floor(512/28)*28 = 504
        (1024, 1024, 262144, (504, 504), 324),
        # qwen default budget: round(1024/28) = 37 -> 1036
        (1024, 1024, QWEN_DEFAULT_MAX, (1036, 1036), 1369),
        # beta = sqrt(7.5e6/262144) = 5.349 -> floor(467.4/28)=16, floor(560.9/28)=20
        (2500, 3000, 262144, (448, 560), 320),
        (3000, 2500, 262144, (560, 448), 320),
        # within budget: just rounded to 28
        (224, 224, 262144, (224, 224), 64),
        (500, 400, 262144, (504, 392), 252),
        # too small: beta = sqrt(3136/100) = 5.6 -> ceil(56/28)*28 = 56
        (10, 10, 262144, (56, 56), 4),
        # Python's round() ties to even, as in the reference: 70/28 = 2.5 -> 2 -> 56
        (70, 70, 262144, (56, 56), 4),
    ],
)
def test_smart_resize_known_values(height, width, max_pixels, expected, tokens):
    h, w = smart_resize(height, width, max_pixels=max_pixels)
    assert (h, w) == expected
    assert (h // 28) * (w // 28) == tokens == (h // 14) * (w // 14) // 4


def test_smart_resize_rejects_extreme_aspect_ratio_and_empty_sizes():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2100)
    with pytest.raises(ValueError, match="positive"):
        smart_resize(0, 100)


@settings(max_examples=200, deadline=None)
@given(st.integers(28, 6000), st.integers(28, 6000))
def test_smart_resize_is_a_fixed_point_within_budget(height, width):
    assume(max(height, width) / min(height, width) <= 200)
    try:
        h, w = smart_resize(height, width)
    except ValueError as refused:  # only a size that rounding pushes over the limit, said as such
        assert "resizes to" in str(refused) and "at most 200" in str(refused)
        return
    assert h % 28 == 0 and w % 28 == 0
    assert 3136 <= h * w <= 262144
    # The server re-runs smart resize on what we send: it must not resample again.
    assert smart_resize(h, w) == (h, w)


def test_a_size_that_rounding_pushes_past_the_aspect_limit_is_refused_plainly():
    # 5615 / 29 = 193.6 is accepted on the way in, but it rounds to 28 x 5628 (201): the server would refuse it.
    with pytest.raises(ValueError, match=r"29x5615 image resizes to 28x5628, an aspect ratio of 201.0"):
        smart_resize(29, 5615)
    assert smart_resize(28, 5600) == (28, 5600)  # exactly 200 stays acceptable


def test_prepare_image_resizes_with_bicubic_and_counts_tokens(png_factory):
    data = png_factory(1024, 1024)
    prepared = prepare_image(data)
    assert (prepared.width, prepared.height, prepared.n_image_tokens) == (504, 504, 324)
    decoded = Image.open(io.BytesIO(prepared.png))
    assert decoded.format == "PNG" and decoded.size == (504, 504) and decoded.mode == "L"
    expected = Image.open(io.BytesIO(data)).resize((504, 504), resample=Image.Resampling.BICUBIC)
    assert decoded.tobytes() == expected.tobytes()


def test_prepare_image_is_deterministic_and_hash_tracks_pixels(png_factory):
    a = prepare_image(png_factory(800, 600, seed=1))
    b = prepare_image(png_factory(800, 600, seed=1))
    c = prepare_image(png_factory(800, 600, seed=2))
    assert a.sha256 == b.sha256 and a.png == b.png
    assert a.sha256 != c.sha256
    # Equal pixels hash equally whatever the container they arrived in.
    assert prepare_image(png_factory(800, 600, seed=1, fmt="BMP")).sha256 == a.sha256


def test_prepare_image_converts_colour_to_rgb_and_accepts_jpeg(png_factory):
    prepared = prepare_image(png_factory(300, 300, mode="RGB", fmt="JPEG"))
    assert Image.open(io.BytesIO(prepared.png)).mode == "RGB"
    assert (prepared.width, prepared.height) == (308, 308)


def test_prepare_image_refuses_16_bit_and_garbage():
    buffer = io.BytesIO()
    Image.new("I;16", (64, 64), 4000).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="8-bit"):
        prepare_image(buffer.getvalue())
    with pytest.raises(ValueError, match="cannot decode"):
        prepare_image(b"DICM not an image")
    with pytest.raises(ValueError, match="empty"):
        prepare_image(b"")
