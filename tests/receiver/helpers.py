"""Helpers of the receiver tests: payloads, a fake clock, test configurations, reading the audit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask

from harness.jenkins_standin import JenkinsStandIn

TOKEN = "test-webhook-token"  # noqa: S105 - a throwaway test secret
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOB_PARAMS = {
    "stackmedic-restart": ["SERVICE", "STACKMEDIC_ACTION_ID"],
    "stackmedic-restore": ["DATABASE", "STACKMEDIC_ACTION_ID"],
}
RULES = [
    {
        "name": "restart-app",
        "match": {"remediation": "restart"},
        "job": "stackmedic-restart",
        "target": "compose_service",
        "params": {"SERVICE": "{compose_service}"},
        "allow": {"compose_service": "^[a-z][a-z0-9_-]{0,62}$"},
    },
    {
        "name": "restore-database",
        "match": {"remediation": "restore"},
        "job": "stackmedic-restore",
        "target": "database",
        "params": {"DATABASE": "{database}"},
        "allow": {"database": "^[a-z][a-z0-9_-]{0,62}$"},
    },
]


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def alert(
    service: str = "petclinic",
    status: str = "firing",
    starts_at: str = "2026-01-01T10:00:00Z",
    fingerprint: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One Alertmanager alert of StackAppDown for `service` (remediation=restart)."""
    all_labels = {"alertname": "StackAppDown", "remediation": "restart", "compose_service": service, **labels}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{service} is down"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T10:05:00Z",
        "generatorURL": "http://prometheus/graph",
        # Alertmanager's fingerprints are hex digits whatever the labels hold
        "fingerprint": fingerprint
        or (f"fp-{service}" if re.fullmatch(r"[\w-]{1,64}", service, re.ASCII) else "fp-hostile"),
    }


def notification(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) holding `alerts`."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="StackAppDown"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "stackmedic",
        "groupLabels": {"alertname": "StackAppDown"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **extra,
    }


def receiver_config(
    store_path: Path | str, standin: JenkinsStandIn | None, **overrides: Any
) -> dict[str, Any]:
    """A configuration for tests: fast polling and retries, the two rules; `overrides` replace sections."""
    config: dict[str, Any] = {
        "auth": {"bearer_token_env": "TEST_RECEIVER_TOKEN"},
        "store": {"type": "sqlite", "path": str(store_path), "replica": "test"},
        "dispatcher": {"backoff_initial": 0.05, "backoff_max": 0.2, "max_attempts": 30, "lease": 5},
        "breaker": {
            "cooldown": "5m",
            "max_actions": 3,
            "window": "1h",
            "ineffective_after": "15m",
            "max_ineffective": 0,
        },
        "rules": RULES,
    }
    if standin is not None:
        config["jenkins"] = {
            "url": standin.url,
            "user": standin.user,
            "api_token_env": "TEST_JENKINS_TOKEN",
            "timeout": 1,
            "poll_interval": 0.02,
        }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def actions(app: Flask, **filters: str) -> list[dict[str, Any]]:
    """The app's audit, oldest first."""
    resp = app.test_client().get("/api/v1/actions", query_string={"limit": 1000, **filters})
    assert resp.status_code == 200, resp.data
    return list(reversed(resp.json["actions"]))


def decisions(app: Flask) -> list[str]:
    return [a["decision"] for a in actions(app)]


def settled(app: Flask) -> bool:
    """Every triggered action has reached a final state."""
    return all(
        a["build"]["state"] in ("done", "failed", "cancelled", "lost") for a in actions(app) if a["build"]
    )
