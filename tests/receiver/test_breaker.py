"""The loop breaker: pure decisions with a moved clock, then a fix that never sticks, end to end."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from stackmedic.receiver import breaker
from stackmedic.receiver.config import BreakerPolicy
from stackmedic.receiver.model import Action, ActionState, Breaker, Decision

from harness.services import wait_for
from tests.receiver.helpers import AUTH, FakeClock, actions, alert, decisions, notification, settled

POLICY = BreakerPolicy(cooldown=300, max_actions=3, window=3600, ineffective_after=900, max_ineffective=2)


def closed_row(**changes) -> Breaker:
    return replace(Breaker(bkey="r:t", rule="r", target="t"), **changes)


def done(
    action_id: int, created: float, finished: float, result: str = "SUCCESS", ineffective=None
) -> Action:
    return Action(
        id=action_id,
        created_at=created,
        decision=Decision.TRIGGERED,
        state=ActionState.DONE,
        result=result,
        finished_at=finished,
        ineffective=ineffective,
    )


def test_first_incident_is_allowed():
    assert breaker.evaluate(closed_row(), POLICY, None, 0, 1000.0).allow


def test_cooldown_after_an_action():
    row = closed_row()
    verdict = breaker.evaluate(row, POLICY, done(1, 1000, 1010), 1, 1000 + 299)
    assert (verdict.allow, verdict.decision) == (False, "cooldown")
    assert verdict.reason == "cooldown: 1s left after action #1"
    assert breaker.evaluate(closed_row(), POLICY, done(1, 1000, 1010), 1, 1000 + 300 + 900).allow


def test_action_still_running_blocks_as_cooldown():
    running = replace(done(1, 0, 0), state="building", result=None)
    verdict = breaker.evaluate(closed_row(), POLICY, running, 1, 10_000)
    assert (verdict.allow, verdict.decision, verdict.reason) == (
        False,
        "cooldown",
        "previous action #1 still in progress",
    )


def test_new_incident_soon_after_a_successful_build_marks_it_ineffective():
    row = closed_row()
    verdict = breaker.evaluate(row, POLICY, done(7, 0, 100), 1, 100 + 900)
    assert verdict.judged == (7, 1) and row.ineffective == 1 and verdict.allow
    row = closed_row(ineffective=1)
    verdict = breaker.evaluate(row, POLICY, done(8, 0, 100), 1, 100 + 901)
    assert verdict.judged == (8, 0) and row.ineffective == 0


def test_failed_build_is_ineffective_whenever_the_alert_comes_back():
    row = closed_row()
    verdict = breaker.evaluate(row, POLICY, done(3, 0, 100, result="FAILURE"), 1, 100_000)
    assert verdict.judged == (3, 1) and row.ineffective == 1


def test_consecutive_ineffective_actions_open_the_breaker():
    row = closed_row(ineffective=1)
    verdict = breaker.evaluate(row, POLICY, done(2, 0, 100), 2, 600)
    assert (verdict.allow, verdict.decision, verdict.opened) == (False, "breaker_open", True)
    assert row.state == "open" and row.opened_at == 600
    assert row.reason == "2 consecutive actions did not fix it"


def test_too_many_actions_in_the_window_open_the_breaker():
    row = closed_row()
    verdict = breaker.evaluate(row, POLICY, done(3, 0, 10, ineffective=0), 3, 2000)
    assert verdict.opened and row.reason == "3 actions within 1h"


def test_open_breaker_stays_open_without_reset_timeout():
    row = closed_row(state="open", opened_at=0.0, reason="x")
    verdict = breaker.evaluate(row, POLICY, done(3, 0, 10, ineffective=1), 0, 10**9)
    assert (verdict.allow, verdict.decision, verdict.opened) == (False, "breaker_open", False)


def test_reset_timeout_allows_one_trial_then_reopens_if_it_fails():
    policy = BreakerPolicy(
        cooldown=300, max_actions=3, window=3600, ineffective_after=900, max_ineffective=2, reset_timeout=3600
    )
    row = closed_row(state="open", opened_at=0.0, reason="x", ineffective=2)
    assert not breaker.evaluate(row, policy, done(3, 0, 10, ineffective=1), 0, 3599).allow
    trial = breaker.evaluate(row, policy, done(3, 0, 10, ineffective=1), 0, 3600)
    assert trial.allow and trial.trial and row.state == "half_open"
    running = replace(done(4, 3600, 3600), state="queued", result=None)
    assert breaker.evaluate(row, policy, running, 1, 3700).decision == "breaker_open"
    again = breaker.evaluate(row, policy, done(4, 3600, 3700), 1, 3800)
    assert again.opened and row.state == "open" and row.reason == "the trial action did not fix it"


def test_successful_trial_closes_the_breaker():
    policy = BreakerPolicy(reset_timeout=60, ineffective_after=900)
    row = closed_row(state="half_open", opened_at=0.0, ineffective=2, trial_action_id=4)
    trial = done(4, 100, 200)
    assert not breaker.close_proven_trial(row, trial, policy, 1100)
    assert breaker.close_proven_trial(row, trial, policy, 1101)
    assert row.state == "closed" and row.ineffective == 0 and row.reset_at == 1101


def test_reset_starts_the_window_again():
    row = closed_row(state="open", opened_at=5.0, ineffective=3)
    breaker.reset(row, 1000.0)
    assert row.state == "closed" and row.ineffective == 0
    assert breaker.window_start(row, POLICY, 1500.0) == 1000.0
    assert breaker.window_start(row, POLICY, 10_000.0) == 10_000.0 - 3600


def stamp(ts: float) -> str:
    """RFC 3339 of the fake clock's time: alerts start when the receiver hears of them."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Hook:
    """A notification URL on 127.0.0.1 that keeps what it is sent."""

    def __init__(self):
        self.events: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def fire_and_heal(app, standin, clock, n: int) -> None:
    """Incident n fires, its build runs, it resolves; then the clock passes the cooldown."""
    starts = stamp(clock.now)
    assert app.test_client().post(
        "/api/v1/alerts", json=notification(alert(starts_at=starts)), headers=AUTH
    ).json["decisions"] == {"triggered": 1}
    wait_for(lambda: settled(app) and len(standin.finished()) == n, 10, f"build {n}")
    app.test_client().post(
        "/api/v1/alerts", json=notification(alert("petclinic", "resolved", starts)), headers=AUTH
    )
    clock.advance(301)


def test_fix_that_never_sticks_opens_the_breaker_which_survives_a_restart_until_reset(
    make_app, standin, hook
):
    clock = FakeClock()
    breaker_config = {
        "cooldown": "5m",
        "max_actions": 3,
        "window": "1h",
        "ineffective_after": "15m",
        "max_ineffective": 0,
        "notify_url": hook.url,
    }
    app = make_app(clock=clock, breaker=breaker_config)
    for n in (1, 2, 3):
        fire_and_heal(app, standin, clock, n)
    client = app.test_client()
    resp = client.post("/api/v1/alerts", json=notification(alert(starts_at=stamp(clock.now))), headers=AUTH)
    assert resp.json["decisions"] == {"escalated": 1}  # the breaker opened on it: a person is paged
    assert actions(app)[-1]["reason"] == "a person is needed: 3 actions within 1h"
    assert len(standin.posts()) == 3
    metrics = client.get("/metrics").data.decode()
    assert 'stackmedic_receiver_breaker_open{rule="restart-app",target="petclinic"} 1.0' in metrics
    wait_for(lambda: [e for e in hook.events if e["event"] == "breaker_open"], 5, "the breaker notification")
    assert [e for e in hook.events if e["event"] == "breaker_open"] == [
        {
            "event": "breaker_open",
            "key": "restart-app:petclinic",
            "rule": "restart-app",
            "target": "petclinic",
            "reason": "3 actions within 1h",
            "opened_at": clock.now,
        }
    ]

    # a restart: the state is in the store
    app.extensions["stackmedic"].close()
    app = make_app(clock=clock, breaker=breaker_config)
    client = app.test_client()
    clock.advance(7200)
    [state] = client.get("/api/v1/breakers").json["breakers"]
    assert (state["key"], state["state"], state["open"]) == ("restart-app:petclinic", "open", 1.0)
    later = stamp(clock.now)
    resp = client.post("/api/v1/alerts", json=notification(alert(starts_at=later)), headers=AUTH)
    assert resp.json["decisions"] == {"breaker_open": 1}
    assert len(standin.posts()) == 3

    # only an operator closes it
    assert client.post("/api/v1/breakers/restart-app:petclinic/reset").status_code == 401
    assert (
        client.post("/api/v1/breakers/nothing:here/reset", json={"author": "ana"}, headers=AUTH).status_code
        == 404
    )
    resp = client.post("/api/v1/breakers/restart-app:petclinic/reset", json={"author": "ana"}, headers=AUTH)
    assert resp.status_code == 200 and resp.json["state"] == "closed"
    resp = client.post("/api/v1/alerts", json=notification(alert(starts_at=later)), headers=AUTH)
    assert resp.json["decisions"] == {"triggered": 1}
    wait_for(lambda: settled(app) and len(standin.finished()) == 4, 10, "build 4")
    assert len(standin.builds()) == 4


def test_ineffective_fixes_open_the_breaker_and_a_trial_runs_after_the_reset_timeout(make_app, standin):
    clock = FakeClock()
    app = make_app(
        clock=clock,
        breaker={
            "cooldown": "5m",
            "max_actions": 10,
            "window": "1h",
            "ineffective_after": "15m",
            "max_ineffective": 2,
            "reset_timeout": "1h",
        },
    )
    client = app.test_client()
    for n in (1, 2):
        fire_and_heal(app, standin, clock, n)  # each new incident comes 5 min after the last build
    third = stamp(clock.now)
    resp = client.post("/api/v1/alerts", json=notification(alert(starts_at=third)), headers=AUTH)
    assert resp.json["decisions"] == {"escalated": 1}
    assert [a["build"]["ineffective"] for a in actions(app) if a["build"]] == [True, True]
    clock.advance(3600)
    resp = client.post("/api/v1/alerts", json=notification(alert(starts_at=third)), headers=AUTH)
    assert resp.json["decisions"] == {"triggered": 1}
    wait_for(lambda: settled(app) and len(standin.finished()) == 3, 10, "the trial build")
    [state] = client.get("/api/v1/breakers").json["breakers"]
    assert state["state"] == "half_open" and state["open"] == 0.5
    clock.advance(60)
    resp = client.post("/api/v1/alerts", json=notification(alert(starts_at=stamp(clock.now))), headers=AUTH)
    assert resp.json["decisions"] == {"escalated": 1}
    assert client.get("/api/v1/breakers").json["breakers"][0]["reason"] == "the trial action did not fix it"
    assert len(standin.builds()) == 3
    assert decisions(app).count("triggered") == 3
