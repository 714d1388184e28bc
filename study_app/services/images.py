"""Case images for the viewer: decoded once, shrunk to display size, sent as a quick windowed preview and a lossless
16-bit copy, cached, prefetched.

Each view reaches the browser twice. First a **preview**: 8 bits in the view's first window, JPEG (a few hundred
kB for a 2500 x 3000 film, encoded in milliseconds), what the reader sees at once. Then the **full copy**, for
window/level: every modality value mapped to 16 bits (``stored = round((value - offset) * gain)``) and split over
the red (high byte) and green (low byte) channels of a lossless WebP, which Chromium decodes exactly (30% smaller
than the same packing in PNG; see docs/benchmarks.md, P9). The full copy is encoded in the background: the
preview does not wait for it.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from cohorts.images import LoadedImage, downscale, load_image, render, sniff_format
from study_app.services.actors import Actor
from study_app.services.database import Database
from study_app.services.errors import NotFound, ServiceError
from study_app.services.reading import CaseImage, case_image_files, default_window, reader_case
from study_app.store.models import Assignment, Study

# Long side of the display copy: a 2500 x 3000 film becomes about 1700 x 2048, enough to zoom 2x on a
# large monitor, and small enough to decode, window and send quickly.
DISPLAY_MAX = (2048, 2048)
# JPEG quality of the preview: at 90 a 1700 x 2048 chest film is ~420 kB (~0.17 s at 20 Mbit/s) with no visible
# blocking at fit-to-screen size; it is on screen only until the lossless copy arrives.
PREVIEW_QUALITY = 90
# WebP lossless effort: method 1 is within 0.1% of the best size at a third of method 6's time.
FULL_WEBP_METHOD = 1
# A 2500 x 3000 film is about 4.9 MB (preview and full copy); 384 MB keeps the current and next cases of many readers.
MEMORY_CACHE_BYTES = 384 * 2**20
CACHE_DIR_ENV = "READERSTUDY_IMAGE_CACHE"
# Windows a radiologist expects for CT-like (Hounsfield) values; never offered for a radiograph's arbitrary units.
CT_PRESETS = (("lung", "Lung", -600.0, 1500.0), ("mediastinum", "Mediastinum", 40.0, 400.0),
              ("bone", "Bone", 480.0, 2500.0))
# The keys a design may name as its default window (docs/designs.md, [study.desk]); "file" is the file's first.
WINDOW_CHOICES = ("file", "auto", "full", *(key for key, *_ in CT_PRESETS))


@dataclass(frozen=True)
class WindowPreset:
    """A named window: ``key`` (stable, for the design's default and the hotkeys), ``label``, center, width."""

    key: str
    label: str
    center: float
    width: float


@dataclass(frozen=True)
class DisplayMeta:
    """Everything the viewer needs besides the pixels (JSON-safe through :meth:`as_json`).

    Attributes
    ----------
    sha256 : str
        Fingerprint of the source file (the cache key).
    width, height : int
        Size of the display copy in pixels.
    offset, gain : float
        ``value = stored / gain + offset`` turns a packed 16-bit value back into modality units.
    window_center, window_width : float
        The initial window (the design's default resolved for this image), in modality units; the preview
        is drawn in it.
    invert : bool
        True for MONOCHROME1 (low values white).
    presets : tuple of WindowPreset
        The file's own windows first (DICOM Window Center/Width, each pair), then Auto (0.5-99.5th
        percentile), Full range, and Lung / Mediastinum / Bone when the values are CT-like.
    spacing_mm : tuple of float or None
        (row, column) distance between pixel centres **of the display copy**, in mm: the file's Pixel
        Spacing, else its Imager Pixel Spacing, scaled by the downsizing; None when the file gives none.
    spacing_source : str or None
        ``"PixelSpacing"`` or ``"ImagerPixelSpacing"`` (at the detector: not corrected for magnification).
    """

    sha256: str
    width: int
    height: int
    offset: float
    gain: float
    window_center: float
    window_width: float
    invert: bool
    presets: tuple[WindowPreset, ...] = ()
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str | None = None

    def as_json(self) -> dict:
        data = asdict(self)
        data["presets"] = [asdict(p) for p in self.presets]
        data["spacing_mm"] = list(self.spacing_mm) if self.spacing_mm else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> DisplayMeta:
        data = dict(data)
        data["presets"] = tuple(WindowPreset(**p) for p in data.get("presets", ()))
        data["spacing_mm"] = tuple(data["spacing_mm"]) if data.get("spacing_mm") else None
        return cls(**data)


@dataclass(eq=False)
class DisplayImage:
    """One image at display size: its metadata, the preview (JPEG bytes) and the full copy (lossless WebP bytes,
    perhaps still being encoded in the background: :attr:`full` waits for it)."""

    meta: DisplayMeta
    preview: bytes
    _full: Future = field(repr=False)

    @property
    def full(self) -> bytes:
        return self._full.result()

    @property
    def full_ready(self) -> bool:
        return self._full.done()

    @property
    def nbytes(self) -> int:
        return len(self.preview) + (len(self._full.result()) if self._full.done() and not self._full.exception()
                                    else 0)

    def __eq__(self, other) -> bool:
        return (isinstance(other, DisplayImage) and self.meta == other.meta and self.preview == other.preview
                and self.full == other.full)


def _done(value: bytes) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def pack_values(pixels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Modality values to 16-bit stored values.

    Returns
    -------
    stored : numpy.ndarray
        uint16, ``round((value - offset) * gain)``.
    offset, gain : float
        ``value = stored / gain + offset``; ``gain`` is 1 when the value range fits in 16 bits, so integer
        data (8- to 16-bit radiographs) round-trips exactly.
    """
    finite = np.nan_to_num(pixels.astype(np.float64, copy=False))
    low, high = float(finite.min()), float(finite.max())
    span = high - low
    gain = 1.0 if span <= 65535 else 65535.0 / span
    stored = np.clip(np.rint((finite - low) * gain), 0, 65535).astype(np.uint16)
    return stored, low, gain


def _packed_rgb(stored: np.ndarray) -> PILImage.Image:
    rgb = np.zeros((*stored.shape, 3), dtype=np.uint8)
    rgb[..., 0] = stored >> 8
    rgb[..., 1] = stored & 0xFF
    return PILImage.fromarray(rgb, mode="RGB")


def encode_packed(stored: np.ndarray, fmt: str = "webp") -> bytes:
    """16-bit stored values as a lossless RGB image (red: high byte, green: low byte, blue: 0).

    ``fmt`` is ``"webp"`` (what the viewer gets) or ``"png"`` (the earlier transport, kept for comparison).
    """
    buffer = io.BytesIO()
    if fmt == "webp":
        _packed_rgb(stored).save(buffer, format="WEBP", lossless=True, quality=0, method=FULL_WEBP_METHOD)
    elif fmt == "png":
        _packed_rgb(stored).save(buffer, format="PNG", compress_level=1)
    else:
        raise ValueError(f"unknown packed format {fmt!r}")
    return buffer.getvalue()


def pack_display_image(pixels: np.ndarray, fmt: str = "webp") -> tuple[bytes, float, float]:
    """Pack modality values into a lossless image (16 bits over R and G): ``(bytes, offset, gain)``."""
    stored, offset, gain = pack_values(pixels)
    return encode_packed(stored, fmt), offset, gain


def unpack_display_image(data: bytes, offset: float, gain: float) -> np.ndarray:
    """Inverse of :func:`pack_display_image` (what the browser does), for tests and checks."""
    rgb = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint16)
    stored = (rgb[..., 0] << 8) | rgb[..., 1]
    return stored.astype(np.float64) / gain + offset


@dataclass(frozen=True)
class HeaderFacts:
    """What the viewer needs from a DICOM header that the decoded image does not carry."""

    windows: tuple[tuple[float, float, str], ...] = ()  # (center, width, explanation) of every pair
    spacing_mm: tuple[float, float] | None = None      # (row, column), of the stored pixels
    spacing_source: str | None = None
    modality: str = ""
    rows: int | None = None
    columns: int | None = None


def _numbers(value) -> list[float]:
    if value is None:
        return []
    # pydicom gives a MultiValue for several numbers and a number (DSfloat, IS) for one.
    items = [value] if isinstance(value, (str, bytes, int, float)) else list(value)
    out = []
    for item in items:
        try:
            number = float(item)
        except (TypeError, ValueError):
            continue
        if np.isfinite(number):
            out.append(number)
    return out


def header_facts(path: str | Path) -> HeaderFacts:
    """Windows, pixel spacing and modality from a DICOM file's header (nothing for PNG/JPEG, nothing on junk).

    Read here, beside :func:`cohorts.images.load_image` (which keeps the first window only and no spacing), by
    a header-only read: a few milliseconds, no pixel data.
    """
    try:
        if sniff_format(path) != "dicom":
            return HeaderFacts()
        import pydicom

        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        centers, widths = _numbers(ds.get("WindowCenter")), _numbers(ds.get("WindowWidth"))
        explanations = ds.get("WindowCenterWidthExplanation")
        if isinstance(explanations, str) or explanations is None:
            explanations = [explanations] if explanations else []
        windows = tuple((c, w, str(explanations[i]).strip() if i < len(explanations) else "")
                        for i, (c, w) in enumerate(zip(centers, widths)) if w >= 1)
        spacing, source = None, None
        for name in ("PixelSpacing", "ImagerPixelSpacing"):
            values = _numbers(ds.get(name))
            if len(values) >= 2 and all(0 < v < 10 for v in values[:2]):
                spacing, source = (values[0], values[1]), name
                break
        rows, columns = ds.get("Rows"), ds.get("Columns")
        return HeaderFacts(windows, spacing, source, str(ds.get("Modality", "") or "").upper(),
                           int(rows) if rows else None, int(columns) if columns else None)
    except Exception:  # an unreadable header costs the extras, never the image (load_image judges the file)
        return HeaderFacts()


def window_presets(loaded: LoadedImage, facts: HeaderFacts) -> tuple[WindowPreset, ...]:
    """The windows offered for an image, the file's own first (see :class:`DisplayMeta`)."""
    presets = []
    own = facts.windows or ((*loaded.window, ""),)
    for i, (center, width, explanation) in enumerate(own):
        key = "file" if i == 0 else f"file{i + 1}"
        label = explanation or ("Default" if len(own) == 1 else f"File window {i + 1}")
        presets.append(WindowPreset(key, label, float(center), float(max(width, 1.0))))
    sample = loaded.pixels[::4, ::4]
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    presets.append(WindowPreset("auto", "Auto", (low + high) / 2, max(high - low, 1.0)))
    vmin, vmax = float(loaded.pixels.min()), float(loaded.pixels.max())
    presets.append(WindowPreset("full", "Full range", (vmin + vmax) / 2, max(vmax - vmin, 1.0)))
    if facts.modality == "CT" or (-1200 <= vmin <= -800 and vmax <= 4000):
        presets += [WindowPreset(key, label, c, w) for key, label, c, w in CT_PRESETS]
    return tuple(presets)


def choose_window(presets: tuple[WindowPreset, ...], choice: str) -> WindowPreset:
    """The design's default window for this image; the file's first when the image has no such preset."""
    return next((p for p in presets if p.key == choice), presets[0])


def prepare_display(path: str | Path, sha256: str, max_size: tuple[int, int] = DISPLAY_MAX,
                    window: str = "file", encoder: ThreadPoolExecutor | None = None) -> DisplayImage:
    """Decode, downscale, window the preview now; encode the full copy on ``encoder`` (or now, without one)."""
    original = load_image(path)
    facts = header_facts(path)
    loaded = downscale(original, max_size)
    stored, offset, gain = pack_values(loaded.pixels)
    presets = window_presets(loaded, facts)
    start = choose_window(presets, window)
    buffer = io.BytesIO()
    render(loaded, window=(start.center, start.width)).save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    spacing = None
    if facts.spacing_mm is not None:
        # The display copy's pixels are bigger than the file's by the downsizing factor.
        rows, columns = facts.rows or original.height, facts.columns or original.width
        spacing = (facts.spacing_mm[0] * rows / loaded.height, facts.spacing_mm[1] * columns / loaded.width)
    meta = DisplayMeta(
        sha256=sha256, width=loaded.width, height=loaded.height, offset=offset, gain=gain,
        window_center=float(start.center), window_width=float(start.width), invert=bool(loaded.invert),
        presets=presets, spacing_mm=spacing, spacing_source=facts.spacing_source if spacing else None,
    )
    full = encoder.submit(encode_packed, stored) if encoder is not None else _done(encode_packed(stored))
    return DisplayImage(meta, buffer.getvalue(), full)


class DisplayCache:
    """Display copies kept in memory (LRU) and, when a folder is given, on disk across restarts."""

    def __init__(self, directory: str | Path | None = None, max_bytes: int = MEMORY_CACHE_BYTES) -> None:
        self.directory = Path(directory) if directory else None
        self.max_bytes = max_bytes
        self._bytes = 0
        self._memory: OrderedDict[str, DisplayImage] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def _key(self, sha256: str, max_size: tuple[int, int], window: str = "file") -> str:
        # The preview is drawn in the study's default window, so that is part of the key.
        return f"{sha256}-{max_size[0]}x{max_size[1]}-{window}"

    def in_memory(self, sha256: str, max_size: tuple[int, int] = DISPLAY_MAX, window: str = "file"
                  ) -> DisplayImage | None:
        """The display copy when it is in memory already (nothing read or prepared), else None."""
        key = self._key(sha256, max_size, window)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
            return hit

    def get(self, path: str | Path, sha256: str, max_size: tuple[int, int] = DISPLAY_MAX,
            window: str = "file") -> DisplayImage:
        """The display copy of one file, prepared on first use; concurrent callers wait for one preparation.

        Returns as soon as the preview is ready; the full copy may still be encoding (``.full`` waits).
        """
        hit = self.in_memory(sha256, max_size, window)
        if hit is not None:
            return hit
        key = self._key(sha256, max_size, window)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._memory.get(key)
            if hit is None:
                hit = self._from_disk(key) or self._prepare(path, sha256, max_size, window, key)
            with self._lock:
                if key not in self._memory:
                    self._memory[key] = hit
                    self._account(key, hit)
                self._memory.move_to_end(key)
                self._key_locks.pop(key, None)
        if not hit.full_ready:
            hit._full.add_done_callback(lambda _f, key=key, hit=hit: self._full_done(key, hit))
        return hit

    def _account(self, key: str, image: DisplayImage) -> None:
        """(Under the lock.) Count an entry's bytes and drop the least recently used ones over the bound."""
        self._bytes += image.nbytes - self._sizes.get(key, 0)
        self._sizes[key] = image.nbytes
        # Least recently used first; the most recent entry always stays.
        while self._bytes > self.max_bytes and len(self._memory) > 1:
            dropped, _ = self._memory.popitem(last=False)
            self._bytes -= self._sizes.pop(dropped, 0)

    def _full_done(self, key: str, image: DisplayImage) -> None:
        with self._lock:
            if self._memory.get(key) is image:
                self._account(key, image)

    def _paths(self, key: str) -> dict[str, Path]:
        return {suffix: self.directory / f"{key}{suffix}" for suffix in (".jpg", ".webp", ".json")}

    def _from_disk(self, key: str) -> DisplayImage | None:
        if self.directory is None:
            return None
        paths = self._paths(key)
        if not all(p.is_file() for p in paths.values()):
            return None
        try:
            meta = DisplayMeta.from_json(json.loads(paths[".json"].read_text(encoding="utf-8")))
            return DisplayImage(meta, paths[".jpg"].read_bytes(), _done(paths[".webp"].read_bytes()))
        except (OSError, ValueError, TypeError, KeyError):
            return None  # a damaged cache entry is rebuilt, never trusted

    def _prepare(self, path, sha256: str, max_size: tuple[int, int], window: str, key: str) -> DisplayImage:
        shown = prepare_display(path, sha256, max_size, window, encoder=_encoders)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            paths = self._paths(key)
            # The full copy's file is written last, when it is encoded: an entry counts only once all three exist.
            _write(paths[".jpg"], shown.preview)
            _write(paths[".json"], json.dumps(shown.meta.as_json()).encode("utf-8"))
            shown._full.add_done_callback(
                lambda f: f.exception() is None and _write(paths[".webp"], f.result()))
        return shown

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._sizes.clear()
            self._bytes = 0


def _write(path: Path, payload: bytes) -> None:
    # Write then rename: a crash never leaves a half-written entry under the real name.
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(payload)
    tmp.replace(path)


_default_cache: DisplayCache | None = None
_prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch-images")
# The views of one case are prepared side by side: decoding, resampling and the encoders release the GIL.
_preparers = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="prepare-image")
# The full copies are encoded here, after their previews are out.
_encoders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode-image")


def default_cache() -> DisplayCache:
    """The process-wide cache; on disk under ``$READERSTUDY_IMAGE_CACHE`` when that is set."""
    global _default_cache
    if _default_cache is None:
        _default_cache = DisplayCache(os.environ.get(CACHE_DIR_ENV) or None)
    return _default_cache


def _case_images(db: Database, actor: Actor, case_ref: str) -> tuple[list[CaseImage], str]:
    """The case's images and the study's default window."""
    with db.read() as session:
        # The one access rule of the case page and every beacon: the reader's own case, reading open
        # (a paused or closed study serves no image), and the case open to look at.
        assignment = reader_case(session, actor, case_ref, viewing=True)
        study = session.get(Study, assignment.study_id)
        return case_image_files(session, assignment, study), default_window(study)


def case_display_images(
    db: Database, actor: Actor, case_ref: str, *, cache: DisplayCache | None = None
) -> list[tuple[CaseImage, DisplayImage]]:
    """Every image of a reader's case at display size (previews prepared now if not cached).

    Parameters
    ----------
    db : Database
    actor : Actor
        The signed-in reader; another reader's case raises NotFound.
    case_ref : str
        The reader's reference to the case.
    cache : DisplayCache, optional
        Defaults to the process-wide cache.

    Returns
    -------
    list of (CaseImage, DisplayImage)
        In the case's image order (current views first, priors as the manifest lists them). The full copies
        may still be encoding in the background.
    """
    return display_images(*_case_images(db, actor, case_ref), cache=cache)


def display_images(case_images: list[CaseImage], window: str, *, cache: DisplayCache | None = None
                   ) -> list[tuple[CaseImage, DisplayImage]]:
    """Images already looked up (a case view's ``image_files``, its access checked) at display size, as
    :func:`case_display_images`: the case page's rerun reads the case once (P8)."""
    cache = cache or default_cache()
    shown = [cache.in_memory(image.sha256, window=window) for image in case_images]
    if all(display is not None for display in shown):  # every rerun after the first: no trip to the preparers
        return list(zip(case_images, shown))
    get = lambda image: cache.get(image.path, image.sha256, window=window)  # noqa: E731
    if len(case_images) == 1:
        return [(case_images[0], get(case_images[0]))]
    return list(zip(case_images, _preparers.map(get, case_images)))


IMAGE_KINDS = ("full", "preview")


def case_image_bytes(
    db: Database, actor: Actor, case_ref: str, ordinal: int, kind: str = "full", *,
    cache: DisplayCache | None = None,
) -> bytes:
    """One image of a reader's case: the full copy (lossless WebP) or the preview (JPEG).

    NotFound when the case has no such image.
    """
    if kind not in IMAGE_KINDS:
        raise NotFound("no such image in this case")
    cache = cache or default_cache()
    case_images, window = _case_images(db, actor, case_ref)
    for image in case_images:
        if image.ordinal == ordinal:
            shown = cache.get(image.path, image.sha256, window=window)
            return shown.preview if kind == "preview" else shown.full
    raise NotFound("no such image in this case")


@dataclass(frozen=True)
class CaseAhead:
    """The reader's next case, for the browser to fetch ahead: its reference, its images' places, and the
    background preparation of its display copies (a Future of :func:`display_images`' list)."""

    case_ref: str
    ordinals: list[int]
    prepared: Future


def next_case_ahead(db: Database, actor: Actor, case_ref: str, *, cache: DisplayCache | None = None
                    ) -> CaseAhead | None:
    """The reader's next openable case after this one in worklist order, its images looked up once (with the
    access rule) and prepared in a background thread, so its first view is a cache hit; None at the end.

    Errors of the preparation stay in the Future: a failed prefetch only means the case is prepared when it opens.
    """
    if actor.kind != "reader" or actor.reader_id is None:
        return None
    with db.read() as session:
        current = session.scalars(select(Assignment).where(Assignment.case_ref == case_ref)).first()
        if current is None or current.reader_id != actor.reader_id:
            return None
        following = session.scalars(
            select(Assignment.case_ref)
            .where(Assignment.reader_id == actor.reader_id, Assignment.position > current.position,
                   Assignment.status.in_(("ready", "in_progress")))
            .order_by(Assignment.position)
            .limit(1)
        ).first()
        if following is None:
            return None
        try:
            assignment = reader_case(session, actor, following, viewing=True)
        except ServiceError:
            return None
        study = session.get(Study, assignment.study_id)
        files, window = case_image_files(session, assignment, study), default_window(study)
    prepared = _prefetcher.submit(display_images, files, window, cache=cache)
    return CaseAhead(following, [image.ordinal for image in files], prepared)


def prefetch_case(db: Database, actor: Actor, case_ref: str, *, cache: DisplayCache | None = None) -> Future:
    """Prepare one case's images in a background thread (the case whose instructions the reader is reading)."""
    return _prefetcher.submit(case_display_images, db, actor, case_ref, cache=cache)
