"""The deadline handed to checks (fake clock), and the containers check keeping to it."""

from __future__ import annotations

import pytest
from stackmedic.exporter.checks.containers import ContainersCheck, Service
from stackmedic.exporter.deadline import MIN_TIMEOUT, Deadline


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_remaining_expired_and_timeout_follow_the_clock():
    clock = Clock()
    deadline = Deadline.after(2.0, clock)
    assert (deadline.remaining(), deadline.expired()) == (2.0, False)
    assert deadline.timeout(cap=0.5) == 0.5
    assert deadline.timeout(cap=30) == deadline.timeout() == 2.0
    clock.now += 2.5
    assert (deadline.remaining(), deadline.expired()) == (0.0, True)
    # a socket timeout of 0 would mean non-blocking: the smallest real one instead
    assert deadline.timeout(cap=30) == MIN_TIMEOUT


class FakeApi:
    """The two calls the containers check makes, recording the timeout each one had."""

    def __init__(self, clock: Clock, containers: list[dict]):
        self.clock = clock
        self.listed = containers
        self.timeout = None
        self.timeouts: list[float] = []

    def containers(self, all: bool) -> list[dict]:  # noqa: A002 - the SDK's keyword
        self.timeouts.append(self.timeout)
        self.clock.now += 1.0  # the engine is slow: the deadline passes during the list
        return self.listed

    def inspect_container(self, container_id: str) -> dict:
        self.timeouts.append(self.timeout)
        return {"State": {"Status": "running"}, "RestartCount": 0}


class FakeClient:
    def __init__(self, api: FakeApi):
        self.api = api

    def close(self) -> None:
        pass


def containers_check(api: FakeApi, made: list[float]) -> ContainersCheck:
    def factory(url: str, timeout: float) -> FakeClient:
        made.append(timeout)
        return FakeClient(api)

    service = Service("petclinic", compose_service="petclinic")
    return ContainersCheck([service], "unix:///nowhere", timeout=30, client_factory=factory)


def test_containers_check_bounds_engine_calls_by_the_deadline():
    clock = Clock()
    listed = [{"Id": "c1", "Status": "Up", "Labels": {"com.docker.compose.service": "petclinic"}}]
    api, made = FakeApi(clock, listed), []
    check = containers_check(api, made)
    # 0.5 s left of a 30 s check timeout: the client and its requests get 0.5 s, not 30
    with pytest.raises(TimeoutError, match="scrape deadline passed while inspecting containers"):
        check.run(check.samples(), Deadline.after(0.5, clock))
    assert made == [0.5] and api.timeouts == [0.5]


def test_containers_check_within_its_deadline_reports_the_service():
    clock = Clock()
    listed = [{"Id": "c1", "Status": "Up", "Labels": {"com.docker.compose.service": "petclinic"}}]
    api, made = FakeApi(clock, listed), []
    check = containers_check(api, made)
    out = check.samples()
    check.run(out, Deadline.after(5.0, clock))
    assert out.value("container_running", "petclinic") == 1
    assert api.timeouts == [5.0, 4.0]  # the inspect after the slow list has what is left
