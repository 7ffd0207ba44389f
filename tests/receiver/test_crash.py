"""SIGKILL of a real receiver process before, during and after the Jenkins call: exactly one build."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

from harness.jenkins_standin import JenkinsStandIn
from harness.services import Process, free_port, wait_for
from tests.receiver.helpers import AUTH, TOKEN, alert, notification, receiver_config

REPO = Path(__file__).resolve().parents[2]


class Receiver:
    """stackmedic-receiver as a child process on 127.0.0.1:port with a config file."""

    def __init__(self, tmp: Path, standin: JenkinsStandIn, **overrides):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = receiver_config(tmp / "receiver.sqlite", standin, **overrides)
        config["jenkins"]["timeout"] = 2
        self.config_path = tmp / "receiver.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "TEST_RECEIVER_TOKEN": TOKEN,
            "TEST_JENKINS_TOKEN": standin.token,
        }
        self.process: Process | None = None
        self.runs = 0

    def start(self) -> Receiver:
        self.runs += 1
        argv = [
            sys.executable,
            "-m",
            "stackmedic.receiver",
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=debug",
        ]
        self.process = Process(argv, self.tmp / f"receiver-{self.runs}.log", env=self.env, cwd=REPO)
        wait_for(self._ready, 20, "the receiver to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        self.process.check_alive("stackmedic-receiver")
        return requests.get(f"{self.url}/-/ready", timeout=2).ok

    def post(self, body: dict) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/alerts", json=body, headers=AUTH, timeout=5)

    def actions(self) -> list[dict]:
        return list(reversed(requests.get(f"{self.url}/api/v1/actions", timeout=5).json()["actions"]))

    def settled(self) -> bool:
        return all(
            a["build"]["state"] in ("done", "failed", "cancelled") for a in self.actions() if a["build"]
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.stop()

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@pytest.fixture
def receiver(tmp_path: Path, standin: JenkinsStandIn) -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**overrides) -> Receiver:
        r = Receiver(tmp_path, standin, **overrides)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def test_killed_while_jenkins_holds_the_post_after_queuing(receiver, standin):
    standin.hang("buildWithParameters", after=True)  # queued, but the answer never comes
    standin.hold_queue()
    r = receiver().start()
    assert r.post(notification(alert())).status_code == 200
    wait_for(lambda: standin.posts(), 10, "the POST to reach Jenkins")
    r.kill()
    standin.hold_queue(False)
    r.start()
    wait_for(r.settled, 30, "the action to settle after the restart")
    [action] = r.actions()
    assert action["build"]["result"] == "SUCCESS" and action["build"]["number"] == 1
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1
    assert standin.builds()[0].params["STACKMEDIC_ACTION_ID"] == action["build"]["action_token"]


def test_killed_while_following_the_queue_item(receiver, standin):
    standin.hang("/queue/item/")
    r = receiver().start()
    assert r.post(notification(alert())).status_code == 200
    wait_for(
        lambda: any(c.path.startswith("/queue/item/") for c in standin.calls), 10, "the receiver to follow"
    )
    r.kill()
    standin.release()
    r.start()
    wait_for(r.settled, 30, "the action to settle after the restart")
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1
    assert r.actions()[0]["build"]["result"] == "SUCCESS"


def test_killed_before_jenkins_answered_at_all(receiver, standin):
    standin.refuse()
    r = receiver(dispatcher={"backoff_initial": 0.2, "backoff_max": 0.5, "max_attempts": 100, "lease": 5})
    r.start()
    assert r.post(notification(alert())).status_code == 200
    wait_for(lambda: r.actions()[0]["build"]["attempts"] >= 2, 10, "failed attempts")
    r.kill()
    standin.accept()
    r.start()
    wait_for(r.settled, 30, "the action to settle after the restart")
    assert [c.status for c in standin.posts()] == [201]
    assert len(standin.builds()) == 1


def test_duplicates_after_a_restart_are_still_duplicates(receiver, standin):
    r = receiver().start()
    r.post(notification(alert()))
    wait_for(lambda: r.settled() and standin.finished(), 10, "the build")
    r.kill()
    r.start()
    assert r.post(notification(alert())).json()["decisions"] == {"duplicate": 1}
    assert len(standin.posts()) == 1
