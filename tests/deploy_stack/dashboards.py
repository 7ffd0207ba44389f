"""Reading the Grafana dashboards as Grafana would: panels (rows' children too), queries,
variables, and the substitution of Grafana's own macros before a query reaches Prometheus.

Grafana rewrites a query before sending it; Prometheus alone does not know these macros,
so the tests replace them with what Grafana would send for a 1-hour range and a 15 s
data-source interval (deploy/grafana/provisioning: timeInterval 15s):

    $__rate_interval -> 1m    (max(4 x 15 s, interval + scrape interval))
    $__interval      -> 15s
    $__range         -> 1h
    $name / ${name}  -> the variable's value (a regex of all values for multi-value ones)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))

MACROS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: dict
    ref: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.panel['title']}/{self.ref}"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def all_dashboards() -> dict[str, dict]:
    return {path.stem: load(path) for path in DASHBOARD_FILES}


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(name: str, dashboard: dict) -> Iterator[Query]:
    for panel in panels(dashboard):
        for t in panel.get("targets", []):
            yield Query(name, panel, t["refId"], t["expr"])


def annotation_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("expr"):
            yield a["name"], a["expr"]


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana macros and `values` of variables ($name, ${name}, [[name]])."""
    merged = {**MACROS, **values}

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in merged:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        return merged[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def label_values_query(definition: str) -> tuple[str, str]:
    """`label_values(selector, label)` -> (selector, label)."""
    m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", definition, re.S)
    if not m:
        raise ValueError(f"not a label_values() query: {definition!r}")
    return m.group(1), m.group(2)


METRIC = re.compile(r"\b(stackmedic_[a-z0-9_]+)\b")
