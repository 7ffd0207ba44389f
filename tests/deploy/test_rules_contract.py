"""The alert rules keep their promises: conventions, runbooks, the receiver's labels, the for: mapping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy import shipped

ALERTS = shipped.alerts()
NAMES = sorted({a.name for a in ALERTS})
SEVERITIES = {"critical", "warning", "info"}
HEALED = {row["alert"]: row for row in shipped.design_healing_table()}


def by_name(name: str) -> list[shipped.Alert]:
    return [a for a in ALERTS if a.name == name]


def test_the_issue_s_alerts_are_all_there():
    expected = {
        "StackAppDown",
        "StackDatabaseDown",
        "StackDatabaseTablesMissing",
        "StackPortClosed",
        "StackPortWrongProgram",
        "StackProcessNotRunning",
        "StackCpuHigh",
        "StackProcessMemoryHigh",
        "StackDockerSpaceLow",
        "StackBackupStale",
        "StackBackupUnverified",
        "StackExporterDown",
        "StackCheckFailing",
        "StackRemediationBreakerOpen",
        "StackRemediationFailed",
        "StackRemediationPerformed",
        "StackRemediationEscalated",
        "StackRemediationUndecided",
        "StackRemediationDeliveryFailing",
        "StackReceiverRuleUnmatched",
    }
    assert expected <= set(NAMES)
    assert {a.labels["severity"] for a in by_name("StackCpuHigh")} == {"warning", "critical"}


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: f"{a.name}-{a.labels.get('severity')}")
def test_alert_follows_the_mixin_conventions(alert: shipped.Alert):
    assert re.fullmatch(r"Stack(?:[A-Z][a-z]+)+", alert.name), alert.name
    assert alert.labels.get("severity") in SEVERITIES
    assert set(alert.annotations) == {"summary", "description", "runbook_url"}
    assert alert.annotations["summary"].strip() and alert.annotations["description"].strip()
    assert alert.annotations["summary"].endswith(".")


@pytest.mark.parametrize("name", NAMES)
def test_runbook_url_points_at_an_existing_runbook(name: str):
    for alert in by_name(name):
        assert alert.annotations["runbook_url"] == f"{shipped.RUNBOOK_BASE}{name}.md"
    page = shipped.RUNBOOKS_DIR / f"{name}.md"
    assert page.is_file(), f"missing runbook {page}"
    text = page.read_text()
    assert text.startswith(f"# {name}\n")
    for heading in (
        "## Meaning",
        "## Impact",
        "## Diagnose",
        "## Fix by hand",
        "## What the automation does",
    ):
        assert heading in text, f"{page.name} lacks {heading!r}"


def test_every_runbook_belongs_to_an_alert():
    pages = {p.stem for p in shipped.RUNBOOKS_DIR.glob("*.md")}
    assert pages == set(NAMES)


def test_runbook_links_between_pages_resolve():
    for page in shipped.RUNBOOKS_DIR.glob("*.md"):
        for target in re.findall(r"\]\(([A-Za-z]+\.md)\)", page.read_text()):
            assert (shipped.RUNBOOKS_DIR / target).is_file(), f"{page.name} links to missing {target}"


def test_alert_names_are_unique_per_severity():
    keys = [(a.name, a.labels["severity"]) for a in ALERTS]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("name", sorted(HEALED))
def test_healed_alerts_carry_what_the_receiver_matches(name: str):
    row = HEALED[name]
    target_label = row["target label"].split()[0]
    (alert,) = by_name(name)
    assert alert.labels["remediation"] == row["remediation"]
    assert alert.labels["severity"] == "critical"
    # The target label comes from the expression: the promtool tests prove it is there.
    fired = _expected_alerts(name)
    assert fired, f"no promtool test expects {name} to fire"
    for labels in fired:
        assert labels.get("remediation") == row["remediation"]
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", labels.get(target_label, "")), labels


def test_only_the_healed_alerts_carry_remediation():
    carrying = {a.name for a in ALERTS if "remediation" in a.labels}
    assert carrying == set(HEALED)


def test_healed_services_are_the_restart_job_s_services():
    (alert,) = by_name("StackAppDown")
    (container_down,) = by_name("StackContainerDown")
    healed = re.findall(r'compose_service=~"([^"]+)"', alert.rule["expr"])
    not_healed = re.findall(r'compose_service!~"([^"]+)"', container_down.rule["expr"])
    assert len(healed) == 2 and len(set(healed)) == 1, healed
    assert not_healed == healed[:1]
    services = shipped.load(shipped.JOBS_EXAMPLE)["services"]
    assert set(healed[0].split("|")) == set(services)


def _mapping() -> list[dict[str, str]]:
    return shipped.markdown_table(
        shipped.ALERTING_DOC.read_text(), "<!-- for-mapping:start -->", "<!-- for-mapping:end -->"
    )


def test_for_mapping_covers_every_alert_once():
    documented = [(row["alert"], row["severity"]) for row in _mapping()]
    assert len(documented) == len(set(documented))
    assert set(documented) == {(a.name, a.labels["severity"]) for a in ALERTS}


@pytest.mark.parametrize("row", _mapping(), ids=lambda r: f"{r['alert']}-{r['severity']}")
def test_for_durations_match_the_documented_mapping(row: dict[str, str]):
    (alert,) = [a for a in ALERTS if a.name == row["alert"] and a.labels["severity"] == row["severity"]]
    interval = shipped.duration_seconds(alert.interval)
    hold = shipped.duration_seconds(alert.rule.get("for", "0s"))
    assert alert.interval == row["interval"]
    assert alert.rule.get("for", "0s") == row["for"]
    # for = (N - 1) x interval: the first bad sample makes it pending, the Nth fires it.
    assert hold % interval == 0
    assert int(row["samples"]) == hold / interval + 1
    old = re.search(r"delay (\d+) samples", row["old tool"])
    if old:
        assert int(old.group(1)) == int(row["samples"])


def test_old_tool_rules_keep_their_sample_counts():
    rows = {(r["alert"], r["severity"]): r for r in _mapping()}
    assert rows[("StackAppDown", "critical")]["samples"] == "2"
    assert rows[("StackDatabaseTablesMissing", "critical")]["samples"] == "3"


def test_healing_fits_the_30_second_budget():
    """Worst case: one scrape interval + one evaluation interval + for: (docs/alerting.md)."""
    config = shipped.load(shipped.PROMETHEUS_CONFIG)
    (exporter,) = [j for j in config["scrape_configs"] if j["job_name"] == "stackmedic-exporter"]
    scrape = shipped.duration_seconds(exporter["scrape_interval"])
    route = _remediation_route()
    group_wait = shipped.duration_seconds(route["group_wait"])
    assert group_wait <= 1
    for name in HEALED:
        (alert,) = by_name(name)
        worst = (
            scrape + shipped.duration_seconds(alert.interval) + shipped.duration_seconds(alert.rule["for"])
        )
        assert worst + group_wait + 1 <= 30, (name, worst)
        assert shipped.duration_seconds(alert.interval) >= scrape  # each evaluation sees a new sample


def test_every_group_sets_its_interval():
    for path in shipped.RULES_DIR.glob("*.yml"):
        for group in shipped.load(path)["groups"]:
            assert "interval" in group, f"{path.name}: {group['name']}"


def _reads_the_receiver(alert: shipped.Alert) -> bool:
    """Alerts on the receiver's series (or on ALERTS) aggregate across its replicas by rule/target,
    and every replica down is one alert for the receiver's job."""
    return bool(re.search(r'\bstackmedic_receiver_|\bALERTS|job="stackmedic-receiver"', alert.rule["expr"]))


def test_alerts_of_the_exporter_keep_job_and_instance():
    """The inhibitions (exporter down, critical over warning) match on job and instance."""
    for alert in ALERTS:
        if _reads_the_receiver(alert):
            continue
        for match in re.finditer(r"\b(?:sum|max|min|count|avg)\s+by\s*\(([^)]*)\)", alert.rule["expr"]):
            kept = {label.strip() for label in match.group(1).split(",")}
            assert {"job", "instance"} <= kept, (alert.name, match.group(0))


def _remediation_route() -> dict:
    config = shipped.load(shipped.ALERTMANAGER_CONFIG)
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "stackmedic-remediation"]
    return route


def _expected_alerts(name: str) -> list[dict[str, str]]:
    """exp_labels of every promtool test case expecting `name` to fire."""
    found = []
    for path in shipped.RULE_TESTS_DIR.glob("*.yml"):
        for test in shipped.load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["alertname"] == name:
                    found += [dict(a["exp_labels"]) for a in case.get("exp_alerts") or []]
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_has_promtool_cases_firing_and_not_firing(name: str):
    cases = []
    for path in shipped.RULE_TESTS_DIR.glob("*.yml"):
        for test in shipped.load(path)["tests"]:
            cases += [c for c in test.get("alert_rule_test", []) if c["alertname"] == name]
    assert any(c.get("exp_alerts") for c in cases), f"{name}: no case where it fires"
    assert sum(1 for c in cases if not c.get("exp_alerts")) >= 2, (
        f"{name}: needs before-for and after-recovery cases"
    )


def test_every_rules_file_has_its_promtool_tests():
    for path in shipped.RULES_DIR.glob("*.yml"):
        test_file = shipped.RULE_TESTS_DIR / path.name
        assert test_file.is_file(), f"no {test_file}"
        rule_files = shipped.load(test_file)["rule_files"]
        assert [Path(test_file.parent, f).resolve() for f in rule_files] == [path.resolve()]
        # Tested at the group's own interval, so "one evaluation before for:" is the real one.
        (group,) = shipped.load(path)["groups"]
        assert shipped.load(test_file)["evaluation_interval"] == group["interval"]


def test_receiver_alerts_aggregate_across_replicas():
    """Every replica exports the store's series alike: one alert per rule and target, not per replica."""
    for name in ("StackRemediationEscalated", "StackRemediationFailed", "StackRemediationPerformed"):
        (alert,) = by_name(name)
        assert re.search(r"max by \(rule, target\b", alert.rule["expr"]), name
        labels = {k for c in _expected_alerts(name) for k in c}
        assert {"rule", "target"} <= labels and not {"job", "instance"} & labels, (name, labels)
