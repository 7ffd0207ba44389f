"""The Docker Engine API calls the exporter makes: three read-only GETs, over urllib3.

The docker SDK goes through requests, which on every call merges sessions, environment
and adapters before urllib3 does the work; for one list call per scrape that was most of
the containers check's CPU, and the SDK with requests cost about 5 MiB of memory. The
exporter only reads JSON from three endpoints, so urllib3 (already used by the HTTP
checks) talks to the engine directly: over its unix socket, or tcp:// / http(s)://.
Like the SDK, the API version is the engine's own, asked once per connection pool.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

_HEADERS = {"Accept": "application/json"}


class DockerError(Exception):
    """The engine answered with an error status, or not with JSON."""


class _UnixConnection(HTTPConnection):
    def __init__(self, socket_path: str, **kwargs: Any):
        super().__init__("localhost", **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        return sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, socket_path: str, **kwargs: Any):
        super().__init__("localhost", **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> HTTPConnection:
        return _UnixConnection(self.socket_path, timeout=self.timeout.connect_timeout)


def _pool(base_url: str, timeout: float) -> HTTPConnectionPool:
    if base_url.startswith("unix://"):
        return _UnixPool(base_url[len("unix://") :], maxsize=1, timeout=timeout)
    url = "http://" + base_url[len("tcp://") :] if base_url.startswith("tcp://") else base_url
    return urllib3.connection_from_url(url, maxsize=1, timeout=timeout)


class DockerApi:
    """A connection to one engine; `timeout` bounds each call unless the call gives its own."""

    def __init__(self, base_url: str, timeout: float):
        self.base_url = base_url
        self._pool = _pool(base_url, timeout)
        self._prefix: str | None = None

    def _get(self, path: str, timeout: float | None) -> Any:
        resp = self._pool.urlopen(
            "GET",
            path,
            headers=_HEADERS,
            timeout=timeout if timeout is not None else self._pool.timeout,
            retries=False,
        )
        if resp.status != 200:
            raise DockerError(f"GET {path}: HTTP {resp.status}: {resp.data[:200]!r}")
        try:
            return json.loads(resp.data)
        except ValueError as exc:
            raise DockerError(f"GET {path}: not JSON: {exc}") from None

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
        self._pool.close()


def docker_client(base_url: str, timeout: float) -> DockerApi:
    """The engine at `base_url` (unix://, tcp://, http(s)://); nothing is sent yet."""
    return DockerApi(base_url, timeout)
