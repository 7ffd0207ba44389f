"""How store rows look in the API and on the page: times in RFC 3339, builds nested."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import yaml

from stackmedic.config import redact_url

from . import breaker as breaker_mod
from . import job_result
from .model import Action, Breaker, Pause


def when(ts: float | None) -> str | None:
    """Epoch seconds -> RFC 3339 UTC with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def action(row: Action) -> dict[str, Any]:
    out = {
        "id": row.id,
        "at": when(row.created_at),
        "decision": row.decision,
        "reason": row.reason,
        "status": row.status,
        "alertname": row.alertname,
        "fingerprint": row.fingerprint,
        "starts_at": row.starts_at,
        "rule": row.rule,
        "target": row.target,
        "job": row.job,
        "params": row.params,
        "incident_id": row.incident_id,
        "author": row.author,
        "build": None,
    }
    if row.token:
        build: dict[str, Any] = {
            "action_token": row.token,
            "state": row.state,
            "attempts": row.attempts,
            "queue_item": row.queue_id,
            "number": row.build_number,
            "url": row.build_url,
            "result": row.result,
            "finished_at": when(row.finished_at),
            "error": row.error,
            "ineffective": None if row.ineffective is None else bool(row.ineffective),
            "trial": row.trial,
            # what the job reported (the build's description): for a restore, the backup used,
            # its age, the tables, what was replayed or lost, the rollback point
            "summary": job_result.summary(row.description) or None,
            "report": job_result.parse(row.description),
        }
        out["build"] = build
    return out


def breaker(row: Breaker) -> dict[str, Any]:
    return {
        "key": row.bkey,
        "rule": row.rule,
        "target": row.target,
        "state": row.state,
        "open": breaker_mod.gauge_value(row.state),
        "opened_at": when(row.opened_at),
        "reason": row.reason,
        "consecutive_ineffective": row.ineffective,
        "reset_at": when(row.reset_at),
        "trial_action_id": row.trial_action_id,
        "updated_at": when(row.updated_at),
    }


def pause(row: Pause) -> dict[str, Any]:
    return {
        "target": row.target,
        "expires_at": when(row.expires_at),
        "reason": row.reason,
        "created_at": when(row.created_at),
        "author": row.author,
    }


def status(services: Any) -> dict[str, Any]:
    c = services.config
    return {
        "dry_run": services.dry_run,
        "replica": c.store.replica,
        "store": c.store.type,
        # never a password written into the URL: this is shown without login
        "jenkins": redact_url(c.jenkins.url) if c.jenkins else None,
        "rules": [{"name": r.name, "job": r.job, "target": r.config.target} for r in services.rules],
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """receiver/openapi.yaml, the API's description."""
    text = resources.files("receiver").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)
