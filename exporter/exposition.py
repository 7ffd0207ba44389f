"""The Prometheus text format (0.0.4), written straight from one scrape's samples.

prometheus_client builds a Metric and a Sample tuple per series and checks every name
again on every scrape; here the names are fixed by the checks' declarations, so each
family's header and each label set's layout are worked out once per spec and the scrape
only escapes label values and formats numbers. The output is what generate_latest writes
for the same families (labels sorted by name, `_total` on counters); OpenMetrics, asked
for by few clients, still goes through prometheus_client (exporter/web.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .metrics import MetricSpec, Samples

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# most samples are flags and counts
_COMMON = {float(i): repr(float(i)) for i in range(16)}


def _escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def format_value(value: float) -> str:
    """A sample value as Prometheus reads it: `1.0`, `+Inf`, `NaN`."""
    value = float(value)
    if value in _COMMON:
        return _COMMON[value]
    if math.isfinite(value):
        return repr(value)
    if value != value:
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


# label sets seen, per family, beyond which the cache of series prefixes starts again (the
# discovered listeners are the only series that come and go)
MAX_CACHED_SERIES = 4096


class _Layout:
    """What is fixed about one family: its header, and each series' `name{labels} ` prefix."""

    __slots__ = ("header", "name", "order", "keys", "prefixes")

    def __init__(self, spec: MetricSpec):
        self.name = spec.full_name
        help_text = spec.help.replace("\\", "\\\\").replace("\n", "\\n")
        self.header = f"# HELP {self.name} {help_text}\n# TYPE {self.name} {spec.kind}\n"
        # label names sorted, as generate_latest writes them; values come in declared order
        self.order = sorted(range(len(spec.labels)), key=lambda i: spec.labels[i])
        self.keys = [f'{spec.labels[i]}="' for i in self.order]
        self.prefixes: dict[tuple[str, ...], str] = {}

    def prefix(self, labels: tuple[str, ...]) -> str:
        """`name{a="x",b="y"} `, made once per label set: the same series come every scrape."""
        found = self.prefixes.get(labels)
        if found is None:
            if not labels:
                found = f"{self.name} "
            else:
                pairs = ",".join(
                    key + _escape_label_value(labels[i]) + '"'
                    for key, i in zip(self.keys, self.order, strict=True)
                )
                found = f"{self.name}{{{pairs}}} "
            if len(self.prefixes) >= MAX_CACHED_SERIES:
                self.prefixes = {}
            self.prefixes[labels] = found
        return found


class TextEncoder:
    """Writes scrapes of one set of specs; the layouts are made once."""

    def __init__(self, specs: Iterable[MetricSpec]):
        self.specs = list(specs)
        self._layouts = {spec: _Layout(spec) for spec in self.specs}

    def encode(self, samples: Iterable[Samples]) -> bytes:
        """One scrape in the text format: families in the specs' order, empty ones left out."""
        grouped: dict[MetricSpec, list[tuple[tuple[str, ...], float]]] = {}
        for s in samples:
            for spec, labels, value in s.items:
                rows = grouped.get(spec)
                if rows is None:
                    rows = grouped[spec] = []
                rows.append((labels, value))
        out: list[str] = []
        for spec in self.specs:
            rows = grouped.get(spec)
            if not rows:
                continue
            layout = self._layouts[spec]
            out.append(layout.header)
            prefixes, common = layout.prefixes, _COMMON
            for labels, value in rows:
                line = prefixes.get(labels) or layout.prefix(labels)
                out.append(f"{line}{common.get(value) or format_value(value)}\n")
        return "".join(out).encode()
