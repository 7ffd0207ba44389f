"""Which receiver rules can no shipped alert match: `--config.check --rules.dir DIR`.

A rule's `match` and `match_re` select alerts by labels that the alerting rule itself sets
(`alertname`, and the static `labels:` such as `remediation: restart`); the target and
parameter labels come from the series and are not checked here. A rule none of whose
alerts sets matching labels is a rule that never fires: say so before it is deployed.
A label value built from a template (`{{ $labels.x }}`) may be anything and matches.
The other way round, an alert that carries `remediation` (Alertmanager routes it to the
receiver) but that no rule matches would be dropped: it is named too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .config import RuleConfig


class RulesDirError(Exception):
    """The rules directory cannot be read as Prometheus rule files."""


ROUTED = "remediation"  # the label that sends an alert to the receiver (deploy/alertmanager)


def alert_labels(directory: str | Path) -> list[dict[str, str]]:
    """Every alerting rule of `*.yml`/`*.yaml` in `directory` as its static labels plus alertname."""
    folder = Path(directory)
    if not folder.is_dir():
        raise RulesDirError(f"--rules.dir {directory}: not a directory")
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    found = []
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RulesDirError(f"{path}: {exc}") from None
        for group in doc.get("groups", []) if isinstance(doc, dict) else []:
            for rule in group.get("rules", []) or []:
                if isinstance(rule, dict) and "alert" in rule:
                    labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
                    found.append({**labels, "alertname": str(rule["alert"])})
    if not found:
        raise RulesDirError(f"--rules.dir {directory}: no alerting rule in {len(files)} file(s)")
    return found


def _fits(value: str | None, test: Any) -> bool:
    if value is None:
        return False
    if "{{" in value:  # templated: decided by the series, may be anything
        return True
    return test(value)


def _matches(rule: RuleConfig, labels: dict[str, str]) -> bool:
    for name, want in rule.match.items():
        if not _fits(labels.get(name), lambda v, want=want: v == want):
            return False
    for name, pattern in rule.match_re.items():
        if not _fits(labels.get(name), lambda v, p=pattern: re.fullmatch(p, v) is not None):
            return False
    return True


def unmatched(rules: Sequence[RuleConfig], directory: str | Path) -> list[tuple[str, str]]:
    """(key path, message) for every rule that no alerting rule in `directory` can match."""
    alerts = alert_labels(directory)
    problems = []
    for i, rule in enumerate(rules):
        if not any(_matches(rule, labels) for labels in alerts):
            wanted = [f'{k}="{v}"' for k, v in rule.match.items()]
            wanted += [f'{k}=~"{v}"' for k, v in rule.match_re.items()]
            problems.append(
                (
                    f"rules[{i}]",
                    f"rule {rule.name!r} matches no alert in {directory}: none sets {', '.join(wanted) or 'any label'}",
                )
            )
    return problems


def unhandled(rules: Sequence[RuleConfig], directory: str | Path) -> list[tuple[str, str]]:
    """(key path, message) for every alert routed to the receiver that no rule matches."""
    problems = []
    for labels in alert_labels(directory):
        if ROUTED not in labels or any(_matches(rule, labels) for rule in rules):
            continue
        problems.append(
            (
                "rules",
                f'alert {labels["alertname"]!r} in {directory} carries {ROUTED}="{labels[ROUTED]}"'
                " but no rule matches it: the receiver would drop it",
            )
        )
    return problems
