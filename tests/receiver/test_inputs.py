"""Bad payloads, bad credentials, oversized bodies, hostile label values: the right 4xx and no build."""

from __future__ import annotations

import base64
import json

import pytest
import requests
from stackmedic.receiver import payload
from stackmedic.receiver.auth import EXPLAINED
from stackmedic.receiver.config import RuleConfig
from stackmedic.receiver.rules import ParamRejected, Rule

from harness.services import wait_for
from tests.receiver.helpers import AUTH, TOKEN, actions, alert, notification


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Basic !!!"},
        basic("alertmanager", "wrong"),
        {"Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()},  # no colon
    ],
)
def test_bad_credentials_get_401_with_challenges_and_no_build(make_app, standin, headers):
    app = make_app()
    resp = app.test_client().post("/api/v1/alerts", json=notification(alert()), headers=headers)
    assert resp.status_code == 401
    assert resp.json["error"] == "authentication required: a bearer token"
    assert resp.json["reason"] in EXPLAINED.values()  # why, never the credential
    # Basic is never advertised: a browser never asks for, nor keeps, Basic credentials
    assert resp.headers.getlist("WWW-Authenticate") == ['Bearer realm="stackmedic"']
    assert actions(app) == [] and standin.calls == []


def test_the_token_as_basic_password_is_refused_unless_basic_is_configured(make_app):
    app = make_app()
    resp = app.test_client().post("/api/v1/alerts", json=notification(alert()), headers=basic("am", TOKEN))
    assert resp.status_code == 401
    metrics = app.test_client().get("/metrics").text
    assert 'stackmedic_receiver_auth_failures_total{reason="basic_not_allowed"} 1.0' in metrics


def test_configured_basic_auth_is_for_the_webhook_only(make_app, monkeypatch):
    monkeypatch.setenv("TEST_BASIC_PW", "s3cret")
    app = make_app(auth={"basic_auth": {"username": "alertmanager", "password_env": "TEST_BASIC_PW"}})
    client = app.test_client()
    am = basic("alertmanager", "s3cret")
    assert client.post("/api/v1/alerts", json=notification(), headers=am).status_code == 200
    assert (
        client.post("/api/v1/alerts", json=notification(), headers=basic("other", "s3cret")).status_code
        == 401
    )
    assert client.post("/api/v1/alerts", json=notification(), headers=AUTH).status_code == 401
    # Alertmanager's Basic user cannot pause anything
    pause = {"target": "*", "duration": "1h", "author": "x"}
    assert client.post("/api/v1/pause", json=pause, headers=am).status_code == 401


def test_auth_none_must_be_explicit(make_app):
    app = make_app(auth="none")
    assert app.test_client().post("/api/v1/alerts", json=notification()).status_code == 200


def test_oversized_body_gets_413_and_no_build(make_app, standin):
    app = make_app(web={"max_body_bytes": 4096})
    big = notification(alert(padding="x" * 5000))
    resp = app.test_client().post(
        "/api/v1/alerts", data=json.dumps(big), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json["error"].startswith("The data value transmitted exceeds the capacity limit")
    assert actions(app) == [] and standin.calls == []


def test_oversized_body_through_waitress(make_app, standin, serve):
    app = make_app(web={"max_body_bytes": 4096})
    url = serve(app)
    resp = requests.post(f"{url}/api/v1/alerts", data="x" * 10_000, headers=AUTH, timeout=10)
    assert resp.status_code == 413
    assert standin.calls == []


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (b"{not json", "(body)", "not valid JSON"),
        (b"[]", "(body)", "expected a JSON object"),
        (b"{}", "alerts", "required: a list of alerts"),
        (b'{"version": "3", "alerts": []}', "version", "unsupported version '3': expected '4'"),
        (b'{"alerts": [1]}', "alerts[0]", "expected an object"),
        (
            b'{"alerts": [{"status": "on", "labels": {}, "startsAt": "2026-01-01T00:00:00Z"}]}',
            "alerts[0].status",
            "expected 'firing' or 'resolved'",
        ),
        (
            b'{"alerts": [{"status": "firing", "labels": {"a": 1}, "startsAt": "2026-01-01T00:00:00Z"}]}',
            "alerts[0].labels.a",
            "expected a string",
        ),
        (
            b'{"alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}]}',
            "alerts[0].startsAt",
            "expected an RFC 3339 time such as 2024-05-01T10:00:00.123Z",
        ),
        (
            b'{"alerts": [{"status": "firing", "labels": {}}]}',
            "alerts[0].startsAt",
            "expected an RFC 3339 time (string)",
        ),
        (
            b'{"alerts": [{"status": "firing", "labels": {}, "startsAt": "2026-02-30T00:00:00Z"}]}',
            "alerts[0].startsAt",
            "invalid time: day is out of range for month",
        ),
        (
            b'{"alerts": [{"status": "firing", "labels": {}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": ""}]}',
            "alerts[0].fingerprint",
            "expected 1 to 128 letters, digits, '-' or '_'",
        ),
    ],
)
def test_invalid_payload_gets_400_naming_the_problem(make_app, standin, body, path, message):
    app = make_app()
    resp = app.test_client().post(
        "/api/v1/alerts", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json["error"] == "invalid payload"
    assert any(p["path"] == path and p["message"].startswith(message) for p in resp.json["problems"]), (
        resp.json
    )
    assert actions(app) == [] and standin.calls == []


def test_every_problem_is_reported_at_once(make_app):
    bad = {"alerts": [{"status": "x", "labels": [], "startsAt": 5}]}
    resp = make_app().test_client().post("/api/v1/alerts", json=bad, headers=AUTH)
    assert [p["path"] for p in resp.json["problems"]] == [
        "alerts[0].status",
        "alerts[0].labels",
        "alerts[0].startsAt",
    ]


def test_unknown_fields_are_accepted(make_app):
    body = notification(alert(), notification_reason="repeat", somethingNew={"x": 1})
    body["alerts"][0]["newField"] = [1, 2]
    resp = make_app().test_client().post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status_code == 200 and resp.json["decisions"] == {"triggered": 1}


@pytest.mark.parametrize(
    "value",
    [
        "; rm -rf /",
        "../etc",
        "petclinic\nwordpress",
        "petclinic\n",
        "Petclinic",
        "a" * 64,
        "$(reboot)",
        "petclinic wordpress",
        "",
    ],
)
def test_hostile_label_value_gets_422_is_recorded_and_never_built(make_app, standin, value):
    app = make_app()
    resp = app.test_client().post(
        "/api/v1/alerts", json=notification(alert(value), alert("wordpress")), headers=AUTH
    )
    assert resp.status_code == 422
    assert resp.json["decisions"] == {"rejected_param": 1, "triggered": 1}
    [rejected] = resp.json["rejected"]
    assert rejected["alert"] == 0 and rejected["label"] == "compose_service"
    recorded = actions(app)[0]
    assert recorded["decision"] == "rejected_param" and recorded["reason"] == rejected["reason"]
    wait_for(lambda: standin.finished(), 10, "the valid alert's build")
    assert [b.params["SERVICE"] for b in standin.builds()] == ["wordpress"]


def test_rule_rejects_values_outside_the_allow_pattern():
    rule = Rule(
        RuleConfig(
            name="r", job="j", target="svc", params={"S": "{svc}", "FIXED": "x"}, allow={"svc": "^[a-z]+$"}
        )
    )
    assert rule.render({"svc": "petclinic"}).params == {"S": "petclinic", "FIXED": "x"}
    with pytest.raises(ParamRejected, match=r"label svc='pet\\nclinic' contains a control character"):
        rule.render({"svc": "pet\nclinic"})
    with pytest.raises(ParamRejected, match=r"does not match the allow pattern \^\[a-z\]\+\$"):
        rule.render({"svc": "../x"})
    with pytest.raises(ParamRejected, match="label svc='' is missing"):
        rule.render({})


def test_rule_matching_follows_alertmanager():
    rule = Rule(
        RuleConfig(
            name="r",
            job="j",
            target="svc",
            match={"remediation": "restart"},
            match_re={"svc": "pet.*"},
            allow={"svc": ".*"},
        )
    )
    assert rule.matches({"remediation": "restart", "svc": "petclinic"})
    assert not rule.matches({"remediation": "restart", "svc": "xpetclinic"})  # anchored
    assert not rule.matches({"remediation": "restore", "svc": "petclinic"})
    assert Rule(RuleConfig(name="r", job="j", target="s", match={"gone": ""})).matches({})


def test_times_are_canonical_instants():
    a = payload.parse_time("2026-01-01T10:00:00.5Z")
    b = payload.parse_time("2026-01-01T11:00:00.500000000+01:00")
    assert a[0] == b[0] == "2026-01-01T10:00:00.500000000Z" and a[1] == b[1]
    assert payload.parse_time("0001-01-01T00:00:00Z")[2] is True
    assert (
        payload.parse_time("0001-01-01T00:00:00Z")[0] == "0001-01-01T00:00:00.000000000Z"
    )  # was "1-01-01..."


def test_times_beyond_what_datetime_holds_are_the_start_or_end_of_time():
    # valid RFC 3339 (schemathesis sent the first): before year 1 and after 9999 in UTC
    start = payload.parse_time("0001-01-01T01:00:00+01:01")
    assert start[0] == "0001-01-01T00:00:00.000000000Z" and start[2] is False
    assert start[1] == payload.parse_time("0001-01-01T00:00:00Z")[1]
    end = payload.parse_time("9999-12-31T23:00:00-01:30")
    assert end[0] == "9999-12-31T23:59:59.999999999Z"
    assert end[1] > payload.parse_time("9999-12-31T23:59:59Z")[1] - 1
