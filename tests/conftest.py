"""Session fixtures for the real services (harness/services.py) shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.browser import Chromium
from harness.services import Alertmanager, DockerEngine, MariaDB, Prometheus

REPO = Path(__file__).resolve().parent.parent

# A test that uses one of these fixtures, directly or through another fixture, starts a real
# service: it gets the `services` marker without having to say so, and `make check` (which
# deselects them) stays fast. harness.services refuses to start a service under `make check`,
# so a test that starts one some other way fails there instead of hiding in the fast loop.
SERVICE_FIXTURES = frozenset(
    {"mariadb", "mariadb_factory", "docker_engine", "prometheus_factory", "alertmanager_factory", "chromium"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's top folder."""
    return REPO


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """One real MariaDB for the whole run (binary logs on); tests create their own databases in it."""
    server = MariaDB(tmp_path_factory.mktemp("mariadb"), binlog=True).start()
    yield server
    server.stop()


@pytest.fixture
def mariadb_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], MariaDB]]:
    """Private MariaDB servers a test may stop or kill; all are stopped at the end."""
    started: list[MariaDB] = []

    def make(binlog: bool = False) -> MariaDB:
        server = MariaDB(tmp_path_factory.mktemp("mariadb-private"), binlog=binlog).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    """One private Docker engine for the run, with the local busybox image imported."""
    # a short path: the unix socket's path must stay under 108 bytes
    engine = DockerEngine(tmp_path_factory.mktemp("dockerd")).start()
    yield engine
    engine.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Start Prometheus instances: factory(config_text, rules={name: text}); stopped at the end."""
    started: list[Prometheus] = []

    def make(config: str, rules: dict[str, str] | None = None) -> Prometheus:
        prom = Prometheus(tmp_path / f"prometheus-{len(started)}", config, rules).start()
        started.append(prom)
        return prom

    yield make
    for prom in started:
        prom.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """Start Alertmanagers: factory(config_text, cluster_port=None, peers=None); stopped at the end."""
    started: list[Alertmanager] = []

    def make(config: str, **kwargs) -> Alertmanager:
        am = Alertmanager(tmp_path / f"alertmanager-{len(started)}", config, **kwargs).start()
        started.append(am)
        return am

    yield make
    for am in started:
        am.stop()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the run (harness/browser.py); tests open their own pages."""
    browser = Chromium(tmp_path_factory.mktemp("chromium")).start()
    yield browser
    browser.stop()
