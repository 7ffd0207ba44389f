"""The command: flags, configuration checks, and the real process with no configuration."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import requests
import yaml
from stackmedic.receiver.cli import main

from harness.services import Process, free_port, wait_for
from tests.receiver.helpers import alert, notification

REPO = Path(__file__).resolve().parents[2]


def test_example_configuration_is_valid(monkeypatch, capsys):
    monkeypatch.setenv("STACKMEDIC_RECEIVER_TOKEN", "t")
    monkeypatch.setenv("STACKMEDIC_JENKINS_TOKEN", "j")
    assert main(["--config.file", str(REPO / "examples/receiver.yml"), "--config.check"]) == 0
    assert capsys.readouterr().out.strip().endswith("configuration ok, 2 rule(s)")


def test_example_rules_follow_the_design(monkeypatch):
    from stackmedic.receiver.config import load

    monkeypatch.setenv("STACKMEDIC_RECEIVER_TOKEN", "t")
    monkeypatch.setenv("STACKMEDIC_JENKINS_TOKEN", "j")
    config = load(str(REPO / "examples/receiver.yml"))
    rules = {r.name: r for r in config.rules}
    assert (rules["restart-app"].job, rules["restart-app"].params) == (
        "stackmedic-restart",
        {"SERVICE": "{compose_service}"},
    )
    assert (rules["restore-database"].job, rules["restore-database"].params) == (
        "stackmedic-restore",
        {"DATABASE": "{database}"},
    )
    assert rules["restart-app"].allow["compose_service"] == "^[a-z][a-z0-9_-]{0,62}$"


def test_every_problem_is_reported_with_its_path(tmp_path, capsys):
    config = {
        "auth": {"bearer_token_env": "TEST_UNSET_VARIABLE_X"},
        "jenkins": {"url": "ftp://x", "user": "u"},
        "rules": [
            {"name": "Bad Name", "job": "j", "target": "svc"},
            {"name": "r", "job": "j", "target": "svc", "params": {"P": "{other}"}, "allow": {"svc": "("}},
        ],
        "surprise": 1,
    }
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config.file", str(path), "--config.check"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "config error: surprise: unknown key" in lines
    assert (
        "config error: jenkins.url: invalid URL (not shown): expected http/https://host[:port]/..." in lines
    )
    assert any(line.startswith("config error: rules[0].name: invalid rule name 'Bad Name'") for line in lines)
    assert any(
        line.startswith("config error: rules[1].allow.svc: invalid regular expression") for line in lines
    )


def test_semantic_problems_are_reported_together(tmp_path, capsys):
    config = {
        "jenkins": {"url": "http://127.0.0.1:8080", "user": "u"},
        "rules": [{"name": "r", "job": "j", "target": "svc", "params": {"P": "{other}"}}],
    }
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config.file", str(path), "--config.check"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "config error: auth: required key missing: a bearer token, basic_auth, or 'none'",
        "config error: jenkins: set api_token_env/api_token_file or password_env/password_file",
        "config error: rules[0].params.P: label 'other' is used without an allow pattern",
        "config error: rules[0].target: label 'svc' needs an allow pattern",
    ]


def test_secret_never_reaches_the_output(tmp_path, monkeypatch, capsys):
    secret_file = tmp_path / "token"
    secret_file.write_text("super-secret-value\n")
    path = tmp_path / "receiver.yml"
    path.write_text(
        yaml.safe_dump({"auth": {"bearer_token_file": str(secret_file)}, "dry_run": True, "bogus": 1})
    )
    assert main(["--config.file", str(path), "--config.check"]) == 2
    out = capsys.readouterr()
    assert "super-secret-value" not in out.out + out.err


def test_bad_listen_address(capsys):
    assert main(["--web.listen-address", "nonsense"]) == 2
    assert "config error: --web.listen-address: invalid listen address 'nonsense'" in capsys.readouterr().err


def test_started_without_configuration_is_dry_run_with_a_printed_token(tmp_path):
    port = free_port()
    log = tmp_path / "receiver.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "STACKMEDIC_RECEIVER_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": str(REPO),
    }
    proc = Process(
        [sys.executable, "-m", "stackmedic.receiver", f"--web.listen-address=127.0.0.1:{port}"],
        log,
        env=env,
        cwd=REPO,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, 20, "the receiver to be ready")
        token = re.search(r"webhook token \(Authorization: Bearer \.\.\.\): (\S+)", log.read_text()).group(1)
        assert requests.post(f"{url}/api/v1/alerts", json=notification(alert()), timeout=5).status_code == 401
        resp = requests.post(
            f"{url}/api/v1/alerts",
            json=notification(alert()),
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert resp.status_code == 200 and resp.json()["decisions"] == {"no_rule": 1}
        assert resp.headers["Server"] == "stackmedic-receiver"  # waitress, not the development server
        assert requests.get(f"{url}/api/v1/status", timeout=5).json()["dry_run"] is True
        assert "Dry-run mode" in requests.get(url, timeout=5).text
        assert (tmp_path / "state" / "receiver.sqlite").exists()
    finally:
        proc.stop()
    assert proc.popen.returncode == 0
    assert token not in log.read_text().split("webhook token", 1)[1].split("\n", 1)[1]


@pytest.mark.parametrize("path", ["/-/healthy", "/metrics", "/api/v1/openapi.json", "/"])
def test_service_endpoints(make_app, path):
    resp = make_app().test_client().get(path)
    assert resp.status_code == 200


def test_metrics_have_no_created_series(make_app):
    text = make_app().test_client().get("/metrics").get_data(as_text=True)
    assert "# TYPE stackmedic_receiver_alerts_received_total counter" in text
    assert "_created" not in text
