"""How a check declares its metrics, the per-scrape sample buffer, and the families built from it.

Each check module declares the metrics it fills beside the code that fills them
(`HTTP_UP = MetricSpec("http_up", "gauge", ...)`, listed in the check's `metrics`), and
fills them by spec (`out.add(HTTP_UP, 1, "petclinic")`). A `Samples` buffer accepts only
the specs it was made for, with one value per label: a misspelled metric is a NameError,
an undeclared one or a wrong label count raises `MetricError` here instead of vanishing
from the scrape. The collector turns one scrape's samples into fresh metric families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX = "stackmedic_"


class MetricError(ValueError):
    """A check filled a metric it did not declare, or gave the wrong number of labels."""


@dataclass(frozen=True, eq=False)  # compared by identity: one object per declared metric
class MetricSpec:
    """One metric family: name without prefix, type, help text and label names."""

    name: str
    kind: str  # "gauge" or "counter" (counters are named without _total here)
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("gauge", "counter"):
            raise MetricError(f"{self.name}: kind must be gauge or counter, not {self.kind!r}")

    @property
    def full_name(self) -> str:
        return PREFIX + self.name + ("_total" if self.kind == "counter" else "")

    def family(self) -> GaugeMetricFamily | CounterMetricFamily:
        """A fresh, empty family for this metric (prometheus_client, for OpenMetrics and tests)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.kind == "counter":
            return CounterMetricFamily(PREFIX + self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(PREFIX + self.name, self.help, labels=self.labels)


class Samples:
    """Samples of one check in one scrape: (spec, label values, value), checked on the way in."""

    __slots__ = ("_allowed", "items")

    def __init__(self, specs: Iterable[MetricSpec]):
        self._allowed = frozenset(specs)
        self.items: list[tuple[MetricSpec, tuple[str, ...], float]] = []

    def add(self, spec: MetricSpec, value: float, *labels: str) -> None:
        if spec not in self._allowed:
            raise MetricError(f"{spec.full_name} is not declared by this check")
        if len(labels) != len(spec.labels):
            raise MetricError(
                f"{spec.full_name} takes labels ({', '.join(spec.labels)}), got {len(labels)} value(s)"
            )
        self.items.append((spec, labels, value))

    def extend(self, other: Samples) -> None:
        """Take over `other`'s samples (already checked against its own specs)."""
        self.items.extend(other.items)

    def value(self, metric: MetricSpec | str, *labels: str) -> float | None:
        """The value of one sample (by spec or short name), or None; for tests and tools."""
        for spec, lv, v in self.items:
            if (spec is metric or spec.name == metric) and lv == labels:
                return v
        return None


def merge_specs(groups: Iterable[Iterable[MetricSpec]]) -> list[MetricSpec]:
    """The specs of several checks in order, each once; two different specs of one name raise."""
    seen: dict[str, MetricSpec] = {}
    for group in groups:
        for spec in group:
            other = seen.setdefault(spec.name, spec)
            if other is not spec:
                raise MetricError(f"{spec.full_name} is declared twice")
    return list(seen.values())


def families(specs: Iterable[MetricSpec], samples: Iterable[Samples]) -> Iterator[Metric]:
    """Fresh metric families for one scrape, in the order of `specs`, skipping empty ones."""
    grouped: dict[MetricSpec, list[tuple[tuple[str, ...], float]]] = {}
    for s in samples:
        for spec, labels, value in s.items:
            grouped.setdefault(spec, []).append((labels, value))
    for spec in specs:
        rows = grouped.get(spec)
        if not rows:
            continue
        family = spec.family()
        for labels, value in rows:
            family.add_metric(labels, value)
        yield family
