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
        self.timeouts: list[float] = []

    def containers(self, timeout: float) -> list[dict]:
        self.timeouts.append(timeout)
        self.clock.now += 1.0  # the engine is slow: the deadline passes during the list
        return self.listed

    def inspect(self, container_id: str, timeout: float) -> dict:
        self.timeouts.append(timeout)
        return {"State": {"Status": "running"}, "RestartCount": 0}

    def close(self) -> None:
        pass


def containers_check(api: FakeApi) -> ContainersCheck:
    service = Service("petclinic", compose_service="petclinic")
    return ContainersCheck([service], "unix:///nowhere", timeout=30, client_factory=lambda url, timeout: api)


LISTED = [{"Id": "c1", "Status": "Up", "Labels": {"com.docker.compose.service": "petclinic"}}]


def test_containers_check_bounds_engine_calls_by_the_deadline():
    clock = Clock()
    api = FakeApi(clock, LISTED)
    check = containers_check(api)
    # 0.5 s left of a 30 s check timeout: each engine call gets 0.5 s, not 30
    with pytest.raises(TimeoutError, match="scrape deadline passed while inspecting containers"):
        check.run(check.samples(), Deadline.after(0.5, clock))
    assert api.timeouts == [0.5]


def test_containers_check_within_its_deadline_reports_the_service():
    clock = Clock()
    api = FakeApi(clock, LISTED)
    check = containers_check(api)
    out = check.samples()
    check.run(out, Deadline.after(5.0, clock))
    assert out.value("container_running", "petclinic") == 1
    assert api.timeouts == [5.0, 4.0]  # the inspect after the slow list has what is left
