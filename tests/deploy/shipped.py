"""The shipped alerting files, parsed once, for the tests of tests/deploy/."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
# the example of two Prometheus replicas (docs/receiver.md, HA layout)
HA_CONFIGS = {r: PROMETHEUS_DIR / "ha" / f"prometheus-{r}.yml" for r in ("a", "b")}
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
ALERTING_DOC = REPO / "docs" / "alerting.md"
DESIGN_DOC = REPO / "docs" / "design.md"
JOBS_EXAMPLE = REPO / "examples" / "jobs.yml"
RUNBOOK_BASE = "https://github.com/stackmedic/stackmedic/blob/main/docs/runbooks/"


@dataclass(frozen=True)
class Alert:
    """One alerting rule with the group and file it lives in."""

    file: str
    group: str
    interval: str
    rule: dict[str, Any]

    @property
    def name(self) -> str:
        return self.rule["alert"]

    @property
    def labels(self) -> dict[str, str]:
        return self.rule.get("labels", {})

    @property
    def annotations(self) -> dict[str, str]:
        return self.rule.get("annotations", {})


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[Alert]:
    """Every alerting rule of every shipped rules file."""
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.append(Alert(path.name, group["name"], group.get("interval", ""), rule))
    return out


def markdown_table(text: str, start: str | None = None, end: str | None = None) -> list[dict[str, str]]:
    """Rows of the first Markdown table in `text` (between the markers, when given)."""
    if start is not None:
        text = text.split(start, 1)[1]
    if end is not None:
        text = text.split(end, 1)[0]
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("|"):
            lines.append(line.strip())
        elif lines:
            break
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def design_healing_table() -> list[dict[str, str]]:
    """docs/design.md's "Alerts and what the receiver matches" table."""
    text = DESIGN_DOC.read_text()
    section = text.split("## Alerts and what the receiver matches", 1)[1]
    return [{k.strip("`"): v.replace("`", "") for k, v in row.items()} for row in markdown_table(section)]


def duration_seconds(text: str) -> float:
    """A Prometheus duration in seconds (the forms the shipped files use)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)
