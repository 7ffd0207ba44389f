"""The receiver's HTTP server: stackmedic.httpserver with its limits, behind the web config.

Not waitress: waitress stops accepting at its connection limit (100) and times a client out
only after 120 s of silence, so about 100 idle sockets, kept alive with a byte every 25 s,
stopped every answer and Alertmanager's webhooks timed out. stackmedic.httpserver reads
each request whole in one selector thread against a deadline from its first byte, evicts
idle keep-alive connections first, and speaks TLS (waitress cannot).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask

from stackmedic import webconfig
from stackmedic.httpserver import Limits, Server
from stackmedic.webconfig import Login, WebConfig

from .api import FAILED_LOGINS, WRITE_METHODS
from .auth import failure
from .config import Config

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/alerts"
API_PREFIX = "/api/v1/"


def limits(config: Config) -> Limits:
    """Connections and deadlines: Alertmanager posts within a second of each other at most."""
    return Limits(
        max_connections=512,
        threads=config.threads,
        request_timeout=10.0,
        idle_timeout=60.0,
        write_timeout=10.0,
        max_body_bytes=config.max_body_bytes,
        backlog=256,
    )


def wrap(app: Flask, config: Config, web_config: WebConfig) -> Callable:
    """`app` behind basic_auth_users; the API's own credentials (the bearer token, and on the
    webhook the configured Basic user) are accepted in their place."""
    if not (web_config.auth_required or web_config.headers):
        return app
    services = app.extensions["stackmedic"]

    def own_credentials(environ: dict) -> bool:
        if config.auth.none:
            return False
        header = environ.get("HTTP_AUTHORIZATION")
        path = environ.get("PATH_INFO") or ""
        if environ.get("REQUEST_METHOD") in WRITE_METHODS and path.startswith(API_PREFIX):
            # every write of the API checks its credentials itself (api.require_auth: a
            # bearer token, or the webhook's Basic user), answers an unknown or revoked token
            # with its reason, and challenges with Bearer only: the web config's Basic
            # challenge would make a browser posting a cross-site form ask for a login
            return True
        return failure(header, config.auth, path == WEBHOOK_PATH) is None

    def failed(login: Login, environ: dict) -> None:
        reason = login.reason or "bad_credentials"
        services.metrics.auth_failures.labels(reason).inc()
        FAILED_LOGINS.record(reason, environ.get("REMOTE_ADDR", "-"), environ.get("PATH_INFO", ""))

    return webconfig.wsgi(app, web_config, on_failure=failed, bypass=own_credentials)


def serve(app: Flask, config: Config, web_config: WebConfig, host: str, port: int) -> Server:
    """Bind and start serving in background threads; `server_address` has the real port."""
    wsgi = wrap(app, config, web_config)
    return Server(wsgi, host, port, limits(config), web_config.tls, ident="stackmedic-receiver").start()
