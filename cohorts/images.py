"""Decode chest radiographs (PNG, JPEG, DICOM) into modality units and render them for display."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ImageError",
    "LoadedImage",
    "load_image",
    "render",
    "render_png",
    "image_fingerprint",
    "sniff_format",
    "downscale",
    "probe_image",
]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_DICOM_EXTENSIONS = {".dcm", ".dicom", ".dic"}
_SUPPORTED_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"}


class ImageError(ValueError):
    """An image file that cannot be decoded into a displayable grayscale radiograph."""


@dataclass
class LoadedImage:
    """A decoded radiograph, in modality units, with its default display settings.

    Attributes
    ----------
    pixels : numpy.ndarray
        2-D float32 array (rows x columns). For DICOM, the stored values after the
        Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence); for PNG and
        JPEG, the stored gray levels.
    window : tuple of float
        ``(center, width)`` of the default display window, in the units of ``pixels``.
    invert : bool
        True for MONOCHROME1 (low values are displayed white).
    bits_stored : int
        Bits per stored sample (8 for most PNG/JPEG, 10 to 16 for DICOM).
    format : str
        ``"png"``, ``"jpeg"`` or ``"dicom"``.
    voi_lut : tuple or None
        When the DICOM file carries a VOI LUT Sequence: ``(first_input_value, table)``
        where ``table`` is a float32 array scaled to 0..1. Used by :func:`render` when
        no explicit window is asked for, because a LUT is not a linear window.
    """

    pixels: np.ndarray
    window: tuple[float, float]
    invert: bool
    bits_stored: int
    format: str
    voi_lut: tuple[float, np.ndarray] | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        """Number of columns."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Number of rows."""
        return int(self.pixels.shape[0])


def image_fingerprint(path: str | Path) -> str:
    """Return the SHA-256 of a file's bytes, as 64 lowercase hex digits.

    Parameters
    ----------
    path : str or Path
        The image file.

    Returns
    -------
    str
        Hex digest; identical files give identical fingerprints whatever their name,
        which is what a display cache and the drafts' ``input_hash`` key on.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_format(path: str | Path) -> str | None:
    """Say whether a file is a PNG, JPEG or DICOM file from its first bytes.

    Parameters
    ----------
    path : str or Path
        The file to look at.

    Returns
    -------
    str or None
        ``"png"``, ``"jpeg"``, ``"dicom"`` or None when none of these matches.

    Notes
    -----
    Content decides, not the extension: coordinators rename files. A DICOM file
    without the 128-byte preamble and ``DICM`` marker is accepted only when its
    extension is ``.dcm``/``.dicom``/``.dic`` (some old exports omit the preamble).
    """
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if len(head) == 132 and head[128:132] == b"DICM":
        return "dicom"
    if Path(path).suffix.lower() in _DICOM_EXTENSIONS and len(head) >= 8:
        return "dicom"
    return None


def load_image(path: str | Path) -> LoadedImage:
    """Decode a PNG, JPEG or DICOM radiograph into modality units.

    Parameters
    ----------
    path : str or Path
        The image file. The format is found from the content (see :func:`sniff_format`).

    Returns
    -------
    LoadedImage
        The pixels as a 2-D float32 array plus the default window, MONOCHROME1 flag,
        bits stored and format.

    Raises
    ------
    ImageError
        When the file is missing, empty, of an unknown format, truncated or corrupt,
        multi-frame, or not a grayscale/RGB image. The message says which.

    Notes
    -----
    DICOM: the Modality LUT is applied first (``value * RescaleSlope + RescaleIntercept``,
    or the Modality LUT Sequence). The default window is the file's first Window
    Center/Width pair; when the file has none, the full range of the pixel values. A VOI
    LUT Sequence, if present, is kept (``voi_lut``) and used for default rendering.
    PNG/JPEG: colour images are converted to luminance (ITU-R 601-2); the default window
    spans the bit depth for 8-bit images and the actual pixel range for 16-bit ones
    (12-bit data is often stored in 16-bit PNGs).

    Examples
    --------
    >>> img = load_image("images/case01_pa.dcm")  # doctest: +SKIP
    >>> img.pixels.shape, img.window, img.invert
    ((3000, 2500), (1800.0, 3200.0), False)
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"file not found: {path}") from None
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc}") from None
    if not path.is_file():
        raise ImageError(f"not a regular file: {path}")
    if size == 0:
        raise ImageError("file is empty (0 bytes)")
    try:
        kind = sniff_format(path)
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc}") from None
    if kind is None:
        raise ImageError("not a PNG, JPEG or DICOM file (unrecognised content)")
    if kind == "dicom":
        return _load_dicom(path)
    return _load_raster(path, kind)


def _load_raster(path: Path, kind: str) -> LoadedImage:
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file must fail here, not at display time
            if im.mode.startswith("I"):  # "I;16", "I;16B", "I": 16-bit grayscale PNG
                array = np.asarray(im, dtype=np.float32)
                bits = 16
            else:
                # Colour, palette, alpha or 1-bit files: keep the luminance (ITU-R 601-2).
                gray = im if im.mode == "L" else im.convert("L")
                array = np.asarray(gray, dtype=np.float32)
                bits = 8
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode {kind.upper()} image: {exc}") from None
    if array.ndim != 2:
        raise ImageError(f"expected a 2-D grayscale image, got shape {array.shape}")
    # 8-bit files are shown as stored; 16-bit PNGs often hold 12-bit data, so their
    # default window spans what is actually there.
    window = (127.5, 255.0) if bits == 8 else _range_window(array)
    return LoadedImage(pixels=array, window=window, invert=False, bits_stored=bits, format=kind)


def _range_window(array: np.ndarray) -> tuple[float, float]:
    lo = float(array.min())
    hi = float(array.max())
    width = max(hi - lo, 1.0)
    return (lo + width / 2.0, width)


def _first_value(value) -> float | None:
    """A DICOM number, or the first of several (Window Center/Width list presets)."""
    if value is None:
        return None
    if not isinstance(value, (str, bytes, int, float)):
        try:
            value = value[0]
        except (TypeError, IndexError, KeyError):
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _load_dicom(path: Path) -> LoadedImage:
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # junk bytes make pydicom raise almost anything
        raise ImageError(f"cannot read DICOM file: {exc}") from None
    try:
        has_pixels = "PixelData" in ds
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # force=True reads junk lazily; errors surface on first access
        raise ImageError(f"cannot read DICOM header: {exc}") from None
    if not has_pixels:
        raise ImageError("DICOM file has no pixel data")
    if photometric not in _SUPPORTED_PHOTOMETRIC:
        raise ImageError(f"unsupported DICOM Photometric Interpretation: {photometric or 'missing'}")
    if frames != 1:
        raise ImageError(f"multi-frame DICOM ({frames} frames) is not a radiograph; expected 1 frame")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types (ValueError, RuntimeError, NotImplementedError...)
        raise ImageError(f"cannot decode DICOM pixel data: {exc}") from None
    if stored.ndim == 3 and stored.shape[-1] == 3:
        # Colour-encoded radiographs (rare: screen captures). pydicom has already turned
        # YBR into RGB; keep the luminance only.
        stored = stored.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if stored.ndim != 2:
        raise ImageError(f"expected a 2-D DICOM image, got shape {stored.shape}")

    try:
        pixels = _apply_modality(stored, ds)
        bits = int(ds.get("BitsStored", stored.dtype.itemsize * 8) or 8)
    except Exception as exc:  # a malformed Modality LUT or rescale value
        raise ImageError(f"cannot apply the DICOM modality transform: {exc}") from None

    voi_lut = None
    center = width = None
    try:
        if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
            voi_lut = _voi_lut_table(ds)
        center = _first_value(ds.get("WindowCenter"))
        width = _first_value(ds.get("WindowWidth"))
    except Exception:  # an unreadable window is no reason to refuse the image: use its range
        pass
    if center is not None and width is not None and width >= 1:
        window = (center, width)
    elif voi_lut is not None:
        first, table = voi_lut
        window = (first + len(table) / 2.0, float(len(table)))
    else:
        window = _range_window(pixels)
    return LoadedImage(
        pixels=pixels,
        window=(float(window[0]), float(window[1])),
        invert=photometric == "MONOCHROME1",
        bits_stored=bits,
        format="dicom",
        voi_lut=voi_lut,
    )


def _apply_modality(stored: np.ndarray, ds) -> np.ndarray:
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    # Plain rescale done in float32 in place: pydicom's float64 path costs twice the
    # memory and time on a 2500 x 3000 film, and float32 holds every 16-bit value exactly.
    slope = _first_value(ds.get("RescaleSlope"))
    intercept = _first_value(ds.get("RescaleIntercept"))
    pixels = stored.astype(np.float32)
    if slope is not None and slope != 1.0:
        pixels *= np.float32(slope)
    if intercept is not None and intercept != 0.0:
        pixels += np.float32(intercept)
    return pixels


def _voi_lut_table(ds) -> tuple[float, np.ndarray] | None:
    """Turn the first VOI LUT into (first input value, table scaled to 0..1).

    Read here rather than through :func:`pydicom.pixels.apply_voi_lut`: pydicom 3.0
    indexes an 8-bit LUT with 8-bit indices, so inputs past 255 wrap around.
    """
    item = ds.VOILUTSequence[0]
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        entries = descriptor[0] or 65536
        first = descriptor[1]
        if first >= 32768 and int(ds.get("PixelRepresentation", 0)) == 1:
            first -= 65536  # descriptor value stored as unsigned, meant as signed
        out_bits = descriptor[2]
        data = item["LUTData"].value
        if isinstance(data, (bytes, bytearray)):
            # OW data follows the transfer syntax's byte order; almost always little endian.
            big_endian = getattr(ds, "original_encoding", (None, True))[1] is False
            table = np.frombuffer(data[: len(data) // 2 * 2], dtype=">u2" if big_endian else "<u2")
        else:
            table = np.asarray(list(data) if not np.isscalar(data) else [data], dtype=np.float64)
        table = np.asarray(table[:entries], dtype=np.float32)
    except Exception:  # a malformed LUT falls back to the window, it does not make the image unreadable
        return None
    if table.size < 2 or out_bits < 1 or out_bits > 16:
        return None
    return float(first), np.clip(table / np.float32(2**out_bits - 1), 0.0, 1.0)


def downscale(image: LoadedImage, max_size: tuple[int, int]) -> LoadedImage:
    """Return a copy of ``image`` shrunk to fit inside ``max_size``, still in modality units.

    Parameters
    ----------
    image : LoadedImage
        The full-resolution image.
    max_size : tuple of int
        ``(max_width, max_height)`` in pixels.

    Returns
    -------
    LoadedImage
        The same image when it already fits; otherwise a resampled copy (box reduction
        to about twice the target, then Lanczos) that keeps the aspect ratio. A display
        cache can hold this copy and re-window it in a few milliseconds.
    """
    target = _fit(image.width, image.height, max_size)
    if target == (image.width, image.height):
        return image
    im = Image.fromarray(np.ascontiguousarray(image.pixels, dtype=np.float32))
    im = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return replace(image, pixels=np.asarray(im, dtype=np.float32))


def _fit(width: int, height: int, max_size: tuple[int, int] | None) -> tuple[int, int]:
    if max_size is None:
        return width, height
    max_w, max_h = int(max_size[0]), int(max_size[1])
    if max_w < 1 or max_h < 1:
        raise ValueError(f"max_size must be positive, got {max_size!r}")
    scale = min(max_w / width, max_h / height, 1.0)
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def render(
    image: LoadedImage,
    *,
    max_size: tuple[int, int] | None = None,
    window: tuple[float, float] | None = None,
    invert: bool = False,
) -> Image.Image:
    """Render a loaded radiograph as an 8-bit grayscale picture for display.

    Parameters
    ----------
    image : LoadedImage
        From :func:`load_image` (or :func:`downscale`).
    max_size : tuple of int, optional
        ``(max_width, max_height)``; the picture is shrunk to fit, keeping the aspect
        ratio, never enlarged. None keeps the full resolution.
    window : tuple of float, optional
        ``(center, width)`` in modality units. None uses the file's VOI LUT if it has
        one, else ``image.window``.
    invert : bool, default False
        Invert on top of the image's own polarity (a reader's "invert" toggle);
        MONOCHROME1 images are always shown with bone white.

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"``.

    Notes
    -----
    Linear window as in DICOM PS3.3 C.11.2.1.2 (LINEAR): values below
    ``c - 0.5 - (w - 1) / 2`` map to 0, above ``c - 0.5 + (w - 1) / 2`` to 255, linearly
    between. The image is downscaled in modality units before windowing so that a window
    change on a cached display-size image costs milliseconds.
    """
    if max_size is not None:
        image = downscale(image, max_size)
    pixels = image.pixels
    if window is None and image.voi_lut is not None:
        first, table = image.voi_lut
        index = np.clip(np.rint(pixels - np.float32(first)), 0, len(table) - 1).astype(np.intp)
        scaled = table[index] * np.float32(255.0)
    else:
        center, width = window if window is not None else image.window
        center = float(center)
        width = float(width)
        if not np.isfinite(center) or not np.isfinite(width) or width <= 0:
            raise ValueError(f"window must be finite with a positive width, got {(center, width)!r}")
        width = max(width, 1.0)
        low = center - 0.5 - (width - 1.0) / 2.0
        span = max(width - 1.0, 1e-6)
        scaled = pixels - np.float32(low)
        scaled *= np.float32(255.0 / span)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    if image.invert != bool(invert):
        np.subtract(np.float32(255.0), scaled, out=scaled)
    out = np.rint(scaled).astype(np.uint8)
    return Image.fromarray(out)


def render_png(path: str | Path, max_size: tuple[int, int] | None = (1024, 1280)) -> bytes:
    """Load, window, downscale and encode one image as PNG bytes (lossless).

    Parameters
    ----------
    path : str or Path
        PNG, JPEG or DICOM file.
    max_size : tuple of int or None, default (1024, 1280)
        ``(max_width, max_height)`` of the output; None keeps the full resolution.

    Returns
    -------
    bytes
        An 8-bit grayscale PNG in the file's default window. Used both for the
        viewer and as the model's input picture, so both see the same pixels.

    Raises
    ------
    ImageError
        When the file cannot be decoded.
    """
    picture = render(load_image(path), max_size=max_size)
    buffer = io.BytesIO()
    # Level 1: the PNG is ~10% larger than at level 6 but encodes several times faster,
    # and first-view time is what the reader waits for.
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def probe_image(path: str | Path) -> tuple[str, int, int]:
    """Read an image's format and size from its header, without decoding the pixels.

    Parameters
    ----------
    path : str or Path
        PNG, JPEG or DICOM file.

    Returns
    -------
    tuple
        ``(format, width, height)``.

    Raises
    ------
    ImageError
        When the header cannot be read. A readable header does not prove the pixels
        decode: :func:`load_image` does that.
    """
    path = Path(path)
    try:
        kind = sniff_format(path)
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc}") from None
    if kind is None:
        raise ImageError("not a PNG, JPEG or DICOM file (unrecognised content)")
    if kind == "dicom":
        import pydicom

        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            return kind, int(ds.Columns), int(ds.Rows)
        except Exception as exc:  # junk bytes make pydicom raise almost anything
            raise ImageError(f"cannot read DICOM header: {exc}") from None
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read {kind.upper()} header: {exc}") from None
    return kind, int(width), int(height)
