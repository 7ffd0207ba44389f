"""Fixtures of the closed loop: the Petclinic World (one per module, on the shared MariaDB and
dockerd), and a fresh LoopStack per test (new Prometheus, Alertmanager, receiver store,
exporter and stand-in), so that no alert, incident or breaker leaks from one scenario into
the next."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.services import Alertmanager, DockerEngine, MariaDB, Prometheus, wait_for
from tests.e2e.loop import LoopStack
from tests.e2e.petclinic import DATABASE, World, prepare

# Every interval, for: and wait of the shipped files divided by 5: scrape and evaluation
# every second, as ../shared/ENVIRONMENT.md measured.
FACTOR = 5

StackFactory = Callable[..., LoopStack]


@pytest.fixture(scope="module")
def world(mariadb: MariaDB, docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Petclinic on the shared MariaDB with a verified backup; its container is per test."""
    w = prepare(mariadb, docker_engine, tmp_path_factory.mktemp("e2e-world"))
    yield w
    w.remove_container()
    mariadb.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")


@pytest.fixture
def loop_factory(
    tmp_path: Path,
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
) -> Iterator[StackFactory]:
    """loop_factory(world, rule_breakers=None) -> a started LoopStack; stopped (logs shown) at the end."""
    stacks: list[LoopStack] = []

    def make(w: World, rule_breakers: dict | None = None) -> LoopStack:
        stack = LoopStack(
            w,
            tmp_path / f"loop-{len(stacks)}",
            FACTOR,
            start_prometheus=lambda config, rules: prometheus_factory(config, rules=rules),
            start_alertmanager=lambda config: alertmanager_factory(config),
            rule_breakers=rule_breakers,
        )
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        print(stack.logs())  # shown by pytest when the test failed
        stack.stop()


@pytest.fixture
def container() -> Iterator[Callable[..., None]]:
    """container(world, lifetime=None): start its petclinic container, answering; removed at the end."""
    started: list[World] = []

    def start(w: World, lifetime: float | None = None) -> None:
        w.start_container(lifetime)
        started.append(w)
        wait_for(w.answers, 20, "petclinic to answer")

    yield start
    for w in started:
        w.remove_container()
