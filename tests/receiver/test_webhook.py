"""The webhook end to end against the Jenkins stand-in: exactly the builds Jenkins should see."""

from __future__ import annotations

import json
import re
import threading

import pytest
import requests

from harness.services import wait_for
from tests.receiver.helpers import AUTH, FakeClock, actions, alert, decisions, notification, settled


def post(app, body, headers=AUTH):
    return app.test_client().post("/api/v1/alerts", json=body, headers=headers)


def test_one_firing_alert_gives_one_build_with_the_right_parameters(make_app, standin):
    app = make_app()
    resp = post(app, notification(alert("petclinic")))
    assert resp.status_code == 200
    assert resp.json == {"status": "ok", "alerts": 1, "decisions": {"triggered": 1}}
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build to finish")
    [build] = standin.builds()
    assert build.job == "stackmedic-restart"
    assert build.params["SERVICE"] == "petclinic"
    [action] = actions(app)
    assert build.params["STACKMEDIC_ACTION_ID"] == action["build"]["action_token"]
    assert action["build"]["number"] == 1 and action["build"]["result"] == "SUCCESS"
    assert action["build"]["url"] == f"{standin.url}/job/stackmedic-restart/1/"
    assert [c.auth for c in standin.posts()] == ["token"]


def test_restore_rule_passes_the_database(make_app, standin):
    app = make_app()
    body = notification(
        {
            "status": "firing",
            "labels": {
                "alertname": "StackDatabaseTablesMissing",
                "remediation": "restore",
                "database": "petclinic",
            },
            "startsAt": "2026-01-01T10:00:00Z",
            "fingerprint": "db1",
        }
    )
    assert post(app, body).status_code == 200
    wait_for(lambda: settled(app) and standin.finished(), 10, "the restore build")
    assert [(b.job, b.params["DATABASE"]) for b in standin.builds()] == [("stackmedic-restore", "petclinic")]


def test_same_notification_20_times_from_two_senders_at_once_gives_one_build(make_app, standin, serve):
    app = make_app()
    url = serve(app) + "/api/v1/alerts"
    body = json.dumps(notification(alert("petclinic"), alert("wordpress")))
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def sender() -> None:
        session = requests.Session()
        barrier.wait()
        for _ in range(20):
            r = session.post(url, data=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=10)
            statuses.append(r.status_code)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    wait_for(lambda: settled(app) and len(standin.finished()) == 2, 10, "two builds")
    assert sorted(b.params["SERVICE"] for b in standin.builds()) == ["petclinic", "wordpress"]
    assert len(standin.posts()) == 2
    got = decisions(app)
    assert got.count("triggered") == 2 and got.count("duplicate") == 78


def test_group_resend_with_a_changed_alert_triggers_only_the_new_one(make_app, standin):
    app = make_app()
    post(app, notification(alert("petclinic")))
    post(app, notification(alert("petclinic"), alert("wordpress")))
    wait_for(lambda: settled(app) and len(standin.finished()) == 2, 10, "two builds")
    assert sorted(b.params["SERVICE"] for b in standin.builds()) == ["petclinic", "wordpress"]
    assert decisions(app) == ["triggered", "duplicate", "triggered"]


def test_same_instant_written_differently_is_the_same_incident(make_app, standin):
    app = make_app()
    post(app, notification(alert(starts_at="2026-01-01T10:00:00.500Z")))
    post(app, notification(alert(starts_at="2026-01-01T11:00:00.5+01:00")))
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    assert decisions(app) == ["triggered", "duplicate"]
    assert len(standin.builds()) == 1


def test_new_incident_after_the_cooldown_gives_a_second_build(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock)
    post(app, notification(alert(starts_at="2026-01-01T10:00:00Z")))
    wait_for(lambda: settled(app) and len(standin.finished()) == 1, 10, "the first build")
    post(app, notification(alert(status="resolved", starts_at="2026-01-01T10:00:00Z")))
    clock.advance(60)
    # a new incident within the cooldown (5m) waits ...
    post(app, notification(alert(starts_at="2026-01-01T10:01:00Z")))
    assert decisions(app)[-1] == "cooldown"
    clock.advance(300)
    # ... and Alertmanager's next repeat of the same incident, past the cooldown, is acted on
    post(app, notification(alert(starts_at="2026-01-01T10:01:00Z")))
    wait_for(lambda: settled(app) and len(standin.finished()) == 2, 10, "the second build")
    assert decisions(app) == ["triggered", "resolved", "cooldown", "triggered"]
    assert len(standin.builds()) == 2


def test_resolved_triggers_nothing_and_records_the_time_to_recover(make_app, standin):
    app = make_app()
    post(app, notification(alert(starts_at="2026-01-01T10:00:00Z")))
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    resp = post(app, notification(alert(status="resolved", starts_at="2026-01-01T10:00:00Z")))
    assert resp.json["decisions"] == {"resolved": 1}
    resolved = actions(app)[-1]
    assert resolved["decision"] == "resolved" and resolved["reason"] == (
        "healed by action #1 (stackmedic-restart #1): resolved 300s after it fired"
    )
    assert len(standin.posts()) == 1
    metrics = app.test_client().get("/metrics").data.decode()
    assert 'stackmedic_receiver_remediation_duration_seconds_count{rule="restart-app"} 1.0' in metrics
    assert 'stackmedic_receiver_remediation_duration_seconds_sum{rule="restart-app"} 300.0' in metrics
    # a firing notification of the finished incident, sent late, changes nothing
    post(app, notification(alert(starts_at="2026-01-01T10:00:00Z")))
    assert decisions(app)[-1] == "duplicate" and len(standin.posts()) == 1


def test_resolved_before_dispatch_cancels_the_action(make_app, standin):
    standin.fail(503)
    app = make_app(dispatcher={"backoff_initial": 30, "max_attempts": 3})
    post(app, notification(alert()))
    wait_for(lambda: actions(app)[0]["build"]["attempts"] == 1, 10, "a first attempt")
    wait_for(lambda: actions(app)[0]["build"]["state"] == "pending", 10, "the backoff")
    resp = post(app, notification(alert(status="resolved")))
    assert resp.json["decisions"] == {"resolved": 1}
    standin.fail(None)
    first, resolved = actions(app)
    assert first["build"]["state"] == "cancelled"
    assert resolved["reason"].endswith(f"action #{first['id']} cancelled before dispatch")
    assert [c.status for c in standin.posts()] == [503]
    assert standin.builds() == []


def test_resolved_while_the_build_runs_is_credited_to_it_once_it_succeeds(make_app, standin):
    # a restart job brings the service back, then waits for it to settle: the alert resolves first
    standin.build_duration = 2.0
    app = make_app()
    post(app, notification(alert(starts_at="2026-01-01T10:00:00Z")))
    wait_for(lambda: actions(app)[0]["build"]["state"] == "building", 10, "the build to start")
    post(app, notification(alert(status="resolved", starts_at="2026-01-01T10:00:00Z")))
    first, resolved = actions(app)
    assert resolved["reason"].endswith(
        f"action #{first['id']} (stackmedic-restart #1 building) was still running; credited to it if it succeeds"
    ), resolved["reason"]
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build to finish")
    first, resolved = actions(app)
    assert first["build"]["result"] == "SUCCESS"
    assert resolved["reason"].startswith(
        f"healed by action #{first['id']} (stackmedic-restart #1): resolved "
    )
    assert resolved["reason"].endswith("after it fired, while the build was finishing")
    assert len(standin.builds()) == 1


def test_resolved_while_the_build_is_only_queued_is_not_credited_to_it(make_app, standin):
    # the service came back before the build even started: the build's success did not heal it
    standin.hold_queue()
    app = make_app()
    post(app, notification(alert(starts_at="2026-01-01T10:00:00Z")))
    wait_for(lambda: actions(app)[0]["build"]["state"] == "queued", 10, "the queue item")
    post(app, notification(alert(status="resolved", starts_at="2026-01-01T10:00:00Z")))
    standin.hold_queue(False)
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build to finish")
    first, resolved = actions(app)
    assert first["build"]["result"] == "SUCCESS"
    assert resolved["reason"].endswith(f"without stackmedic: action #{first['id']} was still in progress")


def test_alert_without_a_rule_is_recorded_and_answered_200(make_app, standin):
    app = make_app()
    other = {"status": "firing", "labels": {"alertname": "Watchdog"}, "startsAt": "2026-01-01T10:00:00Z"}
    resp = post(app, notification(other))
    assert resp.status_code == 200 and resp.json["decisions"] == {"no_rule": 1}
    [recorded] = actions(app)
    assert recorded["decision"] == "no_rule" and recorded["alertname"] == "Watchdog"
    assert standin.calls == []


def test_dry_run_records_what_it_would_call(make_app, standin):
    app = make_app(dry_run=True)
    resp = post(app, notification(alert()))
    assert resp.json["decisions"] == {"dry_run": 1}
    [recorded] = actions(app)
    assert recorded["job"] == "stackmedic-restart" and recorded["params"] == {"SERVICE": "petclinic"}
    assert post(app, notification(alert())).json["decisions"] == {"duplicate": 1}
    assert standin.calls == []


def test_pause_everything_then_resume(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock)
    client = app.test_client()
    resp = client.post(
        "/api/v1/pause",
        json={"target": "*", "duration": "1h", "reason": "maintenance", "author": "ana"},
        headers=AUTH,
    )
    assert resp.status_code == 200 and resp.json["target"] == "*"
    assert post(app, notification(alert())).json["decisions"] == {"paused": 1}
    assert 'stackmedic_receiver_paused{target="*"} 1.0' in client.get("/metrics").data.decode()
    assert client.post("/api/v1/resume", json={"target": "*", "author": "ana"}, headers=AUTH).json == {
        "target": "*",
        "resumed": True,
    }
    # the repeat of the same incident after the pause is acted on
    assert post(app, notification(alert())).json["decisions"] == {"triggered": 1}
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    assert len(standin.builds()) == 1


def test_pause_of_one_target_expires(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock)
    client = app.test_client()
    assert (
        client.post(
            "/api/v1/pause", json={"target": "petclinic", "duration": 600, "author": "ana"}, headers=AUTH
        ).status_code
        == 200
    )
    resp = post(app, notification(alert("petclinic"), alert("wordpress")))
    assert resp.json["decisions"] == {"paused": 1, "triggered": 1}
    assert [p["target"] for p in client.get("/api/v1/pauses").json["pauses"]] == ["petclinic"]
    clock.advance(601)
    assert client.get("/api/v1/pauses").json["pauses"] == []
    assert post(app, notification(alert("petclinic"))).json["decisions"] == {"triggered": 1}
    wait_for(lambda: settled(app) and len(standin.finished()) == 2, 10, "two builds")
    assert sorted(b.params["SERVICE"] for b in standin.builds()) == ["petclinic", "wordpress"]


def test_pause_needs_credentials_and_a_valid_duration(make_app):
    client = make_app().test_client()
    assert client.post("/api/v1/pause", json={"duration": "1h"}).status_code == 401
    resp = client.post("/api/v1/pause", json={"target": "*"}, headers=AUTH)
    assert resp.status_code == 400 and resp.json["error"].startswith("duration: required")
    resp = client.post("/api/v1/pause", json={"duration": 31 * 86400}, headers=AUTH)
    assert (
        resp.status_code == 400 and resp.json["error"] == "duration: must be more than 0 and at most 30 days"
    )
    resp = client.post("/api/v1/pause", json={"duration": "90d"}, headers=AUTH)
    assert resp.json["error"] == "duration: required: seconds, or a number with a unit (90s, 30m, 2h, 7d)"


def test_operator_writes_need_an_author_and_are_audit_rows(make_app):
    app = make_app()
    client = app.test_client()
    resp = client.post("/api/v1/pause", json={"duration": "1h", "reason": "upgrade"}, headers=AUTH)
    assert (resp.status_code, resp.json["error"]) == (
        400,
        "author: required: who does this (a name or an e-mail address)",
    )
    resp = client.post("/api/v1/resume", json={"author": "x\ny"}, headers=AUTH)
    assert (resp.status_code, resp.json["error"]) == (400, "author: expected a name of 1 to 128 characters")
    assert (
        client.post("/api/v1/breakers/restart-app:petclinic/reset", json={}, headers=AUTH).status_code == 400
    )
    body = {"duration": "1h", "reason": "upgrade", "author": "ana"}
    assert client.post("/api/v1/pause", json=body, headers=AUTH).json["author"] == "ana"
    assert client.post("/api/v1/resume", json={"author": "bo"}, headers=AUTH).status_code == 200
    rows = [(a["decision"], a["target"], a["author"], a["reason"]) for a in actions(app)]
    assert rows == [("pause", "*", "ana", "upgrade"), ("resume", "*", "bo", "")]
    metrics = client.get("/metrics").data.decode()
    assert 'stackmedic_receiver_decisions_total{outcome="pause"}' not in metrics


def test_one_action_at_a_time_per_target(make_app, standin):
    standin.hold_queue()
    app = make_app()
    restart = alert("petclinic")
    restore = {
        "status": "firing",
        "labels": {
            "alertname": "StackDatabaseTablesMissing",
            "remediation": "restore",
            "database": "petclinic",
        },
        "startsAt": "2026-01-01T10:00:00Z",
        "fingerprint": "db",
    }
    post(app, notification(restart, restore))
    wait_for(lambda: len(standin.posts()) == 1, 10, "the first POST")
    # the second action for target "petclinic" waits until the first build is over
    assert wait_for(lambda: actions(app)[0]["build"]["state"] == "queued", 5, "queued")
    assert len(standin.posts()) == 1
    standin.hold_queue(False)
    wait_for(lambda: settled(app) and len(standin.finished()) == 2, 10, "both builds")
    first, second = standin.builds()
    assert (first.job, second.job) == ("stackmedic-restart", "stackmedic-restore")
    assert second.started >= first.finished


def test_actions_between_since_and_until_and_unknown_filters_are_refused(make_app):
    clock = FakeClock()
    app = make_app(clock=clock, dry_run=True)
    client = app.test_client()
    for n in range(3):
        post(app, notification(alert(f"app{n}")))
        clock.advance(60)
    got = client.get(
        "/api/v1/actions", query_string={"since": "2027-01-15T08:01:00Z", "until": 1_800_000_060}
    )
    assert [a["target"] for a in got.json["actions"]] == ["app1"]
    got = client.get("/api/v1/actions", query_string={"since": "2027-01-15T08:01:00Z"})
    assert [a["target"] for a in got.json["actions"]] == ["app2", "app1"]
    resp = client.get("/api/v1/actions?decision=bogus")
    assert (resp.status_code, resp.json["error"]) == (
        400,
        "decision: unknown value 'bogus': expected one of triggered, duplicate, no_rule, rejected_param,"
        " breaker_open, cooldown, paused, dry_run, failed, resolved, ineffective, escalated, pause, resume, reset",
    )
    resp = client.get("/api/v1/actions?since=yesterday")
    assert (resp.status_code, resp.json["error"]) == (
        400,
        "since: expected an RFC 3339 time (2026-12-01T08:00:00Z) or epoch seconds",
    )
    resp = client.get("/api/v1/actions?sinse=2026-01-01T00:00:00Z")
    assert (resp.status_code, resp.json["error"]) == (
        400,
        "unknown parameter 'sinse': expected decision, rule, target, state, limit, before, since, until",
    )


def test_since_and_until_take_epoch_seconds_in_any_number_notation(make_app):
    client = make_app(dry_run=True).test_client()
    for value in ("0", "1.5", "3.6e-99", "1.8E9"):
        assert client.get("/api/v1/actions", query_string={"since": value}).status_code == 200, value
    for value in ("-1", "1e13", "nan", "1..2"):
        assert client.get("/api/v1/actions", query_string={"until": value}).status_code == 400, value


AUTHORS = [
    "ana",
    "  ana  ",
    "Ana Lúcia",
    "ops@example.com",
    "\xa0",  # a no-break space: blank to str.strip(), and the document said it was a name
    "\u3000\u2003",
    " \xa0x",
    "x\x85",  # C1 controls are as invisible in the audit as C0 ones
    "x\ny",
    "\t",
    "",
    " ",
    "a" * 128,
    "a" * 129,
]


@pytest.mark.parametrize("author", AUTHORS)
def test_the_server_takes_exactly_the_authors_its_openapi_document_allows(make_app, author):
    """The fuzz test (test_fuzz.py) found an author the document allows and the server refused."""
    from stackmedic.receiver.views import openapi_document

    paths = openapi_document()["paths"]
    fields = [
        paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["author"]
        for path in ("/api/v1/pause", "/api/v1/resume", "/api/v1/breakers/{key}/reset")
    ]
    assert all(f == fields[0] for f in fields)  # one rule for the three
    field = fields[0]
    allowed = len(author) <= field["maxLength"] and re.search(field["pattern"], author) is not None
    body = {"author": author, "duration": "1h"}
    resp = make_app().test_client().post("/api/v1/pause", json=body, headers=AUTH)
    assert resp.status_code == (200 if allowed else 400), resp.json
    if allowed:
        assert resp.json["author"] == author.strip()


def test_the_author_blanks_are_what_str_strip_takes_off():
    from stackmedic.receiver.api import AUTHOR_BLANKS, AUTHOR_CONTROLS

    spaces = [c for c in map(chr, range(0x110000)) if c.isspace()]
    not_controls = {c for c in spaces if not re.fullmatch(f"[{AUTHOR_CONTROLS}]", c)}
    assert not_controls == {c for c in spaces if re.fullmatch(f"[{AUTHOR_BLANKS}]", c)}
