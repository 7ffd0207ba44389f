"""The lock that backup, verify, restore and prune share: `<backup_dir>/<database>/.lock`.

An advisory `flock` on a file in the backup directory: the kernel drops it when the holder
dies, even by SIGKILL, so a crash never leaves a stale lock. The holder writes who it is
into the file for the message of whoever is refused.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .catalog import LOCK_NAME
from .errors import Locked

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

    def __enter__(self) -> DirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        deadline = self.clock() + self.wait
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self.clock() >= deadline:
                    holder = self.holder()
                    os.close(fd)
                    waited = f" after waiting {self.wait:g}s" if self.wait else ""
                    raise Locked(f"{self.path.parent} is locked by {holder}{waited}") from None
                if not waiting:
                    waiting = True
                    log.info(
                        "waiting for lock path=%s holder=%r wait_s=%g", self.path, self.holder(), self.wait
                    )
                self.sleep(self.poll)
        os.ftruncate(fd, 0)
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.pwrite(fd, f"job={self.job} pid={os.getpid()} since={since}\n".encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it (or 'another job')."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        return text or "another job"

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
