"""The lock that backup, verify, restore and prune share: `<backup_dir>/<database>/.lock`.

An advisory `flock` on a file in the backup directory: the kernel drops it when the holder
dies, even by SIGKILL, so a crash never leaves a stale lock. The holder writes who it is
into the file for the message of whoever is refused.

The lock file is truncated and written, so it is opened with `O_NOFOLLOW` and must be a
regular file with one link: a `.lock` planted as a symbolic link (or hard link) to another
file would otherwise have that file emptied. Writing who holds it is best effort: with 0
bytes free the lock still works (prune, which frees space, must run then).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .catalog import LOCK_NAME
from .errors import JobError, Locked

log = logging.getLogger(__name__)


class DirLock:
    """Exclusive lock on a backup directory; waits up to `wait` seconds, then raises Locked."""

    def __init__(
        self,
        directory: Path,
        job: str,
        wait: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = 0.2,
    ):
        self.path = directory / LOCK_NAME
        self.job = job
        self.wait = wait
        self.clock = clock
        self.sleep = sleep
        self.poll = poll
        self._fd: int | None = None

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o640)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise JobError(
                    f"{self.path} is a symbolic link: refusing to use it as the lock (remove it)"
                ) from None
            raise JobError(f"cannot open the lock {self.path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = (
                "not a regular file" if not stat.S_ISREG(st.st_mode) else f"a file with {st.st_nlink} links"
            )
            raise JobError(f"{self.path} is {what}: refusing to use it as the lock (remove it)")
        return fd

    def __enter__(self) -> DirLock:
        fd = self._open()
        deadline = self.clock() + self.wait
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self.clock() >= deadline:
                    holder = self.holder(fd)
                    os.close(fd)
                    waited = f" after waiting {self.wait:g}s" if self.wait else ""
                    raise Locked(f"{self.path.parent} is locked by {holder}{waited}") from None
                if not waiting:
                    waiting = True
                    log.info(
                        "waiting for lock path=%s holder=%r wait_s=%g", self.path, self.holder(fd), self.wait
                    )
                self.sleep(self.poll)
        self._fd = fd
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"job={self.job} pid={os.getpid()} since={since}\n".encode(), 0)
        except OSError as exc:  # ENOSPC, EDQUOT: the flock holds all the same
            log.warning("cannot write who holds the lock path=%s error=%s", self.path, exc.strerror)
        return self

    @staticmethod
    def holder(fd: int) -> str:
        """Who holds the lock, as the holder wrote it (or 'another job')."""
        try:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        return text or "another job"

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
