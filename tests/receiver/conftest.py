"""Fixtures for the receiver: the Jenkins stand-in, apps on a temporary store, a server for an app."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from stackmedic.receiver import server as receiver_server
from stackmedic.receiver.app import create_app

from harness.jenkins_standin import JenkinsStandIn
from harness.services import MariaDB
from stackmedic.webconfig import WebConfig
from tests.receiver.helpers import JOB_PARAMS, TOKEN, receiver_config


@pytest.fixture
def standin() -> Iterator[JenkinsStandIn]:
    """The Jenkins stand-in with the two remediation jobs (each build succeeds)."""
    jenkins = JenkinsStandIn(
        jobs={"stackmedic-restart": None, "stackmedic-restore": None}, params=JOB_PARAMS
    ).start()
    yield jenkins
    jenkins.stop()


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch, standin: JenkinsStandIn) -> None:
    monkeypatch.setenv("TEST_RECEIVER_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_JENKINS_TOKEN", standin.token)
    monkeypatch.setenv("TEST_JENKINS_PASSWORD", standin.password)


@pytest.fixture
def make_app(tmp_path: Path, standin: JenkinsStandIn, secrets_env: None) -> Iterator[Callable[..., Flask]]:
    """make_app(clock=None, **config overrides) -> a receiver app on tmp_path/receiver.sqlite; closed at the end."""
    apps: list[Flask] = []

    def make(clock: Callable[[], float] | None = None, **overrides: Any) -> Flask:
        config = receiver_config(tmp_path / "receiver.sqlite", standin, **overrides)
        if "store" not in overrides:  # apps alive at once are replicas: each has its own name
            config["store"] = {**config["store"], "replica": f"test-{len(apps)}"}
        app = create_app(config, clock=clock or time.time)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["stackmedic"].close()


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], str]]:
    """serve(app) -> base URL: the app under the receiver's own server on 127.0.0.1, in this process."""
    servers: list[Any] = []

    def start(app: Flask, web_config: WebConfig | None = None) -> str:
        config = app.extensions["stackmedic"].config
        server = receiver_server.serve(app, config, web_config or WebConfig(), "127.0.0.1", 0)
        servers.append(server)
        scheme = "https" if web_config is not None and web_config.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mysql_store(mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch):
    """store(server=mariadb, replica=...) -> a store section on a fresh database of `server`."""
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", MariaDB.root_password)
    database = f"receiver_{uuid.uuid4().hex[:10]}"
    created: list[tuple[MariaDB, str]] = []

    def section(server: MariaDB = mariadb, replica: str = "a") -> dict:
        if (server, database) not in created:
            server.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
            created.append((server, database))
        return {
            "type": "mysql",
            "host": server.host,
            "port": server.port,
            "user": "root",
            "password_env": "TEST_MYSQL_PASSWORD",
            "database": database,
            "replica": replica,
        }

    yield section
    for server, name in created:
        if server.process is not None:
            server.execute(f"DROP DATABASE IF EXISTS {name}")
