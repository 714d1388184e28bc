"""Case images for the viewer: decoded once, shrunk to display size, packed losslessly as PNG, cached, prefetched.

The viewer windows in the browser, so the PNG carries modality values, not a rendered picture: each value
is mapped to 16 bits (``stored = round((value - offset) * gain)``) and split over the red (high byte) and
green (low byte) channels of an 8-bit RGB PNG, which every browser decodes exactly.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from cohorts.images import downscale, load_image
from study_app.services.actors import Actor
from study_app.services.database import Database
from study_app.services.errors import NotFound
from study_app.services.reading import reader_case
from study_app.store.models import Assignment, Image, Study

# Long side of the display copy: a 2500 x 3000 film becomes about 1700 x 2048, enough to zoom 2x on a
# large monitor, and small enough to decode, window and send in well under a second.
DISPLAY_MAX = (2048, 2048)
# A 2500 x 3000 film packs to about 6 MB; 384 MB keeps the current and next cases of many readers.
MEMORY_CACHE_BYTES = 384 * 2**20
CACHE_DIR_ENV = "READERSTUDY_IMAGE_CACHE"


@dataclass(frozen=True)
class DisplayImage:
    """One image at display size, packed for the viewer.

    Attributes
    ----------
    sha256 : str
        Fingerprint of the source file (the cache key).
    width, height : int
        Size of the display copy in pixels.
    offset, gain : float
        ``value = stored / gain + offset`` turns a packed 16-bit value back into modality units.
    window_center, window_width : float
        The file's default window (DICOM Window Center/Width, else the value range), in modality units.
    invert : bool
        True for MONOCHROME1 (low values white).
    png : bytes
        The packed RGB PNG.
    """

    sha256: str
    width: int
    height: int
    offset: float
    gain: float
    window_center: float
    window_width: float
    invert: bool
    png: bytes

    def meta(self) -> dict:
        """Everything but the pixels, for the page (JSON-safe)."""
        data = asdict(self)
        data.pop("png")
        return data


def pack_display_image(pixels: np.ndarray) -> tuple[bytes, float, float]:
    """Pack modality values into a lossless RGB PNG (16 bits over R and G).

    Parameters
    ----------
    pixels : numpy.ndarray
        2-D array of modality values.

    Returns
    -------
    png : bytes
        RGB PNG; red holds the high byte, green the low byte, blue is 0.
    offset, gain : float
        ``value = stored / gain + offset``; ``gain`` is 1 when the value range fits in 16 bits, so integer
        data (8- to 16-bit radiographs) round-trips exactly.
    """
    finite = np.nan_to_num(pixels.astype(np.float64, copy=False))
    low, high = float(finite.min()), float(finite.max())
    span = high - low
    gain = 1.0 if span <= 65535 else 65535.0 / span
    stored = np.clip(np.rint((finite - low) * gain), 0, 65535).astype(np.uint16)
    rgb = np.zeros((*stored.shape, 3), dtype=np.uint8)
    rgb[..., 0] = stored >> 8
    rgb[..., 1] = stored & 0xFF
    buffer = io.BytesIO()
    # Level 1: first view is what the reader waits for; a slightly larger file loads faster than it encodes.
    PILImage.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), low, gain


def unpack_display_png(png: bytes, offset: float, gain: float) -> np.ndarray:
    """Inverse of :func:`pack_display_image` (what the browser does), for tests and checks."""
    rgb = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"), dtype=np.uint16)
    stored = (rgb[..., 0] << 8) | rgb[..., 1]
    return stored.astype(np.float64) / gain + offset


class DisplayCache:
    """Display copies kept in memory (LRU) and, when a folder is given, on disk across restarts."""

    def __init__(self, directory: str | Path | None = None, max_bytes: int = MEMORY_CACHE_BYTES) -> None:
        self.directory = Path(directory) if directory else None
        self.max_bytes = max_bytes
        self._bytes = 0
        self._memory: OrderedDict[str, DisplayImage] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def _key(self, sha256: str, max_size: tuple[int, int]) -> str:
        return f"{sha256}-{max_size[0]}x{max_size[1]}"

    def get(self, path: str | Path, sha256: str, max_size: tuple[int, int] = DISPLAY_MAX) -> DisplayImage:
        """The display copy of one file, prepared on first use; concurrent callers wait for one preparation."""
        key = self._key(sha256, max_size)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
                return hit
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._memory.get(key)
            if hit is None:
                hit = self._from_disk(key) or self._prepare(path, sha256, max_size, key)
            with self._lock:
                if key not in self._memory:
                    self._memory[key] = hit
                    self._bytes += len(hit.png)
                self._memory.move_to_end(key)
                # Least recently used first; the entry just added always stays.
                while self._bytes > self.max_bytes and len(self._memory) > 1:
                    _, dropped = self._memory.popitem(last=False)
                    self._bytes -= len(dropped.png)
                self._key_locks.pop(key, None)
        return hit

    def _from_disk(self, key: str) -> DisplayImage | None:
        if self.directory is None:
            return None
        png_path, meta_path = self.directory / f"{key}.png", self.directory / f"{key}.json"
        if not (png_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            return DisplayImage(png=png_path.read_bytes(), **meta)
        except (OSError, ValueError, TypeError):
            return None  # a damaged cache entry is rebuilt, never trusted

    def _prepare(self, path: str | Path, sha256: str, max_size: tuple[int, int], key: str) -> DisplayImage:
        loaded = downscale(load_image(path), max_size)
        png, offset, gain = pack_display_image(loaded.pixels)
        center, width = loaded.window
        shown = DisplayImage(
            sha256=sha256, width=loaded.width, height=loaded.height, offset=offset, gain=gain,
            window_center=float(center), window_width=float(max(width, 1.0)), invert=bool(loaded.invert), png=png,
        )
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Write then rename: a crash never leaves a half-written entry under the real name.
            for suffix, payload in ((".png", png), (".json", json.dumps(shown.meta()).encode("utf-8"))):
                tmp = self.directory / f"{key}{suffix}.tmp{os.getpid()}"
                tmp.write_bytes(payload)
                tmp.replace(self.directory / f"{key}{suffix}")
        return shown

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._bytes = 0


_default_cache: DisplayCache | None = None
_prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch-images")
# The views of one case are prepared side by side: decoding, resampling and zlib release the GIL.
_preparers = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="prepare-image")


def default_cache() -> DisplayCache:
    """The process-wide cache; on disk under ``$READERSTUDY_IMAGE_CACHE`` when that is set."""
    global _default_cache
    if _default_cache is None:
        _default_cache = DisplayCache(os.environ.get(CACHE_DIR_ENV) or None)
    return _default_cache


@dataclass(frozen=True)
class CaseImage:
    """An image of a case as the page lists it (no pixels); ``ordinal`` is its place in the case."""

    ordinal: int
    view: str
    is_prior: bool
    path: str
    sha256: str


def _case_images(db: Database, actor: Actor, case_ref: str) -> list[CaseImage]:
    with db.read() as session:
        # The one access rule of the case page and every beacon: the reader's own case, reading open
        # (a paused or closed study serves no image), and the case open to look at.
        assignment = reader_case(session, actor, case_ref, viewing=True)
        root = Path(session.get(Study, assignment.study_id).cohort_root or ".")
        rows = session.scalars(select(Image).where(Image.case_id == assignment.case_id).order_by(Image.ordinal)).all()
        return [
            CaseImage(row.ordinal, row.view, row.is_prior,
                      row.path if Path(row.path).is_file() else str(root / row.relpath), row.sha256)
            for row in rows
        ]


def case_display_images(
    db: Database, actor: Actor, case_ref: str, *, cache: DisplayCache | None = None
) -> list[tuple[CaseImage, DisplayImage]]:
    """Every image of a reader's case at display size (prepared now if not cached).

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
        In the case's image order (current views first, priors as the manifest lists them).
    """
    cache = cache or default_cache()
    case_images = _case_images(db, actor, case_ref)
    if len(case_images) == 1:
        return [(case_images[0], cache.get(case_images[0].path, case_images[0].sha256))]
    prepared = list(_preparers.map(lambda image: cache.get(image.path, image.sha256), case_images))
    return list(zip(case_images, prepared))


def case_image_png(
    db: Database, actor: Actor, case_ref: str, ordinal: int, *, cache: DisplayCache | None = None
) -> bytes:
    """The packed PNG of one image of a reader's case (NotFound when the case has no such image)."""
    cache = cache or default_cache()
    for image in _case_images(db, actor, case_ref):
        if image.ordinal == ordinal:
            return cache.get(image.path, image.sha256).png
    raise NotFound("no such image in this case")


def next_case_after(db: Database, actor: Actor, case_ref: str) -> str | None:
    """The reader's next openable case after this one in worklist order, or None."""
    if actor.kind != "reader" or actor.reader_id is None:
        return None
    with db.read() as session:
        current = session.scalars(select(Assignment).where(Assignment.case_ref == case_ref)).first()
        if current is None or current.reader_id != actor.reader_id:
            return None
        return session.scalars(
            select(Assignment.case_ref)
            .where(Assignment.reader_id == actor.reader_id, Assignment.position > current.position,
                   Assignment.status.in_(("ready", "in_progress")))
            .order_by(Assignment.position)
            .limit(1)
        ).first()


def prefetch_next_case(
    db: Database, actor: Actor, case_ref: str, *, cache: DisplayCache | None = None
) -> Future | None:
    """Prepare the next case's images in a background thread, so its first view is a cache hit.

    Returns the Future (None when there is no next case); errors stay in the Future, since a failed
    prefetch only means the next case is prepared when it opens.
    """
    following = next_case_after(db, actor, case_ref)
    if following is None:
        return None
    return _prefetcher.submit(case_display_images, db, actor, following, cache=cache)
