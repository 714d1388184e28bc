"""Real storage faults for the tests: a small size-limited file system (tmpfs) that fills up, or that is mounted
read-only, when the machine lets the tests mount one (root, or CAP_SYS_ADMIN); SQLite's own limits otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextmanager
def small_disk(folder: Path, size: str = "16m"):
    """A tmpfs of ``size`` mounted on ``folder`` for the block; unmounted on every path (lazily if still busy).

    Skips when this machine does not allow mounting (unless CI is set, where the CI image must allow it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not can_mount():
        _skip_or_fail("mounting a small file system needs root")
    done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder))
    if done.returncode != 0:
        _skip_or_fail(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount_read_only(folder: Path) -> None:
    """Make a mounted ``small_disk`` read-only (nothing may have a file open for writing on it)."""
    done = _mount("-o", "remount,ro", str(folder))
    assert done.returncode == 0, done.stderr


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill ``folder``'s file system up to ``leave_bytes`` free; returns the filler file (delete it to free)."""
    filler = folder / "filler.bin"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize - leave_bytes
    with open(filler, "ab") as out:
        chunk = b"\0" * (1024 * 1024)
        while free > 0:
            try:
                out.write(chunk[: min(len(chunk), free)])
                out.flush()
            except OSError:
                break
            free -= len(chunk)
    return filler


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)
