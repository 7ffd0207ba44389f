"""Named webhook tokens: each Alertmanager (or script) has its own bearer token and name; the
audit says which one authored each incident and decision; a revoked or unknown token is
refused with a reason; no token ever reaches a log or an answer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
from stackmedic.receiver import api
from stackmedic.receiver import config as rc
from stackmedic.receiver.auth import FailureLog

from harness.services import wait_for
from stackmedic.config import ConfigError
from stackmedic.webconfig import WebConfig, hash_password
from tests.receiver.helpers import actions, alert, notification, settled

A, B, OLD = "token-of-alertmanager-a", "token-of-alertmanager-b", "token-retired-last-month"  # noqa: S105


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    (tmp_path / "a.token").write_text(A + "\n")
    monkeypatch.setenv("TEST_TOKEN_B", B)
    (tmp_path / "old.token").write_text(OLD)
    return {
        "tokens": [
            {"name": "alertmanager-a", "token_file": str(tmp_path / "a.token")},
            {"name": "alertmanager-b", "token_env": "TEST_TOKEN_B"},
            {"name": "retired", "token_file": str(tmp_path / "old.token"), "revoked": True},
        ]
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_two_named_tokens_each_author_their_incident_and_decisions(make_app, tokens, standin):
    app = make_app(auth=tokens)
    client = app.test_client()
    first = client.post("/api/v1/alerts", json=notification(alert("petclinic")), headers=bearer(A))
    assert first.status_code == 200 and first.json["decisions"] == {"triggered": 1}
    second = client.post("/api/v1/alerts", json=notification(alert("wordpress")), headers=bearer(B))
    assert second.status_code == 200 and second.json["decisions"] == {"triggered": 1}
    # the same alert from the other Alertmanager of the pair: a duplicate, authored by it
    again = client.post("/api/v1/alerts", json=notification(alert("petclinic")), headers=bearer(B))
    assert again.json["decisions"] == {"duplicate": 1}
    wait_for(lambda: settled(app) and len(standin.finished()) == 2, 10, "two builds")
    rows = [(a["target"], a["decision"], a["author"]) for a in actions(app)]
    assert rows == [
        ("petclinic", "triggered", "alertmanager-a"),
        ("wordpress", "triggered", "alertmanager-b"),
        ("petclinic", "duplicate", "alertmanager-b"),
    ]
    incidents = client.get("/api/v1/incidents", headers=bearer(A)).json
    opened = {i["target"]: i["author"] for i in incidents["open"] + incidents.get("resolved", [])}
    assert opened == {"petclinic": "alertmanager-a", "wordpress": "alertmanager-b"}  # who opened it
    # an operator's write without `author`: the token's name is the author
    pause = client.post(
        "/api/v1/pause", json={"target": "petclinic", "duration": "5m", "reason": "x"}, headers=bearer(B)
    )
    assert pause.status_code == 200, pause.json
    assert actions(app, decision="pause")[-1]["author"] == "alertmanager-b"


def test_revoked_and_unknown_tokens_get_401_with_a_reason_and_are_never_logged(
    make_app, tokens, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(api, "FAILED_LOGINS", FailureLog())  # once a minute: earlier tests' do not count
    app = make_app(auth=tokens)
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    revoked = client.post("/api/v1/alerts", json=notification(alert()), headers=bearer(OLD))
    assert revoked.status_code == 401
    assert revoked.json == {
        "error": "authentication required: a bearer token",
        "reason": "this token is revoked",
    }
    assert revoked.headers["WWW-Authenticate"] == 'Bearer realm="stackmedic"'
    unknown = client.post("/api/v1/alerts", json=notification(alert()), headers=bearer("guessed"))
    assert unknown.status_code == 401 and unknown.json["reason"] == "unknown token or wrong credentials"
    write = client.post("/api/v1/resume", json={"target": "*", "reason": "x"}, headers=bearer(OLD))
    assert write.status_code == 401 and write.json["reason"] == "this token is revoked"
    assert actions(app) == []  # nothing decided, nothing written
    metrics = client.get("/metrics").text
    assert 'stackmedic_receiver_auth_failures_total{reason="revoked"} 2.0' in metrics
    assert 'stackmedic_receiver_auth_failures_total{reason="bad_credentials"} 1.0' in metrics
    # the first failure is logged, with the revoked token's name and never a token
    assert "reason=revoked token_name=retired" in caplog.text
    for secret in (A, B, OLD, "guessed"):
        assert secret not in caplog.text
        assert secret not in metrics


def test_behind_the_web_config_a_revoked_token_still_hears_why(make_app, serve, tokens):
    app = make_app(auth=tokens)
    web = WebConfig(users={"admin": hash_password("pw", rounds=4)})
    url = serve(app, web)
    r = requests.post(f"{url}/api/v1/alerts", json=notification(alert()), headers=bearer(OLD), timeout=10)
    assert r.status_code == 401 and r.json()["reason"] == "this token is revoked"
    ok = requests.post(f"{url}/api/v1/alerts", json=notification(alert()), headers=bearer(A), timeout=10)
    assert ok.status_code == 200
    # a bearer header opens no read: the page and read API still need a valid login
    assert requests.get(f"{url}/api/v1/actions", headers=bearer("guessed"), timeout=10).status_code == 401
    assert requests.get(f"{url}/api/v1/actions", headers=bearer(OLD), timeout=10).status_code == 401
    assert requests.get(f"{url}/api/v1/actions", headers=bearer(B), timeout=10).status_code == 200


def build(auth: dict) -> rc.Config:
    return rc.build({"auth": auth, "dry_run": True})


def test_token_configuration_problems_are_all_reported_with_key_paths(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TEST_TOKEN_B", B)
    monkeypatch.setenv("TEST_EMPTY", "")
    (tmp_path / "a.token").write_text(A)
    (tmp_path / "same.token").write_text(B)
    with pytest.raises(ConfigError) as err:
        build(
            {
                "tokens": [
                    {"name": "alertmanager-a", "token_file": str(tmp_path / "a.token")},
                    {"name": "alertmanager-a", "token_env": "TEST_TOKEN_B"},
                    {"name": "copy", "token_file": str(tmp_path / "same.token")},
                    {"name": "nothing"},
                    {"name": "empty", "token_env": "TEST_EMPTY"},
                    {"name": "missing", "token_file": str(tmp_path / "nope")},
                    {"name": "both", "token_env": "TEST_TOKEN_B", "token_file": str(tmp_path / "a.token")},
                ]
            }
        )
    problems = sorted(err.value.problems)
    assert problems == [
        ("auth.tokens[1].name", "duplicate token name 'alertmanager-a' (also auth.tokens[0])"),
        ("auth.tokens[2].token", "the same token as auth.tokens[1]: the author would be ambiguous"),
        ("auth.tokens[3]", "token_env or token_file is required"),
        ("auth.tokens[4].token", "the token is empty"),
        ("auth.tokens[5].token", "cannot read the secret file (path not shown): No such file or directory"),
        ("auth.tokens[6]", "give token_env or token_file, not both"),
    ]
    assert not any(B in m or A in m for _, m in problems)
    with pytest.raises(ConfigError) as err:
        build({"tokens": [{"name": "bad name!", "token_env": "TEST_TOKEN_B"}]})
    assert err.value.problems[0][0] == "auth.tokens[0].name"
    with pytest.raises(ConfigError) as err:
        build({"tokens": [{"name": "old", "token_env": "TEST_TOKEN_B", "revoked": True}]})
    assert err.value.problems == [
        (
            "auth",
            "every token in auth.tokens is revoked: set bearer_token_env, bearer_token_file, tokens or basic_auth",
        )
    ]
    config = build({"tokens": [{"name": "alertmanager-b", "token_env": "TEST_TOKEN_B"}]})
    assert [(t.name, t.revoked) for t in config.auth.tokens] == [("alertmanager-b", False)]
    assert B not in repr(config)


def test_credentials_no_client_can_send_or_an_empty_basic_password_are_config_errors(
    tmp_path: Path, monkeypatch
):
    # an empty Basic password let anyone who knew the user name post alerts; a token that
    # ends in a newline or a space (an env var filled from a file) can never arrive in an
    # Authorization header, so every webhook was refused with no hint why
    monkeypatch.setenv("TEST_NEWLINE", A + "\n")
    monkeypatch.setenv("TEST_SPACE", " " + B)
    monkeypatch.setenv("TEST_EMPTY", "")
    (tmp_path / "two-newlines").write_text(OLD + "\n\n")
    with pytest.raises(ConfigError) as err:
        build(
            {
                "bearer_token_env": "TEST_NEWLINE",
                "tokens": [
                    {"name": "spaced", "token_env": "TEST_SPACE"},
                    {"name": "crlf", "token_file": str(tmp_path / "two-newlines")},
                ],
                "basic_auth": {"username": "alertmanager", "password_env": "TEST_EMPTY"},
            }
        )
    unsendable = "begins or ends with white space or holds a control character: no client can send it"
    assert sorted(err.value.problems) == [
        ("auth.basic_auth.password", "the password is empty"),
        ("auth.bearer_token", f"the token {unsendable}"),
        ("auth.tokens[0].token", f"the token {unsendable}"),
        ("auth.tokens[1].token", f"the token {unsendable}"),
    ]
    assert not any(s in m for _, m in err.value.problems for s in (A, B, OLD))
    with pytest.raises(ConfigError) as err:
        build({"basic_auth": {"username": "", "password_env": "TEST_SPACE"}})
    assert err.value.problems == [("auth.basic_auth.username", "the user name is empty")]
    # one trailing newline of a file is not part of the token, and a Basic password may hold spaces
    (tmp_path / "one-newline").write_text(OLD + "\n")
    config = build(
        {
            "bearer_token_file": str(tmp_path / "one-newline"),
            "basic_auth": {"username": "alertmanager", "password_env": "TEST_SPACE"},
        }
    )
    assert config.auth.bearer_token == OLD
    assert config.auth.basic_password == " " + B
