"""The Docker Engine API client on its kept-alive connection, against a small engine
stand-in on a unix socket (the real engine is in test_containers.py)."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from stackmedic.exporter.checks.docker_api import DockerApi, DockerError


class Engine(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str):
        self.connections = 0
        self.close_after_answer = False  # as an engine closing an idle keep-alive connection
        self.hang = threading.Event()  # set: the next request gets no answer until released
        self.release = threading.Event()
        super().__init__(path, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Engine

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet tests
        pass

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.server.hang.is_set():
            self.server.hang.clear()
            self.server.release.wait(10)
            self.close_connection = True
            return
        body = json.dumps({"ApiVersion": "1.41"} if self.path == "/version" else []).encode()
        status = 200 if self.path in ("/version", "/v1.41/containers/json?all=1") else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.server.close_after_answer


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    path = str(tmp_path / "docker.sock")
    server = Engine(path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"unix://{path}"
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_calls_share_one_connection(engine):
    server, url = engine
    api = DockerApi(url, 5)
    try:
        for _ in range(3):
            assert api.containers() == []
        assert server.connections == 1
    finally:
        api.close()


def test_a_connection_the_engine_closed_is_replaced_without_an_error(engine):
    server, url = engine
    server.close_after_answer = True
    api = DockerApi(url, 5)
    try:
        for _ in range(3):
            assert api.containers() == []  # each reuse finds the connection closed
        assert server.connections == 4  # /version, then one per list call
    finally:
        api.close()


def test_a_call_that_times_out_leaves_a_clean_connection_for_the_next(engine):
    server, url = engine
    api = DockerApi(url, 5)
    try:
        assert api.containers() == []
        server.hang.set()
        with pytest.raises(TimeoutError):
            api.containers(timeout=0.2)
        server.release.set()
        assert api.containers() == []  # not the late answer to the call that timed out
        with pytest.raises(DockerError, match="HTTP 404"):
            api.inspect("missing")
    finally:
        api.close()
