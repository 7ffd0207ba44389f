"""Telling people the breaker opened: a log line at error level and an optional webhook."""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests

from .model import Breaker

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
        thread = threading.Thread(target=self._post, args=(url, event), name="notify", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _post(self, url: str, event: dict[str, Any]) -> None:
        try:
            resp = self.session.post(url, json=event, timeout=self.timeout)
            if resp.status_code >= 300:
                log.error("breaker notification to %s answered HTTP %s", url, resp.status_code)
        except requests.RequestException as exc:
            log.error("breaker notification to %s failed: %s", url, exc)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for notifications under way (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)
