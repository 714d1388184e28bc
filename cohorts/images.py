"""Decode chest radiographs (PNG, JPEG, DICOM) into modality units and render them for display."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
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
# Colour encodings pydicom's decoders hand back as RGB (YBR by colour conversion, the JPEG 2000 RCT/ICT by the
# codec's inverse transform, PALETTE COLOR through its lookup table below); the radiograph keeps the luminance.
_SUPPORTED_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420",
                          "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}
# How a data set read without file meta was encoded, as its transfer syntax: (implicit VR, little endian) -> UID.
_UNCOMPRESSED_SYNTAX = {(True, True): "1.2.840.10008.1.2", (False, True): "1.2.840.10008.1.2.1",
                        (False, False): "1.2.840.10008.1.2.2"}


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
    notes : tuple of str
        What the decoder warned about while reading the file (pydicom's warnings and log
        messages, e.g. "The pixel data is 8320 bytes long..."), when the caller asked for
        them (``load_image(..., notes=[])``); the image was decoded all the same.
    """

    pixels: np.ndarray
    window: tuple[float, float]
    invert: bool
    bits_stored: int
    format: str
    voi_lut: tuple[float, np.ndarray] | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()

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
    extension is ``.dcm``/``.dicom``/``.dic`` (some old exports omit the preamble, or the
    whole file meta): :func:`load_image` then reads the data set itself and takes the
    transfer syntax from how it is encoded.
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


def load_image(path: str | Path, *, notes: list[str] | None = None) -> LoadedImage:
    """Decode a PNG, JPEG or DICOM radiograph into modality units.

    Parameters
    ----------
    path : str or Path
        The image file. The format is found from the content (see :func:`sniff_format`).
    notes : list of str, optional
        When given, what the DICOM decoder warns about (pydicom's warnings and log
        messages) is appended here and to ``LoadedImage.notes`` instead of reaching the
        terminal; validation puts them in its report. Without it they go wherever the
        process sends warnings (the server's log).

    Returns
    -------
    LoadedImage
        The pixels as a 2-D float32 array plus the default window, MONOCHROME1 flag,
        bits stored and format.

    Raises
    ------
    ImageError
        When the file is missing, empty, of an unknown format, truncated or corrupt,
        multi-frame, an object without an image (an SR, an RT plan, a DICOMDIR), in a
        compression no installed plugin decodes, or not a grayscale/colour image. The
        message says which.

    Notes
    -----
    DICOM files are read with pydicom, also without the preamble or the file meta (the
    transfer syntax is then the encoding the data set is in); compressed transfer syntaxes
    are decoded by pydicom's pixel-data plugins: pylibjpeg with its libjpeg (JPEG baseline,
    extended 12-bit, lossless, JPEG-LS), openjpeg (JPEG 2000) and RLE plugins, which are
    dependencies of this package, and Pillow. Colour encodings (RGB, YBR, PALETTE COLOR)
    keep the luminance. DICOM: the Modality LUT is applied first (``value * RescaleSlope + RescaleIntercept``,
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
        if notes is None:
            return _load_dicom(path)
        heard: list[str] = []
        try:
            with _decoder_messages(heard):
                image = _load_dicom(path)
        finally:
            notes.extend(heard)
        return replace(image, notes=tuple(heard))
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


@contextlib.contextmanager
def _decoder_messages(heard: list[str]):
    """Collect pydicom's warnings and log messages (and its plugins') into ``heard`` instead of the terminal.

    ``warnings.catch_warnings`` swaps process-wide state, so a warning another thread raises meanwhile may land
    here too; validation decodes one image at a time, and the server's viewer does not ask for notes.
    """
    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(f"{record.name}: {record.getMessage()}")

    logger = logging.getLogger("pydicom")
    handler, propagate = Collect(level=logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                for w in caught:
                    if not issubclass(w.category, DeprecationWarning):
                        heard.append(f"pydicom: {w.message}")
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        # The same message raised for every frame or element says nothing more the second time.
        heard[:] = list(dict.fromkeys(heard))


def _read_dicom(path: Path, *, header_only: bool = False):
    """Read a DICOM data set, with or without preamble and file meta; refuse what is no image, naming it.

    ``header_only`` defers the large values (the pixel data) instead of reading them: the header's facts are
    there, and whether the file has pixel data at all, without reading a 30 MB film.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, defer_size="64 KB" if header_only else None)
    except Exception as exc:  # junk bytes make pydicom raise almost anything
        raise ImageError(f"cannot read DICOM file: {exc}") from None
    try:
        # force=True reads junk lazily; errors surface on first access, so touch every top-level element now.
        keywords = {element.keyword for element in ds}
        has_pixels = "PixelData" in ds
        what = _object_name(ds, keywords)
    except Exception as exc:
        raise ImageError(f"cannot read DICOM header: {exc}") from None
    if not keywords - {""}:
        raise ImageError("not a DICOM data set (no standard element could be read)")
    if not has_pixels:
        raise ImageError(f"{what} has no image (no Pixel Data element)" + (
            ": a DICOMDIR lists other files; name the image files themselves" if "DirectoryRecordSequence" in keywords
            else ""))
    missing = [k for k in ("Rows", "Columns") if k not in keywords]
    if missing:
        raise ImageError(f"{what} has pixel data but no {' or '.join(missing)}: the image cannot be laid out")
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        _infer_transfer_syntax(ds)
    return ds


def _object_name(ds, keywords: set[str]) -> str:
    """What a DICOM object is, for messages: "DICOM SR (Comprehensive SR)", "a DICOMDIR", "DICOM RTPLAN ..."."""
    if "DirectoryRecordSequence" in keywords:
        return "a DICOMDIR (media directory)"
    modality = str(ds.get("Modality", "") or "").strip()
    sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    sop_name = ""
    if sop:
        from pydicom.uid import UID

        name = UID(str(sop)).name
        sop_name = name.replace(" Storage", "") if name != str(sop) else str(sop)
    if modality and sop_name:
        return f"DICOM {modality} ({sop_name})"
    return f"DICOM {modality or sop_name or 'file'}".rstrip()


def _infer_transfer_syntax(ds) -> None:
    """A data set without file meta (no preamble, or no Transfer Syntax UID): name the encoding it was read in.

    pydicom decodes pixel data by the file meta's transfer syntax and refuses without one ("file_meta has no
    Transfer Syntax UID"). Uncompressed pixel data is in the same encoding as the data set, which pydicom has
    just read; compressed (encapsulated) pixel data would need the syntax the file does not say.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    element = ds["PixelData"] if "PixelData" in ds else None
    if element is not None and element.is_undefined_length:
        raise ImageError("compressed DICOM pixel data in a file without a Transfer Syntax UID (no file meta): "
                         "the compression cannot be known; export the file again with its file meta")
    implicit, little = getattr(ds, "original_encoding", (None, None))
    syntax = _UNCOMPRESSED_SYNTAX.get((bool(implicit), bool(little))) if implicit is not None else None
    if syntax is None:
        raise ImageError("DICOM file without a Transfer Syntax UID whose encoding could not be recognised")
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)


def _load_dicom(path: Path) -> LoadedImage:
    ds = _read_dicom(path)
    try:
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        raw_frames = ds.get("NumberOfFrames", 1)
    except Exception as exc:  # force=True reads junk lazily; errors surface on first access
        raise ImageError(f"cannot read DICOM header: {exc}") from None
    try:
        frames = int(raw_frames or 1)
    except (TypeError, ValueError):
        raise ImageError(f"DICOM Number of Frames is {str(raw_frames)!r}, not a whole number") from None
    if photometric not in _SUPPORTED_PHOTOMETRIC:
        raise ImageError(f"unsupported DICOM Photometric Interpretation: {photometric or 'missing'}")
    if frames != 1:
        raise ImageError(f"multi-frame DICOM ({frames} frames) is not a radiograph; expected 1 frame")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types (ValueError, RuntimeError, NotImplementedError...)
        raise ImageError(f"cannot decode DICOM pixel data: {_decoder_failure(ds, exc)}") from None
    if photometric == "PALETTE COLOR":
        try:
            from pydicom.pixels import apply_color_lut

            stored = apply_color_lut(stored, ds)
        except Exception as exc:  # a palette that is missing or malformed
            raise ImageError(f"DICOM Photometric Interpretation: PALETTE COLOR without a usable palette ({exc})") from None
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


def _decoder_failure(ds, exc: Exception) -> str:
    """Why pixel data did not decode, with what to install when no plugin for its compression is there."""
    message = str(exc).strip()
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "missing dependencies" in message or "no plugins" in message.lower():
        name = syntax.name if syntax is not None else "this transfer syntax"
        # pydicom lists each plugin it could use, one per line: "pylibjpeg - requires pylibjpeg>=2.0 and ...".
        wanted = [line.strip() for line in message.splitlines()[1:] if line.strip()]
        return (f"no installed pixel-data plugin decodes {name}"
                + (f" (pydicom would use: {'; '.join(wanted)})" if wanted else "")
                + "; readerstudy installs pylibjpeg with its libjpeg, openjpeg and rle plugins: install them again "
                  "(pip install --force-reinstall readerstudy)")
    # pydicom lists each plugin's failure on its own line; one line reads better in a report.
    return " ".join(message.split())


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


def probe_image(path: str | Path, *, notes: list[str] | None = None) -> tuple[str, int, int]:
    """Read an image's format and size from its header, without decoding the pixels.

    Parameters
    ----------
    path : str or Path
        PNG, JPEG or DICOM file.
    notes : list of str, optional
        Receives the DICOM reader's warnings instead of the terminal (as :func:`load_image`).

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
        with _decoder_messages(notes) if notes is not None else contextlib.nullcontext():
            ds = _read_dicom(path, header_only=True)
        try:
            return kind, int(ds.Columns), int(ds.Rows)
        except Exception as exc:  # junk bytes make pydicom raise almost anything
            raise ImageError(f"cannot read DICOM header: {exc}") from None
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read {kind.upper()} header: {exc}") from None
    return kind, int(width), int(height)
