"""Issue 13 defect 10: a redirect never carries the configured headers to another host, and
never leads from https to plain http unless allowed. Real servers on 127.0.0.1."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from stackmedic.exporter.checks.http_check import HttpCheck, HttpTarget

from tests.exporter.helpers import scrape
from tests.security.certs import make_certs


class Recorder:
    """An HTTP(S) server: /go?to=URL redirects there, anything else answers 200 and records headers."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.seen: list[dict[str, str]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.startswith("/go?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/go?to="))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                recorder.seen.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.base = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Recorder, Recorder, Recorder, Path]]:
    certs = make_certs(tmp_path / "certs")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    a, b, s = Recorder(), Recorder(), Recorder(ctx)
    yield a, b, s, certs.ca
    for r in (a, b, s):
        r.close()


def run(url: str, **kw) -> tuple[float, float]:
    target = HttpTarget("t", url, timeout=5, headers={"X-Api-Key": "k3y"}, **kw)
    reg = scrape([HttpCheck(target)])
    up = reg.get_sample_value("stackmedic_http_up", {"target": "t"})
    redirect = reg.get_sample_value("stackmedic_http_failure_reason", {"target": "t", "reason": "redirect"})
    return up, redirect


def test_custom_headers_stay_on_the_targets_own_origin(servers):
    a, b, _, _ = servers
    assert run(f"{a.base}/go?to={b.base}/landing") == (1, 0)
    assert "X-Api-Key" not in b.seen[-1]
    assert b.seen[-1]["User-Agent"] == "stackmedic-exporter"
    assert run(f"{a.base}/go?to=/landing") == (1, 0)  # same origin: kept
    assert a.seen[-1]["X-Api-Key"] == "k3y"


def test_https_never_redirects_to_http_unless_allowed(servers):
    a, _, s, ca = servers
    assert run(f"{s.base}/go?to={a.base}/plain", ca_file=str(ca)) == (0, 1)
    assert a.seen == []  # nothing was sent in clear
    assert run(f"{s.base}/go?to={a.base}/plain", ca_file=str(ca), allow_http_redirect=True) == (1, 0)
    assert "X-Api-Key" not in a.seen[-1]  # another origin all the same


def test_a_redirect_loop_is_a_redirect_failure(servers):
    a, _, _, _ = servers
    assert (
        run(
            f"{a.base}/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/go?to=/x"
        )[1]
        == 1
    )
