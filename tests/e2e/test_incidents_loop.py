"""Healing that never fails in silence, end to end (issue 11), with every part real (conftest.py).

- the page loses its keyword while the container runs (a broken deploy): restarts do not help,
  so after a bounded number of attempts the incident is escalated and a person is paged;
  once the page is fixed and the breaker reset, the next failure is healed promptly;
- Jenkins answers 503 for a while, then recovers: the incident is not lost, it is healed once;
- a service stopped during a pause is not healed and does not count against the breaker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from harness.services import wait_for
from tests.e2e.loop import LoopStack
from tests.e2e.petclinic import PAGE, SERVICE, World
from tests.e2e.test_closed_loop import resolved, told_people

pytestmark = [pytest.mark.e2e, pytest.mark.services]

KEY = f"restart-app:{SERVICE}"
# the shipped breaker (two ineffective actions open it) with the settle time compressed like
# every other timing here (1m / 5)
SETTLE = {"restart-app": {"settle": "9s"}}


@pytest.fixture
def page(world: World) -> Iterator[None]:
    """The page is put back as it was, whatever the test did to it."""
    yield
    (world.www / "index.html").write_text(PAGE)


def operator(loop: LoopStack, path: str, **body: object) -> dict:
    token = (loop.base / "receiver.token").read_text()
    r = requests.post(
        f"{loop.receiver_url}/api/v1/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()


def builds(loop: LoopStack) -> list[tuple[str, str, str | None]]:
    return [(job, params["SERVICE"], result) for job, params, result in loop.builds()]


def test_a_page_without_its_keyword_pages_a_person_after_bounded_attempts_then_a_reset_heals_at_once(
    world: World, loop_factory, container, page
):
    container(world)
    loop = loop_factory(world, rule_breakers=SETTLE)
    loop.wait_quiet()

    (world.www / "index.html").write_text("<html><body>502 Bad Gateway</body></html>")  # a broken deploy

    escalated = wait_for(
        lambda: told_people(loop, "StackRemediationEscalated"),
        150,
        "StackRemediationEscalated to page people",
    )
    assert escalated[0]["labels"]["target"] == SERVICE
    assert escalated[0]["labels"]["severity"] == "critical"
    assert "after 2 attempt(s)" in escalated[0]["annotations"]["description"]
    assert "Last build: stackmedic-restart #2, SUCCESS" in escalated[0]["annotations"]["description"]
    decided = [d["decision"] for d in loop.decisions("StackAppDown")]
    assert decided.count("ineffective") == 2 and decided.count("escalated") == 1
    # attempts are bounded: Alertmanager repeats the alert, nothing more is built
    wait_for(
        lambda: [d["decision"] for d in loop.decisions("StackAppDown")][-2:] == ["breaker_open"] * 2,
        60,
        "two repeats refused after the escalation",
    )
    assert builds(loop) == [("stackmedic-restart", SERVICE, "SUCCESS")] * 2
    assert loop.prometheus_alerts("StackAppDown", "firing")
    # the receiver decided on every repeat: the watch on undecided healing never fired
    assert loop.prometheus
    fired = 'count_over_time(ALERTS{{alertname="{}", alertstate="firing"}}[1h])'
    assert loop.prometheus.query(fired.format("StackAppDown"))  # the question can say yes
    assert loop.prometheus.query(fired.format("StackRemediationUndecided")) == []

    # a person fixes the deploy: the audit does not claim stackmedic healed it
    (world.www / "index.html").write_text(PAGE)
    wait_for(lambda: resolved(loop, "StackAppDown"), 60, "StackAppDown to resolve")
    [closing] = [d for d in loop.decisions("StackAppDown") if d["decision"] == "resolved"]
    assert "without stackmedic" in closing["reason"] and "healed" not in closing["reason"]

    # and resets the breaker: the next failure is healed at once, not after the cooldown
    state = operator(loop, f"breakers/{KEY}/reset", author="ana", reason="fixed the deploy")
    assert (state["state"], state["next_action_at"]) == ("closed", None)
    world.docker.client.containers.get(SERVICE).kill()
    wait_for(lambda: len(loop.jenkins.finished()) == 3, 60, "the third build")  # 5 min of cooldown otherwise
    wait_for(world.answers, 30, "petclinic to answer again")
    assert builds(loop)[-1] == ("stackmedic-restart", SERVICE, "SUCCESS")
    [reset] = [d for d in loop.decisions() if d["decision"] == "reset"]
    assert (reset["author"], reset["reason"]) == ("ana", "fixed the deploy")


def test_jenkins_answering_503_for_a_while_then_recovering_heals_the_incident_once(
    world: World, loop_factory, container
):
    container(world)
    loop = loop_factory(world)
    loop.wait_quiet()
    assert loop.jenkins
    loop.jenkins.fail(503, match="buildWithParameters")

    world.docker.client.containers.get(SERVICE).kill()

    # the dispatcher's retries run out (about 25 s here, 2 min as shipped): the action failed
    wait_for(lambda: any(d["decision"] == "failed" for d in loop.decisions()), 90, "an action to fail")
    assert loop.jenkins.builds() == []
    loop.jenkins.fail(None)  # Jenkins is back
    wait_for(world.answers, 90, "petclinic to be healed")
    wait_for(lambda: resolved(loop, "StackAppDown"), 60, "StackAppDown to resolve")
    # the page may answer (and the alert resolve) before the job has finished waiting for it
    wait_for(lambda: loop.jenkins.finished(), 30, "the build to finish")
    assert builds(loop) == [("stackmedic-restart", SERVICE, "SUCCESS")]

    def closing() -> dict:
        [row] = [d for d in loop.decisions("StackAppDown") if d["decision"] == "resolved"]
        return row

    # the alert may resolve while the restart build still waits for the service to settle:
    # the build is credited once the receiver sees it succeed
    wait_for(
        lambda: closing()["reason"].startswith("healed by action #"), 30, "the resolution to be credited"
    )
    assert not told_people(loop, "StackRemediationEscalated")


def test_a_service_stopped_during_a_pause_is_left_alone_and_never_counts_as_ineffective(
    world: World, loop_factory, container
):
    container(world)
    loop = loop_factory(world, rule_breakers={"restart-app": {"cooldown": "0s", "max_ineffective": 1}})
    loop.wait_quiet()
    world.docker.client.containers.get(SERVICE).kill()
    wait_for(lambda: resolved(loop, "StackAppDown"), 90, "the first failure to be healed")

    operator(loop, "pause", target=SERVICE, duration="1h", author="ana", reason="upgrade")
    world.docker.client.containers.get(SERVICE).stop(timeout=1)  # maintenance
    wait_for(
        lambda: sum(d["decision"] == "paused" for d in loop.decisions("StackAppDown")) >= 2,
        60,
        "two notifications held back by the pause",
    )
    assert len(loop.jenkins.builds()) == 1 and world.state() == "exited"
    operator(loop, "resume", target=SERVICE, author="ana", reason="upgrade done")

    # still down after the pause: healed, and the breaker (one ineffective action opens it) stays shut
    wait_for(world.answers, 60, "petclinic to be started after the pause")
    wait_for(lambda: resolved(loop, "StackAppDown"), 60, "StackAppDown to resolve")
    wait_for(lambda: len(loop.jenkins.finished()) == 2, 30, "the second build to finish")
    assert builds(loop) == [("stackmedic-restart", SERVICE, "SUCCESS")] * 2
    first = next(d for d in loop.decisions() if d["build"])
    assert first["build"]["ineffective"] is not True
    [state] = requests.get(f"{loop.receiver_url}/api/v1/breakers", timeout=5).json()["breakers"]
    assert (state["state"], state["consecutive_ineffective"]) == ("closed", 0)
    assert not told_people(loop, "StackRemediationEscalated")
