"""The text format written from samples says what prometheus_client's generate_latest says."""

from __future__ import annotations

import math

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from stackmedic.exporter.exposition import TextEncoder, format_value
from stackmedic.exporter.metrics import MetricSpec, Samples, families

UP = MetricSpec("thing_up", "gauge", 'Up, with a "quote", a back\\slash\nand a newline.', ("zone", "name"))
BYTES = MetricSpec("thing_bytes", "gauge", "Bytes.")
SECONDS = MetricSpec("thing_cpu_seconds", "counter", "CPU.", ("mode",))
EMPTY = MetricSpec("thing_never", "gauge", "Never filled.", ("x",))
SPECS = [UP, BYTES, SECONDS, EMPTY]


def one_scrape() -> list[Samples]:
    a, b = Samples(SPECS), Samples(SPECS)
    a.add(UP, 1, "eu", 'odd "name" \\ with\nnewline')
    a.add(UP, 0, "us", "plain")
    a.add(BYTES, 41_000_000_000)
    b.add(SECONDS, 1.56, "user")
    b.add(SECONDS, math.inf, "idle")
    b.add(BYTES, math.nan)
    return [a, b]


class _Registry:
    def __init__(self, fams):
        self.fams = fams

    def collect(self):
        return self.fams


def parsed(text: str) -> list[tuple]:
    out = []
    for family in text_string_to_metric_families(text):
        samples = [(s.name, tuple(sorted(s.labels.items())), repr(s.value)) for s in family.samples]
        out.append((family.name, family.type, family.documentation, samples))
    return out


def test_same_families_as_generate_latest():
    ours = TextEncoder(SPECS).encode(one_scrape()).decode()
    theirs = generate_latest(_Registry(list(families(SPECS, one_scrape())))).decode()
    assert parsed(ours) == parsed(theirs)
    # headers are byte for byte the same, and in the declared order
    assert [line for line in ours.splitlines() if line.startswith("#")] == [
        line for line in theirs.splitlines() if line.startswith("#")
    ]


def test_exact_lines():
    text = TextEncoder(SPECS).encode(one_scrape()).decode()
    assert 'stackmedic_thing_up{name="odd \\"name\\" \\\\ with\\nnewline",zone="eu"} 1.0\n' in text
    assert "# TYPE stackmedic_thing_cpu_seconds_total counter\n" in text
    assert 'stackmedic_thing_cpu_seconds_total{mode="idle"} +Inf\n' in text
    assert "stackmedic_thing_bytes NaN\n" in text
    assert "stackmedic_thing_never" not in text


def test_values():
    assert [format_value(v) for v in (0, 1, 0.25, -math.inf, 12345678901.0)] == [
        "0.0",
        "1.0",
        "0.25",
        "-Inf",
        "12345678901.0",
    ]
