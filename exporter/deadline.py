"""The moment a check must be done by, with the clock it is measured on.

A bare float deadline needs every check to read the same clock as the collector that set
it; a `Deadline` carries its clock, so a check only asks how long it has left.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# a socket timeout of 0 means non-blocking, not "already too late": the shortest we hand out
MIN_TIMEOUT = 0.001


class Deadline:
    """A point on a monotonic clock that a check's I/O must not go past."""

    __slots__ = ("at", "clock")

    def __init__(self, at: float, clock: Callable[[], float] = time.monotonic):
        self.at = at
        self.clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, 0 once it has passed."""
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.clock() >= self.at

    def timeout(self, cap: float | None = None) -> float:
        """A timeout for one blocking call: what is left, at most `cap`, never 0."""
        left = self.remaining() if cap is None else min(cap, self.remaining())
        return max(MIN_TIMEOUT, left)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f})"
