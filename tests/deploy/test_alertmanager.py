"""Alertmanager: the shipped config is valid, routes as documented, and a real Alertmanager
delivers healing alerts at once with the token from the file, holds them back while the
database is down, and holds them while silenced (the documented amtool commands)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from deploy.prometheus import compress
from harness.services import Alertmanager, require_binary, wait_for
from tests.deploy import shipped
from tests.deploy.alerting import Hook, post_alerts, state_of

EXPORTER = {"job": "stackmedic-exporter", "instance": "exporter:9877"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_check_config_is_clean():
    result = amtool("check-config", str(shipped.ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "StackAppDown", "remediation": "restart", "compose_service": "petclinic"},
            "stackmedic-remediation",
        ),
        (
            {"alertname": "StackDatabaseTablesMissing", "remediation": "restore", "database": "petclinic"},
            "stackmedic-remediation",
        ),
        (
            {"alertname": "StackRemediationBreakerOpen", "severity": "critical", "target": "petclinic"},
            "people",
        ),
        ({"alertname": "StackRemediationFailed", "severity": "warning"}, "people"),
        ({"alertname": "StackRemediationEscalated", "severity": "critical", "target": "petclinic"}, "people"),
        ({"alertname": "StackRemediationUndecided", "severity": "critical", "target": "petclinic"}, "people"),
        ({"alertname": "StackRemediationDeliveryFailing", "severity": "critical"}, "people"),
        ({"alertname": "StackRemediationPerformed", "severity": "info"}, "people"),
        ({"alertname": "StackReceiverDown", "severity": "critical", "job": "stackmedic-receiver"}, "people"),
        (
            {"alertname": "StackReceiverReplicaDown", "severity": "warning", "instance": "receiver-1:9878"},
            "people",
        ),
        ({"alertname": "StackDatabaseDown", "severity": "critical", "server": "stack"}, "people"),
        ({"alertname": "StackCpuHigh", "severity": "warning"}, "people"),
    ],
)
def test_routes(labels: dict[str, str], receiver: str):
    args = [f"{k}={v}" for k, v in labels.items()]
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={shipped.ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *args,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_remediation_route_is_tuned_for_healing():
    config = shipped.load(shipped.ALERTMANAGER_CONFIG)
    routes = config["route"]["routes"]
    assert routes[0]["receiver"] == "stackmedic-remediation"  # first: nothing else can catch a healing alert
    route = routes[0]
    assert route["matchers"] == ['remediation=~".+"']
    assert route["group_by"] == ["alertname", "compose_service", "database"]
    assert route["group_wait"] == "0s"
    assert shipped.duration_seconds(route["group_interval"]) <= 5
    # The receiver decides a held-back incident (cooldown, paused) again at each repeat.
    assert (
        shipped.duration_seconds(route["group_interval"])
        <= shipped.duration_seconds(route["repeat_interval"])
        <= 60
    )
    assert not route.get("continue", False)
    (receiver,) = [r for r in config["receivers"] if r["name"] == "stackmedic-remediation"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://stackmedic-receiver:9878/api/v1/alerts"
    assert hook["send_resolved"] is True
    assert hook["http_config"] == {
        "authorization": {
            "type": "Bearer",
            "credentials_file": "/etc/alertmanager/secrets/stackmedic-receiver-token",
        }
    }


def test_inhibitions_name_existing_alerts():
    names = {a.name for a in shipped.alerts()}
    config = shipped.load(shipped.ALERTMANAGER_CONFIG)
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if matcher.startswith("alertname"):
                value = matcher.split("~", 1)[-1].split("=", 1)[-1].strip('"')
                for name in value.split("|"):
                    assert name in names, matcher
    (db_rule,) = [
        r
        for r in config["inhibit_rules"]
        if 'alertname=~"StackDatabaseTablesMissing' in r["target_matchers"][0]
    ]
    assert db_rule["source_matchers"] == ['alertname="StackDatabaseDown"']
    assert db_rule["equal"] == ["job", "instance", "server"]


def test_the_database_s_own_alerts_are_named_as_in_the_seed_stack():
    """The inhibitions name the database's process group, port and container as the example does."""
    seed = shipped.load(shipped.REPO / "examples" / "seed-stack.yml")
    (server,) = seed["mysql"]
    (port,) = [p["name"] for p in seed["ports"]["targets"] if p["port"] == server["port"]]
    (group,) = [
        g["group"] for g in seed["processes"]["groups"] if re.fullmatch(g.get("name", "^$"), "mariadbd")
    ]
    assert port in {s["name"] for s in seed["containers"]["services"]}  # its container is named alike
    config = shipped.load(shipped.ALERTMANAGER_CONFIG)
    from_db = [
        r["target_matchers"]
        for r in config["inhibit_rules"]
        if r["source_matchers"] == ['alertname="StackDatabaseDown"']
    ]
    assert ['alertname="StackProcessNotRunning"', f'group=~"{group}"'] in from_db
    assert ['alertname="StackPortClosed"', f'name=~"{port}"'] in from_db
    assert ['alertname="StackContainerDown"', f'compose_service=~"{port}"'] in from_db


# --- a real Alertmanager -------------------------------------------------------------


@pytest.fixture
def shipped_alertmanager(
    tmp_path: Path, hook: Hook, alertmanager_factory: Callable[..., Alertmanager]
) -> tuple[Alertmanager, str]:
    """The shipped alertmanager.yml, its webhook pointed at `hook`, its token in a file."""
    token = "s3cret-webhook-token"
    token_file = tmp_path / "receiver-token"
    token_file.write_text(token + "\n")
    config = compress.compress_alertmanager_config(
        shipped.load(shipped.ALERTMANAGER_CONFIG), 1, receiver_url=hook.url, credentials_file=str(token_file)
    )
    return alertmanager_factory(yaml.safe_dump(config)), token


APP_DOWN = {
    "alertname": "StackAppDown",
    "severity": "critical",
    "remediation": "restart",
    "compose_service": "petclinic",
    **EXPORTER,
}
TABLES_MISSING = {
    "alertname": "StackDatabaseTablesMissing",
    "severity": "critical",
    "remediation": "restore",
    "database": "petclinic",
    "server": "stack",
    **EXPORTER,
}
DB_DOWN = {"alertname": "StackDatabaseDown", "severity": "critical", "server": "stack", **EXPORTER}


@pytest.mark.services
def test_healing_alert_is_delivered_at_once_with_the_token_then_resolved(shipped_alertmanager, hook: Hook):
    am, token = shipped_alertmanager
    sent = time.time()
    post_alerts(am, APP_DOWN)
    wait_for(lambda: hook.alerts("StackAppDown"), 10, "the firing alert at the webhook")
    ((arrived, alert),) = hook.alerts("StackAppDown")
    assert arrived - sent < 2  # group_wait 0s: no waiting in Alertmanager
    (post,) = [p for p in hook.posts if p["body"]["alerts"][0]["labels"]["alertname"] == "StackAppDown"]
    assert post["auth"] == f"Bearer {token}"
    assert post["body"]["groupLabels"] == {"alertname": "StackAppDown", "compose_service": "petclinic"}
    assert alert["labels"]["compose_service"] == "petclinic" and alert["labels"]["remediation"] == "restart"

    post_alerts(am, APP_DOWN, ends_in=-1)
    wait_for(lambda: hook.alerts("StackAppDown", "resolved"), 15, "the resolved alert at the webhook")
    assert len(hook.alerts("StackAppDown")) == 1


@pytest.mark.services
def test_database_down_holds_the_restore_back_until_it_is_up(shipped_alertmanager, hook: Hook):
    am, _ = shipped_alertmanager
    post_alerts(am, DB_DOWN)
    wait_for(lambda: state_of(am, "StackDatabaseDown"), 10, "StackDatabaseDown in Alertmanager")
    post_alerts(am, TABLES_MISSING, APP_DOWN)

    def inhibited() -> bool:
        tables, app = state_of(am, "StackDatabaseTablesMissing"), state_of(am, "StackAppDown")
        return bool(tables and tables["inhibitedBy"] and app and app["inhibitedBy"])

    wait_for(inhibited, 10, "the restore and the restart to be inhibited")
    assert state_of(am, "StackDatabaseTablesMissing")["state"] == "suppressed"

    # The server is back: the inhibition lifts and both are delivered, not before.
    lifted = time.time()
    post_alerts(am, DB_DOWN, ends_in=-1)
    wait_for(lambda: hook.alerts("StackDatabaseTablesMissing"), 20, "the restore after the server is back")
    wait_for(lambda: hook.alerts("StackAppDown"), 20, "the restart after the server is back")
    assert all(
        at >= lifted for at, _ in hook.alerts("StackDatabaseTablesMissing") + hook.alerts("StackAppDown")
    )
    assert hook.alerts("StackDatabaseDown") == []  # for people, never for the receiver


@pytest.mark.services
def test_a_silence_pauses_the_automation_until_it_expires(shipped_alertmanager, hook: Hook):
    am, _ = shipped_alertmanager
    # The command docs/alerting.md gives for pausing all the automation.
    added = amtool(
        f"--alertmanager.url={am.url}",
        "silence",
        "add",
        'remediation=~".+"',
        "--duration=2h",
        "--author=test",
        "--comment=maintenance",
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    post_alerts(am, APP_DOWN, TABLES_MISSING)

    def silenced() -> bool:
        states = [state_of(am, "StackAppDown"), state_of(am, "StackDatabaseTablesMissing")]
        return all(s and s["silencedBy"] == [silence_id] for s in states)

    wait_for(silenced, 10, "both healing alerts to be silenced")
    expired_at = time.time()
    assert amtool(f"--alertmanager.url={am.url}", "silence", "expire", silence_id).returncode == 0
    # Still firing when the silence ends: delivered at the next group interval, healed then.
    wait_for(
        lambda: hook.alerts("StackAppDown") and hook.alerts("StackDatabaseTablesMissing"), 20, "delivery"
    )
    assert all(
        at >= expired_at for at, _ in hook.alerts("StackAppDown") + hook.alerts("StackDatabaseTablesMissing")
    )
