"""The Docker Engine API calls the exporter makes: three read-only GETs, over http.client.

The docker SDK goes through requests, which on every call merges sessions, environment
and adapters before urllib3 does the work; for one list call per scrape that was most of
the containers check's CPU, and the SDK with requests cost about 5 MiB of memory. The
exporter only reads JSON from three endpoints, so the standard library's http.client
talks to the engine directly, over its unix socket or tcp:// / http(s)://, on one
connection kept open between calls (urllib3's pool did the same, for twice the CPU).
Like the SDK, the API version is the engine's own, asked once per connection.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from typing import Any
from urllib.parse import quote, urlsplit

_HEADERS = {"Accept": "application/json"}
# what a kept-alive connection the engine has closed in the meantime raises on reuse
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class DockerError(Exception):
    """The engine answered with an error status, or not with JSON."""


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket."""

    def __init__(self, socket_path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _connection(base_url: str, timeout: float) -> http.client.HTTPConnection:
    if base_url.startswith("unix://"):
        return _UnixConnection(base_url[len("unix://") :], timeout)
    parts = urlsplit("http://" + base_url[len("tcp://") :] if base_url.startswith("tcp://") else base_url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)


class DockerApi:
    """A connection to one engine; `timeout` bounds each call unless the call gives its own."""

    def __init__(self, base_url: str, timeout: float):
        self.base_url = base_url
        self.timeout = timeout
        self._conn = _connection(base_url, timeout)
        self._lock = threading.Lock()  # one request at a time on the one connection
        self._prefix: str | None = None

    def _get(self, path: str, timeout: float | None) -> Any:
        with self._lock:
            status, data = self._request(path, self.timeout if timeout is None else timeout)
        if status != 200:
            raise DockerError(f"GET {path}: HTTP {status}: {data[:200]!r}")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise DockerError(f"GET {path}: not JSON: {exc}") from None

    def _request(self, path: str, timeout: float) -> tuple[int, bytes]:
        conn = self._conn
        conn.timeout = timeout  # for a new connection
        while True:
            reused = conn.sock is not None
            if reused:
                conn.sock.settimeout(timeout)
            try:
                conn.request("GET", path, headers=_HEADERS)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except _STALE:
                conn.close()
                if not reused:
                    raise
                # the engine closed the idle connection since the last call: once more, on a new one
            except BaseException:
                conn.close()  # a timeout or a broken answer: start clean next time
                raise

    def _versioned(self, path: str, timeout: float | None) -> Any:
        if self._prefix is None:
            # the engine's own API version, as the SDK negotiates it: newer engines refuse
            # old versions, and a fixed new one would shut out older engines
            self._prefix = f"/v{self._get('/version', timeout)['ApiVersion']}"
        return self._get(self._prefix + path, timeout)

    def containers(self, timeout: float | None = None) -> list[dict]:
        """Every container, running or not (`docker ps -a`)."""
        return self._versioned("/containers/json?all=1", timeout)

    def inspect(self, container_id: str, timeout: float | None = None) -> dict:
        """One container's details (`docker inspect`)."""
        return self._versioned(f"/containers/{quote(container_id, safe='')}/json", timeout)

    def df(self, timeout: float | None = None) -> dict:
        """Disk use of images, containers and volumes (`docker system df`)."""
        return self._versioned("/system/df", timeout)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def docker_client(base_url: str, timeout: float) -> DockerApi:
    """The engine at `base_url` (unix://, tcp://, http(s)://); nothing is sent yet."""
    return DockerApi(base_url, timeout)
