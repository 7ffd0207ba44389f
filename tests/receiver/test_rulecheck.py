"""`--config.check --rules.dir`: receiver rules that no shipped alert can match are named."""

from __future__ import annotations

from pathlib import Path

import yaml
from stackmedic.receiver.cli import main

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy/prometheus/rules"


def check(tmp_path: Path, monkeypatch, rules: list[dict] | None = None, rules_dir: Path = RULES_DIR) -> int:
    monkeypatch.setenv("STACKMEDIC_RECEIVER_TOKEN", "t")
    monkeypatch.setenv("STACKMEDIC_JENKINS_TOKEN", "j")
    config = yaml.safe_load((REPO / "examples/receiver.yml").read_text())
    if rules is not None:
        config["rules"] = config["rules"] + rules
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    return main(["--config.file", str(path), "--config.check", "--rules.dir", str(rules_dir)])


def test_the_shipped_rules_match_the_example_configuration(tmp_path, monkeypatch, capsys):
    assert check(tmp_path, monkeypatch) == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith(f"configuration ok, 2 rule(s), each matched by an alert in {RULES_DIR}")
    )


def test_a_rule_no_shipped_alert_can_match_is_named(tmp_path, monkeypatch, capsys):
    typo = {
        "name": "reboot-host",
        "match": {"remediation": "reboot"},
        "job": "stackmedic-restart",
        "target": "instance",
        "allow": {"instance": "^[a-z]+$"},
    }
    regex = {**typo, "name": "restart-any", "match": {}, "match_re": {"alertname": "StackApp.*Gone"}}
    assert check(tmp_path, monkeypatch, [typo, regex]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"config error: rules[2]: rule 'reboot-host' matches no alert in {RULES_DIR}: none sets remediation=\"reboot\"",
        f"config error: rules[3]: rule 'restart-any' matches no alert in {RULES_DIR}: none sets alertname=~\"StackApp.*Gone\"",
    ]


def test_a_rules_dir_without_alerts_is_an_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check(tmp_path, monkeypatch, rules_dir=empty) == 2
    assert (
        capsys.readouterr().err.strip() == f"config error: --rules.dir {empty}: no alerting rule in 0 file(s)"
    )


def test_a_healing_alert_no_rule_matches_is_named(tmp_path, monkeypatch, capsys):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    shipped = yaml.safe_load((RULES_DIR / "stackmedic-healing.yml").read_text())
    shipped["groups"][0]["rules"].append(
        {
            "alert": "StackQueueStuck",
            "expr": "vector(1)",
            "labels": {"severity": "critical", "remediation": "drain"},
        }
    )
    (rules_dir / "healing.yml").write_text(yaml.safe_dump(shipped))
    assert check(tmp_path, monkeypatch, rules_dir=rules_dir) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"config error: rules: alert 'StackQueueStuck' in {rules_dir} carries remediation=\"drain\""
        " but no rule matches it: the receiver would drop it"
    ]
