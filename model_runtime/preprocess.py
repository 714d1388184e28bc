"""Resize rendered radiographs the way Qwen2.5-VL does (smart resize, bicubic) and encode them as PNG for the model."""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

from PIL import Image

# Qwen2.5-VL: 14-pixel ViT patches merged 2x2, so every side must be a multiple of 28.
IMAGE_FACTOR = 28
MIN_PIXELS = 4 * 28 * 28  # 3136, the Qwen default
# CheXOne's processor budget: 262144 pixels = at most ~334 image tokens per view,
# which keeps four views plus a reasoning trace well inside the context window.
CHEXONE_MAX_PIXELS = 262144
MAX_RATIO = 200


def _round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def _ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def _floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = CHEXONE_MAX_PIXELS,
) -> tuple[int, int]:
    """Target size of an image as Qwen2.5-VL's processor computes it.

    Parameters
    ----------
    height, width : int
        Size of the input image in pixels (both > 0).
    factor : int
        Both output sides are multiples of this (28 for Qwen2.5-VL).
    min_pixels, max_pixels : int
        Bounds on the output area.

    Returns
    -------
    tuple of (int, int)
        ``(height, width)`` of the resized image.

    Notes
    -----
    Same arithmetic as ``qwen_vl_utils.vision_process.smart_resize``: round each
    side to the nearest multiple of ``factor``; if the area then exceeds
    ``max_pixels``, scale both sides by ``beta = sqrt(h*w / max_pixels)`` and floor
    to the factor; if it falls below ``min_pixels``, scale up by
    ``sqrt(min_pixels / (h*w))`` and ceil. Python's ``round`` (banker's rounding)
    is kept on purpose so ties resolve as in the reference. Unlike the reference, a size whose *result*
    exceeds the aspect-ratio limit is refused (the server would refuse the resized image).

    References
    ----------
    Qwen team, ``qwen-vl-utils`` (QwenLM/Qwen2-VL, ``vision_process.py``).

    Examples
    --------
    >>> smart_resize(1024, 1024)
    (504, 504)
    >>> smart_resize(1024, 1024, max_pixels=16384 * 28 * 28)
    (1036, 1036)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be at most {MAX_RATIO}, got {max(height, width) / min(height, width):.1f}"
        )
    h_bar = max(factor, _round_by_factor(height, factor))
    w_bar = max(factor, _round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = _floor_by_factor(height / beta, factor)
        w_bar = _floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by_factor(height * beta, factor)
        w_bar = _ceil_by_factor(width * beta, factor)
    if max(h_bar, w_bar) / min(h_bar, w_bar) > MAX_RATIO:
        # Rounding to the factor can push a ratio just under the limit over it (29 x 5615 -> 28 x 5628); the
        # server re-runs smart resize on what it receives and would refuse it, so it is refused here, plainly.
        raise ValueError(
            f"a {height}x{width} image resizes to {h_bar}x{w_bar}, an aspect ratio of "
            f"{max(h_bar, w_bar) / min(h_bar, w_bar):.1f}: the model accepts at most {MAX_RATIO}"
        )
    return h_bar, w_bar


def image_token_count(height: int, width: int, factor: int = IMAGE_FACTOR) -> int:
    """Number of image tokens the LLM sees: ``(h/14 * w/14) / 4`` = ``(h/28) * (w/28)`` for a resized image."""
    if height % factor or width % factor:
        raise ValueError(f"{height}x{width} is not a multiple of {factor}; call smart_resize first")
    return (height // factor) * (width // factor)


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send to the model.

    Attributes
    ----------
    png : bytes
        PNG encoding of the resized image.
    width, height : int
        Size after smart resize.
    n_image_tokens : int
        Image tokens this image costs in the prompt.
    sha256 : str
        Hex digest over mode, size and raw pixels (not the PNG bytes, so a different
        zlib build does not change the identity of the input).
    """

    png: bytes
    width: int
    height: int
    n_image_tokens: int
    sha256: str


def pixel_sha256(image: Image.Image) -> str:
    """Digest of an image's mode, size and pixel bytes."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def prepare_image(
    data: bytes,
    *,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = CHEXONE_MAX_PIXELS,
) -> PreparedImage:
    """Decode an 8-bit PNG/JPEG, smart-resize it with PIL bicubic, and re-encode it as PNG.

    Parameters
    ----------
    data : bytes
        Encoded 8-bit image (PNG or JPEG), already rendered by the caller (windowed,
        inverted if MONOCHROME1): this library never sees DICOM.
    factor, min_pixels, max_pixels : int
        Passed to :func:`smart_resize`.

    Returns
    -------
    PreparedImage

    Notes
    -----
    Grayscale stays single-channel (``L``): the server's RGB conversion copies the one
    channel three times, so the model sees the same pixels as with an RGB PNG, and the
    payload is a third of the size. Anything else is converted to RGB as
    ``qwen_vl_utils.fetch_image`` does. The server re-runs smart resize on the
    received image; because the sent size is already a fixed point, it does not
    resample again.
    """
    if not data:
        raise ValueError("empty image data")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises several unrelated types for bad input
        raise ValueError(f"cannot decode image ({len(data)} bytes): {exc}") from exc
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise ValueError(
            f"image mode {image.mode!r} is not 8-bit; render (window and scale) it to 8-bit before drafting"
        )
    if image.mode != "L":
        image = image.convert("RGB")
    height, width = smart_resize(image.height, image.width, factor, min_pixels, max_pixels)
    if (width, height) != image.size:
        image = image.resize((width, height), resample=Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return PreparedImage(
        png=buffer.getvalue(),
        width=width,
        height=height,
        n_image_tokens=image_token_count(height, width, factor),
        sha256=pixel_sha256(image),
    )
