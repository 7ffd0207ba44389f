"""The whole HA rig of issue 12, every part real: two Alertmanagers clustered as a pair, three
receiver processes on one MariaDB store, the Jenkins stand-in. Alerts go into both Alertmanagers
as two Prometheus replicas would send them; each scenario reads the stand-in's own build log
and asserts exactly one build per incident, none lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness.jenkins_standin import JenkinsStandIn
from harness.receiver_process import ReceiverProcess
from harness.services import Alertmanager, MariaDB, free_port, wait_for
from tests.receiver.helpers import TOKEN, receiver_config

pytestmark = [pytest.mark.services, pytest.mark.slow]  # real processes, killed and stalled

# seconds-level leases: a takeover happens within the test's patience
DISPATCHER = {
    "backoff_initial": 0.1,
    "backoff_max": 0.5,
    "max_attempts": 100,
    "lease": 3,
    "heartbeat": 0.3,
    "heartbeat_timeout": 1.5,
}
JENKINS_TIMEOUT = 2
BREAKER = {"cooldown": "5m", "max_actions": 1000, "window": "1h", "max_ineffective": 0}


class Rig:
    """Two clustered Alertmanagers -> three receivers (one MariaDB database) -> the Jenkins stand-in."""

    def __init__(self, tmp: Path, mariadb: MariaDB, standin: JenkinsStandIn):
        self.tmp = tmp
        self.mariadb = mariadb
        self.standin = standin
        self.database = "receiver_ha"
        mariadb.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self.receivers: list[ReceiverProcess] = []
        self.alertmanagers: list[Alertmanager] = []

    # the parts

    def receiver(self, replica: str, env: dict[str, str] | None = None) -> ReceiverProcess:
        """A receiver process (not started) named `replica` in the store."""
        store = {
            "type": "mysql",
            "host": self.mariadb.host,
            "port": self.mariadb.port,
            "user": "root",
            "password_env": "TEST_MYSQL_PASSWORD",
            "database": self.database,
            "replica": replica,
        }
        config = receiver_config("unused", self.standin, store=store, dispatcher=DISPATCHER, breaker=BREAKER)
        config["jenkins"].update(timeout=JENKINS_TIMEOUT, poll_interval=0.05)
        secrets = {
            "TEST_RECEIVER_TOKEN": TOKEN,
            "TEST_JENKINS_TOKEN": self.standin.token,
            "TEST_MYSQL_PASSWORD": self.mariadb.root_password,
        }
        r = ReceiverProcess(
            self.tmp, config, {**secrets, **(env or {})}, TOKEN, name=replica, log_level="info"
        )
        self.receivers.append(r)
        return r

    def start(self, envs: dict[str, dict[str, str]] | None = None) -> Rig:
        """r0, r1, r2 (each with its env from `envs`), then Alertmanager a -> r0, r2 and b -> r1, r2."""
        r0, r1, r2 = (self.receiver(f"r{i}", (envs or {}).get(f"r{i}")).start() for i in range(3))
        for i, hooks in enumerate(((r0, r2), (r1, r2))):
            # b joins a (the gossip is both ways); each cluster port is picked just before its
            # start, so nothing else takes it meanwhile
            am = Alertmanager(
                self.tmp / f"alertmanager-{'ab'[i]}",
                alertmanager_config(hooks),
                cluster_port=free_port(),
                peers=[f"127.0.0.1:{a.cluster_port}" for a in self.alertmanagers],
                # the second of the pair waits this long for the first's notification
                args=["--cluster.peer-timeout=2s", "--cluster.gossip-interval=50ms"],
            )
            self.alertmanagers.append(am)
            am.start()
        wait_for(self._clustered, 30, "the Alertmanagers to see each other")
        return self

    def _clustered(self) -> bool:
        for am in self.alertmanagers:
            status = requests.get(f"{am.url}/api/v2/status", timeout=2).json()
            if len(status["cluster"]["peers"]) != 2 or status["cluster"]["status"] != "ready":
                return False
        return True

    def stop(self) -> None:
        for am in self.alertmanagers:
            am.stop()
        for r in self.receivers:
            r.stop()

    # what goes in

    def fire(self, services: list[str]) -> None:
        """One new incident per service, into both Alertmanagers (two Prometheus replicas)."""
        now = datetime.now(UTC)
        alerts = [
            {
                "labels": {"alertname": "StackAppDown", "remediation": "restart", "compose_service": s},
                "annotations": {"summary": f"{s} is down"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(hours=1)).isoformat(),
                "generatorURL": "http://prometheus/graph",
            }
            for s in services
        ]
        for am in self.alertmanagers:
            resp = requests.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=10)
            assert resp.status_code == 200, resp.text

    # what came out

    def rows(self, sql: str) -> list[tuple]:
        return self.mariadb.execute(sql, db=self.database)

    def triggered(self) -> dict[str, tuple[str, str | None]]:
        """target -> (state, owner) of each triggered action."""
        rows = self.rows("SELECT target, state, owner FROM actions WHERE token IS NOT NULL")
        return {target: (state, owner) for target, state, owner in rows}

    def wait_done(self, services: list[str], timeout: float = 60) -> None:
        """Every incident's action done in the store and its build finished in the stand-in."""

        def done() -> bool:
            states = self.triggered()
            finished = {b.params.get("SERVICE") for b in self.standin.finished()}
            return all(states.get(s, ("", None))[0] == "done" and s in finished for s in services)

        wait_for(done, timeout, f"{len(services)} actions done", interval=0.2)

    def assert_one_build_each(self, services: list[str]) -> None:
        """From the stand-in's build log: exactly one build per incident, each SUCCESS, none lost."""
        builds = self.standin.builds()
        per_service = Counter(b.params.get("SERVICE") for b in builds)
        doubled = {s: n for s, n in per_service.items() if n > 1}
        lost = [s for s in services if s not in per_service]
        assert (doubled, lost) == ({}, []), self.logs()
        assert sorted(per_service) == sorted(services)
        assert {b.result for b in builds} == {"SUCCESS"}
        # each build carries the token of the one action of its incident
        tokens = dict(self.rows("SELECT target, token FROM actions WHERE token IS NOT NULL"))
        assert {b.params["SERVICE"]: b.params["STACKMEDIC_ACTION_ID"] for b in builds} == tokens
        assert {state for state, _ in self.triggered().values()} == {"done"}

    def logs(self) -> str:
        out = []
        for r in self.receivers:
            for run in range(1, r.runs + 1):
                path = self.tmp / f"{r.name}-{run}.log"
                if path.exists():
                    out.append(f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-25:]))
        return "\n".join(out)


def alertmanager_config(receivers: tuple[ReceiverProcess, ...]) -> str:
    """One route per incident (grouped by service), sent at once, each receiver a webhook."""
    config: dict[str, Any] = {
        "route": {
            "receiver": "stackmedic",
            "group_by": ["alertname", "compose_service"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "stackmedic",
                "webhook_configs": [
                    {
                        "url": f"{r.url}/api/v1/alerts",
                        "send_resolved": False,
                        "http_config": {"authorization": {"credentials": TOKEN}},
                    }
                    for r in receivers
                ],
            }
        ],
    }
    return yaml.safe_dump(config)


@pytest.fixture
def rig(tmp_path: Path, mariadb_factory: Callable[..., MariaDB], standin: JenkinsStandIn) -> Iterator[Rig]:
    r = Rig(tmp_path, mariadb_factory(), standin)
    yield r
    r.stop()


def services(n: int, prefix: str = "svc") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_sigkill_of_the_replica_mid_dispatch_the_survivors_take_over(rig, standin):
    rig.start()
    standin.hang("buildWithParameters", after=True)  # queued in Jenkins, the answer never comes
    incident = ["petclinic"]
    rig.fire(incident)
    wait_for(lambda: standin.posts(), 30, "the POST")
    [(_, owner)] = rig.triggered().values()
    [victim] = [r for r in rig.receivers if r.name == owner]
    victim.kill()
    standin.release()
    rig.wait_done(incident)
    rig.assert_one_build_each(incident)
    [(_, finisher)] = rig.triggered().values()
    assert finisher != owner


def test_a_slow_jenkins_whose_slot_waits_outlast_the_lease_gives_no_second_build(rig, standin):
    # issue 12 defect 1: 42 builds for 40 incidents. Two connection slots per receiver, every
    # answer 1 s late (the client's timeout is 2 s), eight actions in flight per receiver: an
    # action waits for a slot longer than its 3 s lease. A live replica keeps its leases
    # (every action used to pass from replica to replica, and none finished)
    standin.delay = 1.0
    rig.start()
    incidents = services(30)
    rig.fire(incidents)
    rig.wait_done(incidents, timeout=240)
    rig.assert_one_build_each(incidents)


def test_a_replica_stalled_past_its_lease_under_a_slow_jenkins_sends_nothing_it_lost(rig, standin):
    # r0 stops dead (SIGSTOP: a paused VM) with workers waiting for slots or in requests; the
    # others take its actions after the heartbeat timeout and send them; when r0 wakes, its
    # workers go on where they were: the fence must stop every one of them
    standin.delay = 1.0
    rig.start()
    incidents = services(30)
    rig.fire(incidents)
    r0 = rig.receivers[0]

    def held_by_r0() -> list[str]:
        return [t for t, (state, owner) in rig.triggered().items() if owner == "r0" and state != "done"]

    stalled = wait_for(held_by_r0, 30, "r0 to hold actions under way")
    r0.pause()
    try:
        wait_for(
            # generous: the others take them after the heartbeat timeout, between their own slow requests
            lambda: all(rig.triggered()[t][1] != "r0" for t in stalled),
            120,
            "r0's actions to be taken over",
        )
    finally:
        r0.resume()
    rig.wait_done(incidents, timeout=240)
    rig.assert_one_build_each(incidents)


@pytest.mark.parametrize("skew", [90, -90])
def test_clock_skew_of_one_replica_never_takes_a_live_action(rig, standin, skew):
    standin.hang("buildWithParameters")  # the POSTs wait in Jenkins, not yet queued
    rig.start(envs={"r1": {"STACKMEDIC_RECEIVER_TEST_CLOCK_SKEW": str(skew)}})
    incidents = services(6)
    rig.fire(incidents)
    wait_for(lambda: len(standin.posts()) >= 3, 30, "POSTs held by Jenkins")
    first = heartbeat(rig, "r1")
    # the skewed replica loops at least once a second: give it 3 s of its beats to misbehave
    wait_for(lambda: heartbeat(rig, "r1") > first + 3, 20, "three seconds of r1's heartbeats")
    standin.release()
    rig.wait_done(incidents)
    rig.assert_one_build_each(incidents)


def heartbeat(rig: Rig, name: str) -> float:
    [(at,)] = rig.rows(f"SELECT heartbeat_at FROM replicas WHERE name='{name}'")
    return float(at)


def test_a_second_replica_with_a_live_name_refuses_to_start(rig, standin):
    rig.start()
    twin = rig.receiver("r1")
    process = twin.launch()
    wait_for(lambda: not process.alive(), 30, "the second r1 to exit")
    assert process.popen.returncode == 1
    assert twin.log.read_text().strip().splitlines()[-1] == (
        "stackmedic-receiver: replica name 'r1' is held by a live receiver (its heartbeat moves);"
        " give each replica its own store.replica, or leave it unset for a generated one"
    )
    incidents = services(5)
    rig.fire(incidents)
    rig.wait_done(incidents)
    rig.assert_one_build_each(incidents)


@pytest.mark.parametrize(("down", "up"), [("freeze", "thaw"), ("stop", "start")], ids=["frozen", "stopped"])
def test_a_store_frozen_or_stopped_then_back_doubles_nothing_and_loses_nothing(rig, standin, down, up):
    rig.start()
    standin.hold_queue()
    before = services(5, "before")
    rig.fire(before)
    wait_for(lambda: len(standin.posts()) == len(before), 30, "the POSTs of the first incidents")
    getattr(rig.mariadb, down)()
    try:
        during = services(5, "during")
        rig.fire(during)  # each receiver answers 503 at once; the Alertmanagers send again later
        wait_for(lambda: all(unready(r) for r in rig.receivers), 30, "every receiver to be unready")
        standin.hold_queue(False)  # the builds run while the store cannot record them
        wait_for(lambda: len(standin.finished()) == len(before), 30, "the first builds")
        wait_for(lambda: notifications_failed(rig) > 0, 30, "the Alertmanagers to be refused")
    finally:
        getattr(rig.mariadb, up)()
    rig.wait_done(before + during, timeout=120)
    rig.assert_one_build_each(before + during)


def unready(r: ReceiverProcess) -> bool:
    return requests.get(f"{r.url}/-/ready", timeout=10).status_code == 503


def notifications_failed(rig: Rig) -> float:
    """Failed webhook notifications, summed over both Alertmanagers."""
    total = 0.0
    for am in rig.alertmanagers:
        for line in requests.get(f"{am.url}/metrics", timeout=5).text.splitlines():
            if line.startswith('alertmanager_notifications_failed_total{integration="webhook"'):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_200_incidents_through_the_alertmanagers_are_200_builds(rig, standin):
    standin.queue_delay = standin.build_duration = 0.0
    rig.start()
    incidents = services(200)
    rig.fire(incidents)
    rig.wait_done(incidents, timeout=240)
    rig.assert_one_build_each(incidents)
    # the load was spread: every replica dispatched some
    owners = Counter(owner for _, owner in rig.triggered().values())
    assert sorted(owners) == ["r0", "r1", "r2"], owners
