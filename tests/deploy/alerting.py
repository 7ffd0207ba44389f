"""A webhook that records what a real Alertmanager posts, and helpers to feed it alerts."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from harness.services import Alertmanager


class Hook:
    """A webhook receiver on 127.0.0.1: records every post with its arrival time.

    Paths in `not_found` answer 404 (a webhook URL with a wrong path) and record nothing.
    """

    def __init__(self, not_found: tuple[str, ...] = ()) -> None:
        self.posts: list[dict[str, Any]] = []
        self.refused = 0
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path in not_found:
                    with hook.lock:
                        hook.refused += 1
                    self.send_error(404)
                    return
                with hook.lock:
                    hook.posts.append(
                        {
                            "at": time.time(),
                            "auth": self.headers.get("Authorization"),
                            "path": self.path,
                            "body": body,
                        }
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(
        self, alertname: str, status: str = "firing", path: str | None = None
    ) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, alert) of every delivered alert with that name and status (and path)."""
        with self.lock:
            return [
                (p["at"], a)
                for p in self.posts
                for a in p["body"]["alerts"]
                if a["labels"]["alertname"] == alertname
                and a["status"] == status
                and (path is None or p["path"] == path)
            ]

    def groups(self, path: str) -> list[dict[str, Any]]:
        """The bodies posted to `path`: one per notification (a group of alerts)."""
        with self.lock:
            return [p["body"] for p in self.posts if p["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def post_alerts(am: Alertmanager, *alerts: dict[str, str], ends_in: float = 3600) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": labels["alertname"]},
            "startsAt": (now - timedelta(seconds=10)).isoformat(),
            "endsAt": (now + timedelta(seconds=ends_in)).isoformat(),
        }
        for labels in alerts
    ]
    response = requests.post(f"{am.url}/api/v2/alerts", json=body, timeout=5)
    assert response.status_code == 200, response.text


def state_of(am: Alertmanager, alertname: str) -> dict[str, Any] | None:
    for alert in am.alerts():
        if alert["labels"]["alertname"] == alertname:
            return alert["status"]
    return None
