"""Durable file writes: a temporary `.tmp-` name, fsync, rename, fsync of the directory."""

from __future__ import annotations

import os
from pathlib import Path

TMP_PREFIX = ".tmp-"


def tmp_path(final: Path) -> Path:
    """The temporary name beside `final`; anything starting with `.tmp-` is never a backup."""
    return final.with_name(f"{TMP_PREFIX}{final.name}")


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(final: Path, data: bytes, mode: int = 0o640) -> None:
    """Write `data` to `final` so that a reader sees the old file or the whole new one."""
    tmp = tmp_path(final)
    # the name is predictable and the directory is the lock's: whatever is there (a crash's
    # leftover, or a link planted to have its target overwritten) is removed, never
    # written through, and a file that appears meanwhile makes the write fail (O_EXCL)
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def ensure_dir(directory: Path, mode: int = 0o750) -> Path:
    """Create `directory` (and parents) if missing; return it."""
    directory.mkdir(mode=mode, parents=True, exist_ok=True)
    return directory
