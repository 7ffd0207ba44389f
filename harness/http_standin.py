"""What the HTTP stand-ins (jenkins_standin.py, kube_standin.py) share: a threaded server on
127.0.0.1 and its life cycle, every request recorded, and faults on demand.

A stand-in subclasses `HTTPStandIn` and says how a request is recorded (`_call`), which text
the faults' `match` is looked for in (`_where`: the path, or "METHOD /path"), and how it is
answered (`_route`: status, headers, payload). A payload of None is an empty body, a str is
text/plain, anything else JSON. Methods not in `methods` get 501, as `http.server` answers a
method it has no handler for.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

HANG_LIMIT = 120  # seconds a held request waits for release() at most


class Recorded(Protocol):
    """A request as a stand-in saw it; the answer's status is filled in once it is known."""

    status: Any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: HTTPStandIn


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _any(self) -> None:
        if self.command not in self.server.standin.methods:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        self.server.standin._handle(self, self.command)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any


class HTTPStandIn:
    """A stand-in's server: `start`/`stop`, `refuse`/`accept`, `fail`, `hang`/`release`, `delay`, `calls`."""

    methods: tuple[str, ...] = ("GET", "POST")
    json_type = "application/json"

    def __init__(self, port: int = 0):
        self.calls: list[Any] = []
        self._lock = threading.RLock()
        self._fail: tuple[int, str, int | None] | None = None
        self._hang: tuple[str, bool] | None = None
        self._released = threading.Event()
        self._port = port
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        self.delay = 0.0  # every request is answered this many seconds late (a slow server)

    # life cycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> Self:
        self.accept()
        return self

    def stop(self) -> None:
        self.release()
        self.refuse()
        for t in self._threads:
            t.join(10)

    def refuse(self) -> None:
        """Close the listening socket: connections are refused until accept()."""
        server, self._server = self._server, None
        if server:
            server.shutdown()
            server.server_close()

    def accept(self) -> None:
        """Listen (again, on the same port)."""
        if self._server:
            return
        server = Server(("127.0.0.1", self._port), Handler)
        server.standin = self
        self._port = server.server_address[1]
        self._server = server
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        self._threads.append(t)

    # faults on demand

    def fail(self, status: int | None = 503, match: str = "", count: int | None = None) -> None:
        """Answer `status` to requests whose path contains `match` (`count` times, or until fail(None))."""
        with self._lock:
            self._fail = None if status is None else (status, match, count)

    def hang(self, match: str = "", after: bool = False) -> None:
        """Hold requests whose path contains `match` until release(); `after`: do the work first."""
        self._released.clear()
        self._hang = (match, after)

    def release(self) -> None:
        self._hang = None
        self._released.set()

    def _injected(self, where: str) -> int | None:
        """The status fail() asked for, if this request is one of those it meant (counted)."""
        with self._lock:
            if not self._fail or self._fail[1] not in where:
                return None
            status, match, count = self._fail
            if count is not None:
                self._fail = (status, match, count - 1) if count > 1 else None
            return status

    # what a stand-in says

    def _where(self, method: str, path: str) -> str:
        """The text fail() and hang() look for their `match` in."""
        return path

    def _call(self, method: str, path: str, query: dict[str, str], body: bytes) -> Recorded:
        raise NotImplementedError

    def _route(self, h: Handler, method: str, path: str, call: Any) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    # HTTP

    def _handle(self, h: Handler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        call = self._call(method, parts.path, dict(parse_qsl(parts.query)), raw)
        with self._lock:
            self.calls.append(call)
        if self.delay:
            time.sleep(self.delay)
        hang, where = self._hang, self._where(method, parts.path)
        if hang and hang[0] in where and not hang[1]:
            self._released.wait(HANG_LIMIT)
        status, headers, payload = self._route(h, method, parts.path, call)
        if hang and hang[0] in where and hang[1]:
            self._released.wait(HANG_LIMIT)
        call.status = status
        data = b""
        if isinstance(payload, str):
            data = payload.encode()
            headers.setdefault("Content-Type", "text/plain")
        elif payload is not None:
            data = json.dumps(payload).encode()
            headers.setdefault("Content-Type", self.json_type)
        headers["Content-Length"] = str(len(data))
        try:
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client went away (a timeout, a killed receiver)
