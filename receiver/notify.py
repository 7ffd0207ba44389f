"""Telling people what the automation did: a log line and an optional webhook (a rule's `notify_url`).

Events: `breaker_open`; `escalated` (critical: an open incident the automation gives up on,
with the target, the attempts and the last build); `performed` and `failed` (a build ended,
with its result and, for a restore, what the job reported in the build's description).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from . import job_result
from .model import Action, Breaker

log = logging.getLogger(__name__)


class Notifier:
    """Posts breaker events as JSON to a rule's `notify_url`, in the background, best effort."""

    def __init__(self, session: requests.Session | None = None, timeout: float = 5.0):
        self.session = session or requests.Session()
        self.timeout = timeout
        self._threads: list[threading.Thread] = []

    def breaker_opened(self, row: Breaker, url: str | None) -> None:
        log.error(
            "breaker opened key=%s rule=%s target=%s reason=%r: no more actions until it is reset",
            row.bkey,
            row.rule,
            row.target,
            row.reason,
        )
        if not url:
            return
        event = {
            "event": "breaker_open",
            "key": row.bkey,
            "rule": row.rule,
            "target": row.target,
            "reason": row.reason,
            "opened_at": row.opened_at,
        }
        self._send(url, event)

    def escalated(self, escalation: Any, url: str | None) -> None:
        """An open incident the automation gives up on: a person must act (logged by the intake)."""
        if not url:
            return
        last = escalation.last
        self._send(
            url,
            {
                "event": "escalated",
                "severity": "critical",
                "rule": escalation.rule,
                "target": escalation.target,
                "alertname": escalation.alertname,
                "incident_id": escalation.incident_id,
                "attempts": escalation.attempts,
                "reason": escalation.reason,
                "last_build": _build(last) if last is not None else None,
            },
        )

    def finished(self, action: Action, url: str | None) -> None:
        """A build ended: `performed` when it succeeded, `failed` otherwise (or when none was made)."""
        ok = action.result == "SUCCESS"
        summary = job_result.summary(action.description)
        log.log(
            logging.INFO if ok else logging.WARNING,
            "remediation %s rule=%s target=%s build=%s result=%s summary=%r",
            "performed" if ok else "failed",
            action.rule,
            action.target,
            action.build_number,
            action.result,
            summary or action.error or "",
        )
        if not url:
            return
        self._send(
            url,
            {
                "event": "performed" if ok else "failed",
                "severity": "info" if ok else "warning",
                "rule": action.rule,
                "target": action.target,
                "action_id": action.id,
                "build": _build(action),
                "summary": summary,
                "result": job_result.parse(action.description),
                "error": action.error,
            },
        )

    def _send(self, url: str, event: dict[str, Any]) -> None:
        thread = threading.Thread(target=self._post, args=(url, event), name="notify", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _post(self, url: str, event: dict[str, Any]) -> None:
        try:
            resp = self.session.post(url, json=event, timeout=self.timeout)
            if resp.status_code >= 300:
                log.error(
                    "notification %s to host=%s answered HTTP %s",
                    event["event"],
                    _host(url),
                    resp.status_code,
                )
        except requests.RequestException as exc:
            # neither the URL nor the exception's text, which repeats it: a chat webhook's
            # path is its secret
            log.error("notification %s to host=%s failed: %s", event["event"], _host(url), type(exc).__name__)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for notifications under way (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)


def _build(action: Action) -> dict[str, Any]:
    return {
        "job": action.job,
        "number": action.build_number,
        "result": action.result,
        "url": action.build_url,
    }


def _host(url: str) -> str:
    """Only the host of a notify_url, for logs."""
    return urlsplit(url).hostname or "?"
