"""An incident stays open until its alert resolves, and the receiver keeps working on it.

Each test drives the receiver with a fake clock against the Jenkins stand-in: the same
incident fired again after the rule's settle time means the action did not help (it is acted
on again, within the breaker); a failed action does not close it; when the breaker opens or
the attempts are spent a person is paged once; maintenance never counts against the breaker.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.jenkins_standin import command_runner
from harness.services import require_binary, wait_for
from tests.receiver.helpers import AUTH, FakeClock, actions, alert, notification, settled
from tests.receiver.test_breaker import Hook

STARTS = "2027-01-15T08:00:00Z"  # the fake clock's start (1_800_000_000)
POLICY = {
    "cooldown": "5m",
    "max_actions": 3,
    "window": "1h",
    "ineffective_after": "15m",
    "max_ineffective": 2,
    "settle": "60s",
}


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def post(app, *alerts):
    resp = app.test_client().post("/api/v1/alerts", json=notification(*alerts), headers=AUTH)
    assert resp.status_code == 200, resp.data
    return resp.json["decisions"]


def builds_done(app, standin, n: int) -> None:
    wait_for(lambda: settled(app) and len(standin.finished()) == n, 10, f"build {n} to finish")


def metric(app, line_start: str) -> float | None:
    for line in app.test_client().get("/metrics").data.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_fix_that_does_not_help_is_tried_again_then_escalated_once(make_app, standin, hook):
    clock = FakeClock()
    app = make_app(clock=clock, breaker={**POLICY, "notify_url": hook.url})
    firing = alert(starts_at=STARTS)
    assert post(app, firing) == {"triggered": 1}
    builds_done(app, standin, 1)

    clock.advance(30)  # within the settle time: still waiting to see whether it worked
    assert post(app, firing) == {"duplicate": 1}
    assert actions(app)[-1]["reason"] == "action #1 finished SUCCESS 30s ago: settling until 60s have passed"

    clock.advance(31)  # past it, and still firing: the restart did not help
    assert post(app, firing) == {"ineffective": 1, "triggered": 1}
    ineffective, again = actions(app)[-2:]
    assert (
        ineffective["reason"]
        == "action #1 (stackmedic-restart #1 SUCCESS) did not fix it: still firing 61s after"
    )
    assert again["reason"] == "attempt 2 for this incident"
    builds_done(app, standin, 2)
    assert [a["build"]["ineffective"] for a in actions(app) if a["build"]] == [True, None]

    clock.advance(61)
    assert post(app, firing) == {"ineffective": 1, "escalated": 1}
    escalated = actions(app)[-1]
    assert escalated["reason"] == (
        "a person is needed: 2 consecutive actions did not fix it; 2 attempts, last stackmedic-restart #2 SUCCESS"
    )
    assert metric(app, 'stackmedic_receiver_escalations_total{rule="restart-app",target="petclinic"}') == 1.0
    assert metric(app, 'stackmedic_receiver_escalated{rule="restart-app",target="petclinic"}') == 1.0
    assert metric(app, 'stackmedic_receiver_incident_attempts{rule="restart-app",target="petclinic"}') == 2.0
    wait_for(lambda: [e for e in hook.events if e["event"] == "escalated"], 5, "the escalation notification")
    [event] = [e for e in hook.events if e["event"] == "escalated"]
    assert (event["rule"], event["target"], event["attempts"]) == ("restart-app", "petclinic", 2)
    assert event["severity"] == "critical"
    assert event["last_build"] == {
        "job": "stackmedic-restart",
        "number": 2,
        "result": "SUCCESS",
        "url": f"{standin.url}/job/stackmedic-restart/2/",
    }

    [open_incident] = app.test_client().get("/api/v1/incidents").json["open"]
    assert (open_incident["target"], open_incident["state"], len(open_incident["attempts"])) == (
        "petclinic",
        "escalated",
        2,
    )
    assert (
        open_incident["next"] == "nothing: a person is needed; then reset the breaker restart-app:petclinic"
    )

    clock.advance(61)  # paged once per incident; Alertmanager's repeats change nothing
    assert post(app, firing) == {"breaker_open": 1}
    assert len(standin.posts()) == 2
    assert metric(app, 'stackmedic_receiver_escalations_total{rule="restart-app",target="petclinic"}') == 1.0

    clock.advance(100)  # a person fixed it by hand: stackmedic does not claim it
    assert post(app, alert("petclinic", "resolved", STARTS)) == {"resolved": 1}
    assert actions(app)[-1]["reason"] == (
        "resolved 283s after it fired, without stackmedic: action #4 did not fix it"
    )
    assert metric(app, 'stackmedic_receiver_escalated{rule="restart-app",target="petclinic"}') == 0.0
    assert metric(app, 'stackmedic_receiver_incident_attempts{rule="restart-app",target="petclinic"}') == 0.0


def test_a_failed_build_is_tried_again_at_the_next_notification(make_app, standin):
    clock = FakeClock()
    results = iter(["FAILURE", "SUCCESS"])
    standin.jobs["stackmedic-restart"] = lambda params: next(results)
    app = make_app(clock=clock, breaker=POLICY)
    firing = alert(starts_at=STARTS)
    assert post(app, firing) == {"triggered": 1}
    builds_done(app, standin, 1)
    clock.advance(5)  # no settle time for a build that failed
    assert post(app, firing) == {"ineffective": 1, "triggered": 1}
    builds_done(app, standin, 2)
    clock.advance(5)
    assert post(app, alert("petclinic", "resolved", STARTS)) == {"resolved": 1}
    assert (
        actions(app)[-1]["reason"]
        == "healed by action #3 (stackmedic-restart #2): resolved 10s after it fired"
    )


def test_jenkins_unreachable_past_the_retries_does_not_close_the_incident(make_app, standin):
    clock = FakeClock()
    app = make_app(
        clock=clock,
        breaker=POLICY,
        dispatcher={"backoff_initial": 0.01, "backoff_max": 0.02, "max_attempts": 2},
    )
    standin.fail(503)
    firing = alert(starts_at=STARTS)
    assert post(app, firing) == {"triggered": 1}

    def failed() -> bool:
        clock.advance(1)  # the dispatcher's backoff runs on the receiver's clock
        return settled(app)

    wait_for(failed, 10, "the action to fail")
    clock.advance(60)
    assert actions(app)[-1]["decision"] == "failed"
    standin.fail(None)  # Alertmanager's next repeat, Jenkins is back
    assert post(app, firing) == {"triggered": 1}
    assert actions(app)[-1]["reason"] == "attempt 2 for this incident: action #1 failed"
    builds_done(app, standin, 1)
    assert len(standin.finished()) == 1


def test_an_incident_during_a_pause_never_counts_against_the_breaker(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock, breaker={**POLICY, "max_ineffective": 1})
    client = app.test_client()
    first = alert(starts_at=STARTS)
    assert post(app, first) == {"triggered": 1}
    builds_done(app, standin, 1)
    clock.advance(20)
    assert post(app, alert("petclinic", "resolved", STARTS)) == {"resolved": 1}
    body = {"target": "petclinic", "duration": "1h", "author": "ana", "reason": "upgrade"}
    assert client.post("/api/v1/pause", json=body, headers=AUTH).status_code == 200
    clock.advance(60)  # the service is stopped for the upgrade
    second = alert(starts_at="2027-01-15T08:01:20Z", fingerprint="fp-petclinic")
    assert post(app, second) == {"paused": 1}
    body = {"target": "petclinic", "author": "ana", "reason": "done"}
    assert client.post("/api/v1/resume", json=body, headers=AUTH).status_code == 200
    clock.advance(300)  # past the cooldown; the incident that began in the pause still fires
    assert post(app, second) == {"triggered": 1}
    [first_action] = [a for a in actions(app) if a["build"] and a["id"] == 1]
    assert first_action["build"]["ineffective"] is False
    [state] = client.get("/api/v1/breakers").json["breakers"]
    assert (state["state"], state["consecutive_ineffective"]) == ("closed", 0)


def test_a_reset_clears_the_cooldown_unless_told_not_to(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock, breaker=POLICY)
    client = app.test_client()
    assert post(app, alert(starts_at=STARTS)) == {"triggered": 1}
    builds_done(app, standin, 1)
    assert post(app, alert("petclinic", "resolved", STARTS)) == {"resolved": 1}
    clock.advance(60)
    second = alert(starts_at="2027-01-15T08:01:00Z")
    assert post(app, second) == {"cooldown": 1}
    [state] = client.get("/api/v1/breakers").json["breakers"]
    assert state["next_action_at"] == "2027-01-15T08:05:00.000Z"  # the cooldown's end
    reset = "/api/v1/breakers/restart-app:petclinic/reset"
    body = {"author": "ana", "reason": "checked", "keep_cooldown": True}
    assert client.post(reset, json=body, headers=AUTH).status_code == 200
    assert post(app, second) == {"cooldown": 1}
    resp = client.post(reset, json={"author": "ana", "reason": "go"}, headers=AUTH)
    assert resp.status_code == 200 and resp.json["next_action_at"] is None
    assert post(app, second) == {"triggered": 1}
    rows = [(a["decision"], a["author"], a["reason"]) for a in actions(app) if a["decision"] == "reset"]
    assert rows == [
        ("reset", "ana", "checked (cooldown kept)"),
        ("reset", "ana", "go"),
    ]


RESTORE_LINE = {
    "status": "ok",
    "command": "restore",
    "database": "petclinic",
    "restored_from": "petclinic-20270115T060000Z.sql.gz",
    "backup_age_seconds": 7200,
    "tables": {"owners": 11, "pets": 13},
    "rollback_point": "safety/petclinic-20270115T075959Z.sql.gz",
}


def test_a_restore_says_what_it_restored_in_the_audit_the_notification_and_the_metrics(
    make_app, standin, hook
):
    line = json.dumps(RESTORE_LINE)
    standin.jobs["stackmedic-restore"] = command_runner(["sh", "-c", f"echo progress >&2; echo '{line}'"])
    app = make_app(breaker={**POLICY, "notify_url": hook.url})
    firing = {
        "status": "firing",
        "labels": {
            "alertname": "StackDatabaseTablesMissing",
            "remediation": "restore",
            "database": "petclinic",
        },
        "startsAt": STARTS,
        "fingerprint": "db-petclinic",
    }
    assert post(app, firing) == {"triggered": 1}
    builds_done(app, standin, 1)
    summary = (
        "restored petclinic from petclinic-20270115T060000Z.sql.gz (2h00m old); 2 table(s): owners, pets;"
        " rollback point safety/petclinic-20270115T075959Z.sql.gz"
    )
    [action] = [a for a in actions(app) if a["build"]]
    assert action["build"]["summary"] == summary
    assert action["build"]["report"] == RESTORE_LINE
    wait_for(lambda: [e for e in hook.events if e["event"] == "performed"], 5, "the performed notification")
    [event] = [e for e in hook.events if e["event"] == "performed"]
    assert (event["rule"], event["target"], event["summary"]) == ("restore-database", "petclinic", summary)
    assert event["build"]["number"] == 1 and event["result"]["restored_from"] == RESTORE_LINE["restored_from"]
    info = (
        'stackmedic_receiver_last_action_info{build="1",jenkins_job="stackmedic-restore",result="SUCCESS",'
        f'rule="restore-database",summary="{summary}",target="petclinic"}}'
    )
    assert metric(app, info) == 1.0
    stamp = 'stackmedic_receiver_last_action_timestamp_seconds{jenkins_job="stackmedic-restore",result="SUCCESS",rule="restore-database",target="petclinic"}'
    assert metric(app, stamp) is not None
    decided = (
        'stackmedic_receiver_last_decision_timestamp_seconds{rule="restore-database",target="petclinic"}'
    )
    assert metric(app, decided) is not None
    # the new series follow Prometheus' conventions
    text = app.test_client().get("/metrics").data.decode()
    checked = subprocess.run(
        [require_binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_an_alert_no_rule_matches_is_counted_and_logged_once(make_app, caplog):
    app = make_app()
    other = {"status": "firing", "labels": {"alertname": "StackNewThing"}, "startsAt": STARTS}
    with caplog.at_level("WARNING", logger="stackmedic.receiver.intake"):
        for _ in range(3):
            assert post(app, other) == {"no_rule": 1}
    assert metric(app, 'stackmedic_receiver_unmatched_alerts_total{alertname="StackNewThing"}') == 3.0
    logged = [r.getMessage() for r in caplog.records if "no rule matches" in r.getMessage()]
    assert logged == [
        "no rule matches alertname=StackNewThing: nothing is done for it (logged once per name)"
    ]


def test_an_incident_held_back_by_a_silence_does_not_mark_the_last_fix_ineffective(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock, breaker={**POLICY, "cooldown": "0s", "max_ineffective": 1})
    assert post(app, alert(starts_at=STARTS)) == {"triggered": 1}
    builds_done(app, standin, 1)
    assert post(app, alert("petclinic", "resolved", STARTS)) == {"resolved": 1}
    # stopped during a silence 2 min later; Alertmanager sends it when the silence ends, 8 min on
    clock.advance(600)
    silenced = alert(starts_at="2027-01-15T08:02:00Z", fingerprint="fp-petclinic")
    assert post(app, silenced) == {"triggered": 1}
    assert [a["build"]["ineffective"] for a in actions(app) if a["build"]] == [False, None]
    # the same, heard at once: the fix of 2 min ago did not stick (the breaker opens at 1)
    builds_done(app, standin, 2)
    prompt = alert(starts_at="2027-01-15T08:10:30Z", fingerprint="fp-petclinic")
    clock.advance(35)
    assert post(app, prompt) == {"escalated": 1}


def test_after_a_reset_the_same_incident_is_tried_again_and_escalated_again_if_it_still_fails(
    make_app, standin
):
    clock = FakeClock()
    app = make_app(clock=clock, breaker={**POLICY, "max_ineffective": 1})
    firing = alert(starts_at=STARTS)
    escalated = 'stackmedic_receiver_escalated{rule="restart-app",target="petclinic"}'
    assert post(app, firing) == {"triggered": 1}
    builds_done(app, standin, 1)
    clock.advance(61)
    assert post(app, firing) == {"ineffective": 1, "escalated": 1}
    assert metric(app, escalated) == 1.0
    reset = "/api/v1/breakers/restart-app:petclinic/reset"
    assert app.test_client().post(reset, json={"author": "ana"}, headers=AUTH).status_code == 200
    assert metric(app, escalated) == 0.0  # a person took it over
    clock.advance(5)
    assert post(app, firing) == {"triggered": 1}
    assert actions(app)[-1]["reason"] == "attempt 2 for this incident: action #1 did not fix it"
    builds_done(app, standin, 2)
    clock.advance(61)
    assert post(app, firing) == {"ineffective": 1, "escalated": 1}
    assert metric(app, 'stackmedic_receiver_escalations_total{rule="restart-app",target="petclinic"}') == 2.0
