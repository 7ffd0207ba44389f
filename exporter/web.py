"""The HTTP side: /metrics (within Prometheus' scrape deadline), /, /-/healthy, /-/ready.

prometheus_client's own WSGI app does not hand request headers to collectors, so this
small app reads `X-Prometheus-Scrape-Timeout-Seconds` itself and runs one scrape with
that budget, minus a margin for encoding and the network.
"""

from __future__ import annotations

import gzip
import html
import logging
import threading
from collections.abc import Callable, Iterable

from stackmedic import webconfig
from stackmedic.failed_logins import FailureLog
from stackmedic.httpserver import Limits, Server
from stackmedic.webconfig import Login, WebConfig

from .collector import ScrapeRunner
from .exposition import CONTENT_TYPE, TextEncoder

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"

LANDING = """<!doctype html>
<html><head><title>stackmedic exporter</title></head>
<body><h1>stackmedic exporter</h1><p>version {version}</p>
<p><a href="/metrics">Metrics</a> &middot; <a href="/-/healthy">Health</a></p>
<h2>Checks</h2><ul>{checks}</ul></body></html>
"""


def scrape_budget(header: str | None, default: float, margin: float) -> float:
    """Seconds a scrape may take: Prometheus' timeout minus `margin`, else `default`."""
    try:
        timeout = float(header) if header else 0.0
    except ValueError:
        timeout = 0.0
    if timeout <= 0:
        return default
    # a margin larger than the timeout itself would leave nothing: keep half of it then
    return timeout - margin if timeout > 2 * margin else timeout / 2


def make_app(runner: ScrapeRunner, default_timeout: float = 10.0, margin: float = 0.5) -> Callable:
    """The WSGI application."""
    text = TextEncoder(runner.metrics)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _reply(
                start_response, "405 Method Not Allowed", b"method not allowed\n", [("Allow", "GET, HEAD")]
            )
        if path == "/metrics":
            return _metrics(environ, start_response)
        if path in ("/-/healthy", "/-/ready"):
            return _reply(start_response, "200 OK", b"OK\n")
        if path == "/":
            items = "".join(f"<li>{html.escape(c.check_label)}</li>" for c in runner.checks)
            page = LANDING.format(version=html.escape(runner.version), checks=items)
            return _reply(start_response, "200 OK", page.encode(), content_type="text/html; charset=utf-8")
        return _reply(start_response, "404 Not Found", b"not found\n")

    def _metrics(environ: dict, start_response: Callable) -> Iterable[bytes]:
        budget = scrape_budget(environ.get(TIMEOUT_HEADER), default_timeout, margin)
        accept = environ.get("HTTP_ACCEPT", "")
        if _wants_text(accept):
            body, content_type = text.encode(runner.scrape(budget)), CONTENT_TYPE
        else:
            body, content_type = _openmetrics(runner, budget, accept)
        headers = []
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return _reply(start_response, "200 OK", body, headers, content_type)

    return app


def _wants_text(accept: str) -> bool:
    """The text format unless the client accepts only OpenMetrics, as Go exporters do by
    default: it is what Prometheus falls back to, and half the work to write."""
    return "text/plain" in accept or "*/*" in accept or not accept


def _openmetrics(runner: ScrapeRunner, budget: float, accept: str) -> tuple[bytes, str]:
    """A scrape through prometheus_client's encoders, imported only when a client asks."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept)
    return encoder(_Families(list(runner.collect(budget)))), content_type


class _Families:
    """What the encoders expect of a registry: something with collect()."""

    def __init__(self, families: list):
        self._families = families

    def collect(self) -> list:
        return self._families


def _reply(
    start_response: Callable,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(
        status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])]
    )
    return [body]


def serve(
    app: Callable,
    host: str,
    port: int,
    limits: Limits | None = None,
    web_config: WebConfig | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> tuple[Server, threading.Thread]:
    """Start serving `app` (behind `web_config`'s TLS and basic auth) in background threads.

    stackmedic.httpserver holds idle and slow connections without a thread each: under a
    container's PID limit, wsgiref's thread per connection let 60 idle sockets stop every
    scrape. Returns the server (server_address has the real port) and its selector thread.
    `on_failure(reason)` counts each refused login; each is logged at most once a minute.
    """
    web_config = web_config or WebConfig()
    if web_config.auth_required or web_config.headers:
        app = webconfig.wsgi(app, web_config, on_failure=_failed_login(on_failure))
    server = Server(app, host, port, limits or Limits(), web_config.tls, ident="stackmedic-exporter").start()
    assert server.thread is not None
    return server, server.thread


FAILED_LOGINS = FailureLog(logger=log)


def _failed_login(count: Callable[[str], None] | None) -> Callable[[Login, dict], None]:
    def failed(login: Login, environ: dict) -> None:
        reason = login.reason or "bad_credentials"
        if count is not None:
            count(reason)
        FAILED_LOGINS.record(reason, environ.get("REMOTE_ADDR", "-"), environ.get("PATH_INFO", ""))

    return failed
