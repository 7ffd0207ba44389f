"""stackmedic/httpserver.py over real sockets: keep-alive, HEAD, bodies, 100-continue,
an application error, and the WSGI environ it builds."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from stackmedic.httpserver import Limits, Server


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    body = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "type": environ.get("CONTENT_TYPE", ""),
            "body": environ["wsgi.input"].read().decode(),
            "x": environ.get("HTTP_X_THING"),
            "underscore": environ.get("HTTP_X_SNEAKY"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture
def url() -> Iterator[str]:
    server = Server(app, "127.0.0.1", 0, Limits(max_body_bytes=1000)).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_requests_keep_alive_and_the_environ(url):
    with requests.Session() as session:
        for i in range(3):
            r = session.post(f"{url}/a%20b?x=1", json={"i": i}, headers={"X-Thing": "t"}, timeout=5)
            assert r.json() == {
                "method": "POST",
                "path": "/a b",
                "query": "x=1",
                "type": "application/json",
                "body": json.dumps({"i": i}),
                "x": "t",
                "underscore": None,
            }
            assert r.headers["Connection"] == "keep-alive"


def test_head_has_headers_only_and_underscored_headers_are_dropped(url):
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nX_Sneaky: 1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b""
    assert b"Content-Length: " in head
    r = requests.get(url, headers={"X_Sneaky": "1"}, timeout=5)
    assert r.json()["underscore"] is None


def test_expect_100_continue_and_an_application_error(url):
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"{}")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
    assert requests.get(f"{url}/boom", timeout=5).status_code == 500
    assert requests.get(url, timeout=5).status_code == 200  # the worker survived
