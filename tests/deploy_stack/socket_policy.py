"""The allowlist of a compose socket-proxy service, enforced by a real HTTP proxy on 127.0.0.1
in front of a real Docker engine's socket.

wollomatic/socket-proxy (compose.yaml's docker-proxy-ro and docker-proxy-jobs) lets a
request through when its method has an `-allow<METHOD>=<regexp>` flag and the request's
URL path matches the regexp anchored at both ends; anything else gets 403. This proxy does
the same with the flags read from the resolved compose file, so that the real exporter and
job programs can be run through exactly the allowlists the stack ships.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def allowlist(command: list[str]) -> dict[str, re.Pattern[str]]:
    """{METHOD: anchored pattern} from socket-proxy flags (`-allowGET=...`)."""
    rules = {}
    for arg in command:
        m = re.fullmatch(r"-allow([A-Z]+)=(.+)", arg)
        if m:
            rules[m.group(1)] = re.compile(m.group(2))
    return rules


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


@dataclass
class PolicyProxy:
    """Listens on 127.0.0.1:<port>; forwards allowed requests to `docker_socket`."""

    docker_socket: str
    rules: dict[str, re.Pattern[str]]
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def start(self) -> PolicyProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _any  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def denied(self) -> list[tuple[str, str, int]]:
        return [s for s in self.seen if s[2] == 403]

    def allows(self, method: str, path: str) -> bool:
        rule = self.rules.get(method)
        return bool(rule and rule.fullmatch(path))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        path = urlsplit(h.path).path
        if not self.allows(h.command, path):
            self.seen.append((h.command, path, 403))
            self._reply(h, 403, {"Content-Type": "text/plain"}, b"Forbidden\n")
            return
        conn = _UnixConnection(self.docker_socket)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.seen.append((h.command, path, resp.status))
            out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
            self._reply(h, resp.status, out, data if h.command != "HEAD" else b"", len(data))
        finally:
            conn.close()

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler, status: int, headers: dict, data: bytes, length: int | None = None
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data) if length is None else length))
        h.end_headers()
        if data:
            h.wfile.write(data)
