"""One outage seen by two Prometheus replicas: one alert with the shipped relabelling, one action without (issue 12)."""

from __future__ import annotations

import pytest
import requests
import yaml

from harness.services import Alertmanager, Prometheus, wait_for
from tests.deploy import shipped
from tests.deploy.alerting import Hook
from tests.receiver.helpers import AUTH, FakeClock, actions, alert, notification, settled

BREAKER = {"cooldown": "5m", "settle": "10m", "max_actions": 3, "window": "1h", "max_ineffective": 0}


def post(app, body) -> dict:
    resp = app.test_client().post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.data
    return resp.json["decisions"]


def both(**kw) -> dict:
    """The same alert from Prometheus replicas a and b: distinct fingerprints, one target."""
    return notification(
        alert(fingerprint="fp-from-a", prometheus_replica="a", **kw),
        alert(fingerprint="fp-from-b", prometheus_replica="b", **kw),
    )


def test_concurrent_incidents_of_one_rule_and_target_share_one_action(make_app, standin):
    clock = FakeClock()
    app = make_app(clock=clock, breaker=BREAKER)
    assert post(app, both()) == {"triggered": 1, "duplicate": 1}
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    # past the cooldown, inside the settle time: both incidents wait for the one action to work
    # (the second incident used to count as new and start a second build here)
    clock.advance(360)
    assert post(app, both()) == {"duplicate": 2}
    assert len(standin.posts()) == 1
    # both alerts resolve: healed by the one action
    assert post(app, both(status="resolved")) == {"resolved": 2}
    assert [a["incident_id"] for a in actions(app) if a["decision"] == "triggered"] == [1]


def test_one_incident_resolving_does_not_cancel_the_action_the_other_still_needs(make_app, standin):
    standin.hold_queue()
    app = make_app(breaker=BREAKER, dispatcher={"autostart": False})
    assert post(app, both()) == {"triggered": 1, "duplicate": 1}
    resolved_a = notification(alert(fingerprint="fp-from-a", prometheus_replica="a", status="resolved"))
    assert post(app, resolved_a) == {"resolved": 1}
    [triggered] = [a for a in actions(app) if a["decision"] == "triggered"]
    assert triggered["build"]["state"] == "pending"
    resolved_b = notification(alert(fingerprint="fp-from-b", prometheus_replica="b", status="resolved"))
    assert post(app, resolved_b) == {"resolved": 1}
    [triggered] = [a for a in actions(app) if a["decision"] == "triggered"]
    assert triggered["build"]["state"] == "cancelled"


# Two real Prometheus replicas with the shipped HA example (deploy/prometheus/ha/), one rule
# firing on both, and one real Alertmanager with the shipped remediation route's grouping.

RULE = """groups:
  - name: ha
    interval: 1s
    rules:
      - alert: StackAppDown
        expr: vector(1)
        # firing once Prometheus knows its Alertmanager (its discovery reports every 5 s): an
        # alert sent before is dropped, and the next send comes after the resend delay (1m)
        for: 10s
        labels: {remediation: restart, compose_service: petclinic, severity: critical}
"""


def ha_prometheus_config(replica: str, am: Alertmanager, relabel: bool) -> str:
    """The shipped example of `replica`, pointed at `am`, with the test's rule; scrapes nothing."""
    doc = shipped.load(shipped.HA_CONFIGS[replica])
    doc["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    doc["rule_files"] = ["ha.yml"]
    doc["scrape_configs"] = []
    [alertmanagers] = doc["alerting"]["alertmanagers"]
    alertmanagers.pop("basic_auth")
    alertmanagers["static_configs"] = [{"targets": [am.url.removeprefix("http://")]}]
    if not relabel:
        del doc["alerting"]["alert_relabel_configs"]
    return yaml.safe_dump(doc)


def alertmanager_config(hook: Hook) -> str:
    """One webhook, grouped as the shipped route to stackmedic-receiver groups."""
    [route] = [
        r for r in shipped.load(shipped.ALERTMANAGER_CONFIG)["route"]["routes"] if r.get("group_wait") == "0s"
    ]
    return yaml.safe_dump(
        {
            "route": {
                "receiver": "hook",
                "group_by": route["group_by"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url, "send_resolved": True}]}],
        }
    )


def sent(prom: Prometheus) -> float:
    """Alerts this Prometheus has sent to Alertmanager (its own counter)."""
    text = requests.get(f"{prom.url}/metrics", timeout=5).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("prometheus_notifications_sent_total")
    )


def run_pair(prometheus_factory, alertmanager_factory, relabel: bool) -> tuple[Alertmanager, Hook, list]:
    hook = Hook()
    am = alertmanager_factory(alertmanager_config(hook))
    proms = [prometheus_factory(ha_prometheus_config(r, am, relabel), rules={"ha.yml": RULE}) for r in "ab"]
    # both replicas' first sends were accepted (the counter moves after Alertmanager's answer):
    # Alertmanager holds whatever it will hold (the next sends come after --rules.alert.resend-delay)
    # 120 s: should a first send be dropped (no Alertmanager known yet), the next comes 1m later
    wait_for(lambda: all(sent(p) >= 1 for p in proms), 120, "both Prometheus replicas to send the alert")
    return am, hook, proms


@pytest.mark.services
def test_ha_prometheus_pair_with_the_relabelling_is_one_alert(prometheus_factory, alertmanager_factory):
    am, hook, _ = run_pair(prometheus_factory, alertmanager_factory, relabel=True)
    try:
        [held] = am.alerts()
        assert "replica" not in held["labels"]
        wait_for(lambda: hook.posts, 30, "the webhook")
        groups = hook.groups("/api/v1/alerts")
        assert {len(g["alerts"]) for g in groups} == {1}
        assert {g["groupKey"] for g in groups} == {groups[0]["groupKey"]}
    finally:
        hook.close()


@pytest.mark.services
def test_ha_prometheus_pair_without_the_relabelling_is_two_alerts(prometheus_factory, alertmanager_factory):
    # what issue 12 defect 4 met: one outage, two alerts, two incidents at the receiver
    am, hook, _ = run_pair(prometheus_factory, alertmanager_factory, relabel=False)
    try:
        assert sorted(a["labels"]["replica"] for a in am.alerts()) == ["a", "b"]
        wait_for(
            lambda: any(len(g["alerts"]) == 2 for g in hook.groups("/api/v1/alerts")),
            30,
            "both alerts in a post",
        )
    finally:
        hook.close()
