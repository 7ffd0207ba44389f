"""What every check is: a name, a timeout, its metrics, `run` (the real work) and `blank` (all zeros)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples


class Check:
    """One unit of work of a scrape, run in the pool under its own deadline.

    `metrics` declares every metric the check fills (its module defines the specs); the
    samples buffer refuses any other. `run` fills `out` with every configured item; it may
    raise, and the collector then uses `blank`. `blank` must emit the same items with 0
    (or "unknown") values, for when the check timed out, failed or is still running from
    an earlier scrape.
    """

    kind = "check"
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()

    def __init__(self, name: str, timeout: float):
        self.name = name
        self.timeout = timeout

    @classmethod
    def from_section(cls, section: Any) -> list[Check]:
        """The checks of one validated configuration section of this kind."""
        raise NotImplementedError

    @property
    def check_label(self) -> str:
        """The `check` label: the kind, then the item name for per-item checks."""
        return self.kind if self.name == self.kind else f"{self.kind}/{self.name}"

    def samples(self) -> Samples:
        """An empty buffer that takes this check's metrics only."""
        return Samples(self.metrics)

    def run(self, out: Samples, deadline: Deadline) -> None:
        """Do the check; every blocking call is bounded by `deadline.timeout(...)`."""
        raise NotImplementedError

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        """Every item at 0; `reason` is timeout, error or still_running."""
        raise NotImplementedError

    def start(self) -> None:
        """Start background work (docker space refresher); most checks have none."""

    def close(self) -> None:
        """Stop background work and release clients."""
