"""Alertmanager for people, on a real Alertmanager with the shipped config: one cause, one
page (the inhibitions), the maintenance window muting the healing, and one notification
per rule and target (a restore of petclinic and one of wordpress are not merged)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.prometheus import compress
from harness.services import Alertmanager, wait_for
from tests.deploy import shipped
from tests.deploy.alerting import Hook, post_alerts, state_of

EXPORTER = {"job": "stackmedic-exporter", "instance": "exporter:9877"}
PEOPLE = "/people"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MUTED = "Notifications not sent, route is within mute time"


def people_config(hook: Hook, token_file: Path, factor: float = 1, window: list[str] | None = None) -> str:
    """The shipped config: healing to `hook`, people to `hook`/people, the window on `window` days."""
    doc = compress.compress_alertmanager_config(
        shipped.load(shipped.ALERTMANAGER_CONFIG),
        factor,
        receiver_url=hook.url,
        credentials_file=str(token_file),
    )
    (people,) = [r for r in doc["receivers"] if r["name"] == "people"]
    people["webhook_configs"] = [{"url": hook.url.rsplit("/api/", 1)[0] + PEOPLE, "send_resolved": True}]
    if window is not None:
        (interval,) = [t for t in doc["time_intervals"] if t["name"] == "maintenance"]
        (period,) = interval["time_intervals"]
        period["weekdays"] = window
        period["times"] = [{"start_time": "00:00", "end_time": "24:00"}]
    return yaml.safe_dump(doc)


def days_around_now(offset: int = 0) -> list[str]:
    """Today and tomorrow in UTC (so that midnight cannot fall between), moved by `offset` days."""
    today = datetime.now(UTC).weekday()
    return [WEEKDAYS[(today + offset) % 7], WEEKDAYS[(today + offset + 1) % 7]]


@pytest.fixture
def start(tmp_path: Path, hook: Hook, alertmanager_factory: Callable[..., Alertmanager]):
    token_file = tmp_path / "token"
    token_file.write_text("t0ken\n")

    def make(factor: float = 1, window: list[str] | None = None) -> Alertmanager:
        return alertmanager_factory(people_config(hook, token_file, factor, window), log_level="debug")

    make.token_file = token_file  # type: ignore[attr-defined]
    return make


def alert(alertname: str, severity: str = "critical", **labels: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, **EXPORTER, **labels}


def inhibited(am: Alertmanager, alertname: str, **labels: str) -> bool:
    """True once the alert named so (with those labels) is in Alertmanager and inhibited."""
    for item in am.alerts():
        if item["labels"]["alertname"] == alertname and labels.items() <= item["labels"].items():
            return bool(item["status"]["inhibitedBy"])
    return False


def active(am: Alertmanager, alertname: str, **labels: str) -> bool:
    """True once the alert is in Alertmanager, neither inhibited nor silenced."""
    for item in am.alerts():
        if item["labels"]["alertname"] == alertname and labels.items() <= item["labels"].items():
            return item["status"]["state"] == "active"
    return False


# --- one cause, one page -------------------------------------------------------------------


@pytest.mark.services
def test_database_down_holds_back_its_process_port_and_container(start, hook: Hook):
    am = start(factor=12)  # a group's next notification within 5 s, not a minute
    post_alerts(am, alert("StackDatabaseDown", server="stack"))
    wait_for(lambda: state_of(am, "StackDatabaseDown"), 10, "StackDatabaseDown in Alertmanager")
    post_alerts(
        am,
        alert("StackProcessNotRunning", group="mysql"),
        alert("StackPortClosed", name="mysql", port="3316", compose_service="mysql"),
        alert("StackContainerDown", compose_service="mysql"),
        # Not the database's: still paged.
        alert("StackPortClosed", name="jenkins", port="8080", compose_service="jenkins"),
        alert("StackPortWrongProgram", name="mysql", port="3316"),
    )
    wait_for(
        lambda: (
            inhibited(am, "StackProcessNotRunning", group="mysql")
            and inhibited(am, "StackPortClosed", name="mysql")
            and inhibited(am, "StackContainerDown", compose_service="mysql")
        ),
        10,
        "the database's process, port and container alerts to be inhibited",
    )
    assert active(am, "StackPortClosed", name="jenkins")
    assert active(am, "StackPortWrongProgram", name="mysql")  # the cause, not an effect
    # People hear of the database and of what it does not explain, not of its effects.
    wait_for(lambda: hook.alerts("StackPortClosed", path=PEOPLE), 30, "jenkins' closed port to people")
    wait_for(lambda: hook.alerts("StackDatabaseDown", path=PEOPLE), 30, "the database down to people")
    assert [a["labels"]["name"] for _, a in hook.alerts("StackPortClosed", path=PEOPLE)] == ["jenkins"]
    assert hook.alerts("StackProcessNotRunning") == hook.alerts("StackContainerDown") == []


@pytest.mark.services
def test_docker_down_holds_back_every_alert_of_a_compose_service(start, hook: Hook):
    am = start()
    post_alerts(am, alert("StackDockerDown"))
    wait_for(lambda: state_of(am, "StackDockerDown"), 10, "StackDockerDown in Alertmanager")
    post_alerts(
        am,
        alert("StackPortClosed", name="petclinic", port="1080", compose_service="petclinic"),
        alert("StackProcessNotRunning", group="jenkins", compose_service="jenkins"),
        alert("StackContainerDown", compose_service="mysql"),
        alert("StackAppDown", remediation="restart", compose_service="wordpress"),
        # A port of no compose service (a program on the host): not Docker's doing.
        alert("StackPortClosed", name="ssh", port="22"),
    )
    wait_for(
        lambda: all(
            inhibited(am, name, compose_service=service)
            for name, service in [
                ("StackPortClosed", "petclinic"),
                ("StackProcessNotRunning", "jenkins"),
                ("StackContainerDown", "mysql"),
                ("StackAppDown", "wordpress"),
            ]
        ),
        10,
        "every compose service's alert to be inhibited",
    )
    assert active(am, "StackPortClosed", name="ssh")


@pytest.mark.services
def test_an_undecided_alert_is_held_back_by_its_cause(start, hook: Hook):
    am = start()
    receiver = {"job": "stackmedic-receiver", "instance": "receiver:9878"}
    post_alerts(
        am,
        {"alertname": "StackReceiverRuleUnmatched", "severity": "critical", "healing_alert": "StackDiskFull"},
        {
            "alertname": "StackRemediationEscalated",
            "severity": "critical",
            "rule": "restart-app",
            "target": "petclinic",
        },
    )
    wait_for(
        lambda: state_of(am, "StackReceiverRuleUnmatched") and state_of(am, "StackRemediationEscalated"),
        10,
        "sources",
    )
    post_alerts(
        am,
        {
            "alertname": "StackRemediationUndecided",
            "severity": "critical",
            "healing_alert": "StackDiskFull",
            "target": "x",
        },
        {
            "alertname": "StackRemediationUndecided",
            "severity": "critical",
            "healing_alert": "StackAppDown",
            "target": "wordpress",
        },
        {
            "alertname": "StackRemediationBreakerOpen",
            "severity": "critical",
            "rule": "restart-app",
            "target": "petclinic",
            **receiver,
        },
        {
            "alertname": "StackRemediationBreakerOpen",
            "severity": "critical",
            "rule": "restart-app",
            "target": "wordpress",
            **receiver,
        },
    )
    wait_for(
        lambda: (
            inhibited(am, "StackRemediationUndecided", healing_alert="StackDiskFull")
            and inhibited(am, "StackRemediationBreakerOpen", target="petclinic")
        ),
        10,
        "the unmatched alert's Undecided and the escalated target's breaker to be inhibited",
    )
    assert active(am, "StackRemediationUndecided", healing_alert="StackAppDown")
    assert active(am, "StackRemediationBreakerOpen", target="wordpress")

    # Alertmanager failing to deliver explains every undecided alert.
    post_alerts(
        am,
        {
            "alertname": "StackRemediationDeliveryFailing",
            "severity": "critical",
            "job": "alertmanager",
            "instance": "am:9093",
        },
    )
    wait_for(
        lambda: inhibited(am, "StackRemediationUndecided", healing_alert="StackAppDown"),
        10,
        "Undecided inhibited",
    )


@pytest.mark.services
def test_only_every_receiver_replica_down_holds_back_undecided_and_delivery_failing(start, hook: Hook):
    """One replica down: the others heal on, so an undecided alert or failed deliveries still page."""
    am = start()
    replica = {"job": "stackmedic-receiver", "instance": "receiver-1:9878"}
    # With an alert on that replica's own series: held back, so the inhibitor has the source.
    post_alerts(
        am,
        {"alertname": "StackReceiverReplicaDown", "severity": "warning", **replica},
        {"alertname": "StackReceiverSomething", "severity": "warning", **replica},
    )
    wait_for(lambda: inhibited(am, "StackReceiverSomething"), 10, "the replica's own alert to be inhibited")
    post_alerts(
        am,
        {
            "alertname": "StackRemediationUndecided",
            "severity": "critical",
            "healing_alert": "StackAppDown",
            "target": "petclinic",
        },
    )
    wait_for(lambda: state_of(am, "StackRemediationUndecided"), 10, "Undecided in Alertmanager")
    assert active(am, "StackRemediationUndecided")
    failing = {"alertname": "StackRemediationDeliveryFailing", "severity": "critical"}
    post_alerts(am, {**failing, "job": "alertmanager", "instance": "am:9093"})
    wait_for(lambda: state_of(am, "StackRemediationDeliveryFailing"), 10, "DeliveryFailing in Alertmanager")
    assert active(am, "StackRemediationDeliveryFailing")

    # Every replica down (one alert for the job): nothing is healed, and that is the page.
    post_alerts(am, {"alertname": "StackReceiverDown", "severity": "critical", "job": "stackmedic-receiver"})
    wait_for(lambda: state_of(am, "StackReceiverDown"), 10, "StackReceiverDown in Alertmanager")
    (down,) = [a["fingerprint"] for a in am.alerts() if a["labels"]["alertname"] == "StackReceiverDown"]

    def held_back_by_it() -> bool:
        undecided, delivery = (
            state_of(am, "StackRemediationUndecided"),
            state_of(am, "StackRemediationDeliveryFailing"),
        )
        return bool(
            undecided and delivery and down in undecided["inhibitedBy"] and down in delivery["inhibitedBy"]
        )

    wait_for(held_back_by_it, 10, "Undecided and DeliveryFailing inhibited by every replica down")
    assert active(am, "StackReceiverDown")


# --- maintenance windows --------------------------------------------------------------------


def flushes(am: Alertmanager, alertname: str) -> int:
    """How often Alertmanager has flushed (run the notification pipeline of) that alert's group.

    A group flushes one at a time: a second flush means the first one's pipeline is done.
    """
    key = f'alertname=\\"{alertname}\\"'
    return sum(1 for line in am.log().splitlines() if "msg=flushing" in line and key in line)


@pytest.mark.services
def test_the_maintenance_window_mutes_the_healing_then_lets_it_through(start, hook: Hook):
    am = start(factor=12, window=days_around_now())  # waits and intervals 12 times shorter
    post_alerts(
        am,
        alert("StackAppDown", remediation="restart", compose_service="petclinic"),
        {
            "alertname": "StackRemediationUndecided",
            "severity": "critical",
            "healing_alert": "StackAppDown",
            "target": "petclinic",
        },
        alert("StackCpuHigh", "warning"),
    )
    # Both muted groups went through the pipeline, and Alertmanager said why nothing was sent;
    # people still hear of the rest.
    wait_for(
        lambda: flushes(am, "StackAppDown") >= 2 and flushes(am, "StackRemediationUndecided") >= 2,
        30,
        "two flushes of the healing and the Undecided groups",
    )
    assert am.log().count(MUTED) >= 4
    wait_for(lambda: hook.alerts("StackCpuHigh", path=PEOPLE), 30, "StackCpuHigh to people")
    assert hook.alerts("StackAppDown") == hook.alerts("StackRemediationUndecided") == []

    # The window over (here: moved to other days), the still-firing alerts are delivered.
    config = people_config(hook, start.token_file, factor=12, window=days_around_now(3))
    reloaded = datetime.now(UTC).timestamp()
    am.reload(config)
    wait_for(lambda: hook.alerts("StackAppDown"), 30, "the healing alert after the window")
    wait_for(lambda: hook.alerts("StackRemediationUndecided", path=PEOPLE), 30, "Undecided after the window")
    assert all(
        at >= reloaded for at, _ in hook.alerts("StackAppDown") + hook.alerts("StackRemediationUndecided")
    )
    assert hook.alerts("StackAppDown", path=PEOPLE) == []


def test_the_shipped_window_is_a_weekly_hour_muting_the_healing_and_its_watchdog():
    config = shipped.load(shipped.ALERTMANAGER_CONFIG)
    (interval,) = config["time_intervals"]
    assert interval["name"] == "maintenance"
    (period,) = interval["time_intervals"]
    assert period == {
        "weekdays": ["sunday"],
        "times": [{"start_time": "03:00", "end_time": "04:00"}],
        "location": "UTC",
    }
    muting = {
        tuple(route.get("matchers", [])): route.get("mute_time_intervals")
        for route in config["route"]["routes"]
    }
    assert muting == {
        ('remediation=~".+"',): ["maintenance"],
        ('alertname="StackRemediationUndecided"',): ["maintenance"],
        ('severity="info"',): None,
    }


# --- one notification per rule and target ----------------------------------------------------


@pytest.mark.services
def test_restores_of_two_databases_are_two_notifications(start, hook: Hook):
    am = start(factor=30)  # the info route's group_wait of 30 s in 1 s
    receiver = {"job": "stackmedic-receiver", "instance": "receiver:9878"}
    performed = [
        {
            "alertname": "StackRemediationPerformed",
            "severity": "info",
            "rule": "restore-database",
            "target": target,
            "jenkins_job": "stackmedic-restore",
            "result": "SUCCESS",
        }
        for target in ("petclinic", "wordpress")
    ]
    escalated = [
        {
            "alertname": "StackRemediationEscalated",
            "severity": "critical",
            "rule": "restart-app",
            "target": t,
            **receiver,
        }
        for t in ("petclinic", "wordpress")
    ]
    post_alerts(am, *performed, *escalated)

    def notifications(name: str) -> list[dict[str, Any]]:
        return [g for g in hook.groups(PEOPLE) if g["commonLabels"].get("alertname") == name]

    wait_for(lambda: len(notifications("StackRemediationPerformed")) >= 2, 30, "two restore notifications")
    wait_for(lambda: len(notifications("StackRemediationEscalated")) >= 2, 30, "two escalation notifications")
    for name in ("StackRemediationPerformed", "StackRemediationEscalated"):
        groups = notifications(name)
        assert sorted(g["groupLabels"]["target"] for g in groups) == ["petclinic", "wordpress"]
        assert all(len(g["alerts"]) == 1 for g in groups)


def test_groups_keep_rule_and_target_apart():
    config = copy.deepcopy(shipped.load(shipped.ALERTMANAGER_CONFIG))
    assert config["route"]["group_by"] == ["alertname", "job", "instance", "rule", "target"]
    for route in config["route"]["routes"]:
        assert "group_by" not in route or route["receiver"] == "stackmedic-remediation"


def test_days_around_now_cover_now_and_the_moved_ones_do_not():
    now = WEEKDAYS[datetime.now(UTC).weekday()]
    assert now in days_around_now()
    assert now not in days_around_now(3)
    assert WEEKDAYS[(datetime.now(UTC) + timedelta(hours=1)).weekday()] not in days_around_now(3)
