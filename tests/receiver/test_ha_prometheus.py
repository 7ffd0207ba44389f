"""One outage seen by two Prometheus replicas that label their alerts apart: one action (issue 12)."""

from __future__ import annotations

from harness.services import wait_for
from tests.receiver.helpers import AUTH, FakeClock, actions, alert, notification, settled

BREAKER = {"cooldown": "5m", "settle": "10m", "max_actions": 3, "window": "1h", "max_ineffective": 0}


def post(app, body) -> dict:
    resp = app.test_client().post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.data
    return resp.json["decisions"]


def both(**kw) -> dict:
    """The same alert from Prometheus replicas a and b: distinct fingerprints, one target."""
    return notification(
        alert(fingerprint="fp-from-a", prometheus_replica="a", **kw),
        alert(fingerprint="fp-from-b", prometheus_replica="b", **kw),
    )


def test_concurrent_incidents_of_one_rule_and_target_share_one_action(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock, breaker=BREAKER)
    assert post(app, both()) == {"triggered": 1, "duplicate": 1}
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    # past the cooldown, inside the settle time: both incidents wait for the one action to work
    # (the second incident used to count as new and start a second build here)
    clock.advance(360)
    assert post(app, both()) == {"duplicate": 2}
    assert len(standin.posts()) == 1
    # both alerts resolve: healed by the one action
    assert post(app, both(status="resolved")) == {"resolved": 2}
    assert [a["incident_id"] for a in actions(app) if a["decision"] == "triggered"] == [1]


def test_one_incident_resolving_does_not_cancel_the_action_the_other_still_needs(make_app, standin):
    standin.hold_queue()
    app = make_app(breaker=BREAKER, dispatcher={"autostart": False})
    assert post(app, both()) == {"triggered": 1, "duplicate": 1}
    resolved_a = notification(alert(fingerprint="fp-from-a", prometheus_replica="a", status="resolved"))
    assert post(app, resolved_a) == {"resolved": 1}
    [triggered] = [a for a in actions(app) if a["decision"] == "triggered"]
    assert triggered["build"]["state"] == "pending"
    resolved_b = notification(alert(fingerprint="fp-from-b", prometheus_replica="b", status="resolved"))
    assert post(app, resolved_b) == {"resolved": 1}
    [triggered] = [a for a in actions(app) if a["decision"] == "triggered"]
    assert triggered["build"]["state"] == "cancelled"
