"""promtool: the shipped Prometheus config and rules are valid, and every rule test passes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.services import require_binary
from tests.deploy import shipped

RULE_TESTS = sorted(shipped.RULE_TESTS_DIR.glob("*.yml"))


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_check_config_is_clean():
    result = promtool("check", "config", shipped.PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    # It found and checked every rules file through rule_files.
    assert f"SUCCESS: {len(list(shipped.RULES_DIR.glob('*.yml')))} rule files found" in result.stdout


def test_check_rules_is_clean():
    files = sorted(shipped.RULES_DIR.glob("*.yml"))
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", result.stdout))
    assert found == len(shipped.alerts())


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path):
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_can_fail(tmp_path: Path):
    """A rule test that cannot fail proves nothing: a changed for: must break the healing tests."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    rules = (shipped.RULES_DIR / "stackmedic-healing.yml").read_text()
    assert rules.count("for: 10s") == 1
    (tmp_path / "rules" / "stackmedic-healing.yml").write_text(rules.replace("for: 10s", "for: 5s"))
    (tmp_path / "tests" / "t.yml").write_text((shipped.RULE_TESTS_DIR / "stackmedic-healing.yml").read_text())
    result = promtool("test", "rules", "t.yml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "alertname: StackDatabaseTablesMissing" in result.stdout + result.stderr


@pytest.mark.parametrize("replica", sorted(shipped.HA_CONFIGS))
def test_ha_example_configs_are_clean(replica: str):
    result = promtool("check", "config", shipped.HA_CONFIGS[replica])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list(shipped.RULES_DIR.glob('*.yml')))} rule files found" in result.stdout


def test_ha_example_replicas_differ_only_in_their_replica_label():
    a, b = (shipped.load(shipped.HA_CONFIGS[r]) for r in ("a", "b"))
    assert (a["global"]["external_labels"], b["global"]["external_labels"]) == (
        {"replica": "a"},
        {"replica": "b"},
    )
    b["global"]["external_labels"] = a["global"]["external_labels"]
    assert a == b
    # the label that tells them apart never reaches Alertmanager
    assert a["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    # the same rules and the same jobs as the single Prometheus of compose
    single = shipped.load(shipped.PROMETHEUS_CONFIG)
    assert [j["job_name"] for j in a["scrape_configs"]] == [j["job_name"] for j in single["scrape_configs"]]
    assert a["rule_files"] == ["../" + f for f in single["rule_files"]]
