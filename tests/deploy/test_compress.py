"""deploy/prometheus/compress.py: compressed copies keep everything but the timing, scaled."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.prometheus import compress
from harness.services import require_binary
from tests.deploy import shipped


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0s", 0),
        ("250ms", 250),
        ("5s", 5000),
        ("1m", 60_000),
        ("1m30s", 90_000),
        ("1d2h", 93_600_000),
        ("1w", 604_800_000),
    ],
)
def test_durations_round_trip(text: str, ms: int):
    assert compress.parse_duration(text) == ms
    assert compress.format_duration(ms) == text


def test_durations_are_written_in_the_largest_units():
    assert compress.parse_duration("26h") == compress.parse_duration("1d2h")
    assert compress.format_duration(compress.parse_duration("600s")) == "10m"


@pytest.mark.parametrize("text", ["", "5", "5 s", "1.5s", "s", "-5s", "5sec"])
def test_bad_durations_are_refused(text: str):
    with pytest.raises(compress.CompressError, match="not a Prometheus duration"):
        compress.parse_duration(text)


def test_scale_duration_rounds_to_the_millisecond_and_never_to_zero():
    assert compress.scale_duration("5s", 5) == "1s"
    assert compress.scale_duration("10s", 4) == "2s500ms"
    assert compress.scale_duration("1ms", 1000) == "1ms"
    assert compress.scale_duration("0s", 10) == "0s"


@pytest.mark.parametrize("factor", [0, 0.5, -1])
def test_factor_below_one_is_refused(factor: float):
    with pytest.raises(compress.CompressError, match="factor must be 1 or more"):
        compress.compress_rules({"groups": []}, factor)


def test_group_without_interval_is_refused():
    doc = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "1m"}]}]}
    with pytest.raises(compress.CompressError, match="group 'g' has no interval"):
        compress.compress_rules(doc, 5)


@pytest.mark.parametrize("factor", [1, 5, 10])
def test_compressed_rules_differ_only_in_timing(factor: float):
    for name, doc in compress.load_shipped_rules().items():
        fast = compress.compress_rules(doc, factor)
        assert fast is not doc
        for group, fast_group in zip(doc["groups"], fast["groups"], strict=True):
            interval = compress.parse_duration(group["interval"])
            assert compress.parse_duration(fast_group["interval"]) == round(interval / factor), name
            for rule, fast_rule in zip(group["rules"], fast_group["rules"], strict=True):
                assert {k: v for k, v in fast_rule.items() if k != "for"} == {
                    k: v for k, v in rule.items() if k != "for"
                }
                hold = compress.parse_duration(rule.get("for", "0s"))
                fast_hold = compress.parse_duration(fast_rule.get("for", "0s"))
                # The same number of samples, each `factor` times shorter.
                assert fast_hold * interval == hold * round(interval / factor)
                assert ("for" in fast_rule) == ("for" in rule)


def test_compressing_leaves_the_source_untouched():
    doc = compress.load_shipped_rules()["stackmedic-healing.yml"]
    before = yaml.safe_dump(doc)
    compress.compress_rules(doc, 5)
    assert yaml.safe_dump(doc) == before


def test_prometheus_config_is_retargeted_and_scaled():
    doc = shipped.load(shipped.PROMETHEUS_CONFIG)
    fast = compress.compress_prometheus_config(
        doc,
        5,
        targets={"stackmedic-exporter": ["127.0.0.1:19877"], "alertmanager": ["127.0.0.1:19093"]},
        alertmanagers=["127.0.0.1:19093"],
        rule_files=["rules/*.yml"],
    )
    jobs = {j["job_name"]: j for j in fast["scrape_configs"]}
    # a retargeted job and the replaced Alertmanagers lose the compose secrets' credentials
    assert "basic_auth" in {j["job_name"]: j for j in doc["scrape_configs"]}["alertmanager"]
    assert "basic_auth" not in jobs["alertmanager"] and "basic_auth" in jobs["prometheus"]
    assert "basic_auth" not in fast["alerting"]["alertmanagers"][0]
    assert jobs["stackmedic-exporter"]["scrape_interval"] == "1s"
    assert jobs["stackmedic-exporter"]["scrape_timeout"] == "800ms"
    assert jobs["stackmedic-exporter"]["static_configs"] == [{"targets": ["127.0.0.1:19877"]}]
    assert jobs["stackmedic-receiver"]["static_configs"] == [{"targets": ["stackmedic-receiver:9878"]}]
    assert fast["global"]["evaluation_interval"] == "3s"
    assert fast["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]


def test_alertmanager_config_is_retargeted_and_scaled():
    doc = shipped.load(shipped.ALERTMANAGER_CONFIG)
    fast = compress.compress_alertmanager_config(doc, 5, "http://127.0.0.1:1/hook", "/tmp/token")
    (route,) = [r for r in fast["route"]["routes"] if r["receiver"] == "stackmedic-remediation"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("0s", "1s", "12s")
    (hook,) = [r for r in fast["receivers"] if r["name"] == "stackmedic-remediation"][0]["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:1/hook"
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": "/tmp/token"}
    assert fast["inhibit_rules"] == doc["inhibit_rules"]


def test_command_line_writes_valid_copies(tmp_path: Path):
    assert compress.main(["--factor", "5", "--out-dir", str(tmp_path)]) == 0
    rules = sorted(p.name for p in (tmp_path / "rules").glob("*.yml"))
    assert rules == sorted(p.name for p in shipped.RULES_DIR.glob("*.yml"))
    healing = (tmp_path / "rules" / "stackmedic-healing.yml").read_text()
    assert healing.startswith("# GENERATED by deploy/prometheus/compress.py --factor 5")
    assert yaml.safe_load(healing) == compress.compress_rules(
        shipped.load(shipped.RULES_DIR / "stackmedic-healing.yml"), 5
    )
    check = subprocess.run(
        [require_binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rule files found" in check.stdout
    am = subprocess.run(
        [require_binary("amtool"), "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert am.returncode == 0, am.stdout + am.stderr


def test_command_line_reports_a_bad_factor(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert compress.main(["--factor", "0.5", "--out-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "compress: factor must be 1 or more, got 0.5\n"
    assert not (tmp_path / "rules").exists() or not any((tmp_path / "rules").iterdir())
