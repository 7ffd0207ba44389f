"""SIGKILL of a real receiver process before, during and after the Jenkins call: exactly one build."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.jenkins_standin import JenkinsStandIn
from harness.receiver_process import ReceiverProcess
from harness.services import wait_for
from tests.receiver.helpers import TOKEN, alert, notification, receiver_config

pytestmark = pytest.mark.slow  # each test kills and restarts a receiver process


@pytest.fixture
def receiver(tmp_path: Path, standin: JenkinsStandIn) -> Iterator[Callable[..., ReceiverProcess]]:
    made: list[ReceiverProcess] = []

    def make(**overrides) -> ReceiverProcess:
        config = receiver_config(tmp_path / "receiver.sqlite", standin, **overrides)
        config["jenkins"]["timeout"] = 2
        env = {"TEST_RECEIVER_TOKEN": TOKEN, "TEST_JENKINS_TOKEN": standin.token}
        r = ReceiverProcess(tmp_path, config, env, TOKEN)
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
