"""Progress of long work on stderr, as `pv` shows it: done, total, rate, ETA, at most every 5 s.

Jenkins' console shows stderr as it comes, so a person watching a restore of a big
database sees it move (and can tell a slow load from a hung one). The clock and the
stream come in through the constructor, so a test moves a fake clock instead of waiting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

INTERVAL = 5.0


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_duration(seconds: float) -> str:
    """75 -> '0:01:15'."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Reports `what` done so far (bytes or events) against `total`, every `interval` seconds."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "bytes",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL,
    ):
        self.what = what
        self.total = total
        self.unit = unit
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self.done = 0
        self.started = clock()
        self.last = self.started

    def add(self, amount: int) -> None:
        """Count `amount` more; print a line when `interval` has passed since the last one."""
        self.done += amount
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def finish(self) -> None:
        """A last line, when the work took long enough to have shown progress at all."""
        now = self.clock()
        if now - self.started >= self.interval:
            self._print(now)

    def line(self, now: float | None = None) -> str:
        """'restore petclinic: load 12.0 MiB / 48.0 MiB 25% 2.4 MiB/s ETA 0:00:15'."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        fmt = human_bytes if self.unit == "bytes" else (lambda n: f"{n:.0f} {self.unit}")
        parts = [f"{self.what} {fmt(self.done)}"]
        if self.total:
            parts.append(f"/ {fmt(self.total)} {min(100, 100 * self.done // self.total)}%")
        parts.append(f"{fmt(rate)}/s")
        if self.total and rate > 0:
            parts.append(f"ETA {human_duration((self.total - self.done) / rate)}")
        else:
            parts.append(f"elapsed {human_duration(elapsed)}")
        return " ".join(parts)

    def _print(self, now: float) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.line(now) + "\n")
        stream.flush()
