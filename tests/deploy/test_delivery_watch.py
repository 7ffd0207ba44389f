"""Healing that cannot be delivered pages a person: real Prometheus and Alertmanager with the
shipped rules, routes and scrape jobs (time-compressed), the remediation webhook's path wrong.

Prometheus scrapes Alertmanager as shipped; a healing alert fires (a stand-in rule: the
exporter's conditions are not under test here) and Alertmanager gets 404 for every post to the
receiver. StackRemediationUndecided pages first (no decision on the target), then
StackRemediationDeliveryFailing (the webhook failing for two minutes, compressed), which then
holds the former back: one page for one cause in the end."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from deploy.prometheus import compress
from harness.services import Alertmanager, Prometheus, require_binary, wait_for
from tests.deploy import shipped
from tests.deploy.alerting import Hook

FACTOR = 15  # the remediation group's 15 s in 1 s; its for: 2m in 8 s
WRONG_PATH = "/api/v1/alert"
PEOPLE = "/people"


def healing_stand_in(not_before: float) -> dict:
    """A healing alert firing from `not_before` (unix time) on.

    From then, not at once: a fresh Prometheus drops the alerts it has before it first finds
    Alertmanager (its discovery updates every 5 s) and re-sends them only a minute later. If it
    takes longer, the alert arrives a minute late and the test waits for it.
    """
    return {
        "groups": [
            {
                "name": "healing-stand-in",
                "interval": "1s",
                "rules": [
                    {
                        "alert": "StackAppDown",
                        "expr": f"vector(time()) > {not_before:.0f}",
                        "for": "1s",
                        "labels": {
                            "severity": "critical",
                            "remediation": "restart",
                            "compose_service": "petclinic",
                        },
                    }
                ],
            }
        ]
    }


def alertmanager_config(hook: Hook, token_file: Path, path: str = WRONG_PATH) -> str:
    base = hook.url.rsplit("/api/", 1)[0]
    doc = compress.compress_alertmanager_config(
        shipped.load(shipped.ALERTMANAGER_CONFIG),
        FACTOR,
        receiver_url=base + path,
        credentials_file=str(token_file),
    )
    (people,) = [r for r in doc["receivers"] if r["name"] == "people"]
    people["webhook_configs"] = [{"url": base + PEOPLE}]
    return yaml.safe_dump(doc)


def prometheus_config(am: Alertmanager) -> tuple[str, dict[str, str]]:
    remediation = compress.compress_rules(
        shipped.load(shipped.RULES_DIR / "stackmedic-remediation.yml"), FACTOR
    )
    address = am.url.removeprefix("http://")
    doc = compress.compress_prometheus_config(
        shipped.load(shipped.PROMETHEUS_CONFIG),
        FACTOR,
        targets={"alertmanager": [address]},
        alertmanagers=[address],
        rule_files=["remediation.yml", "healing.yml"],
    )
    # Only Alertmanager is up here: the other jobs' targets would only be down.
    doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] == "alertmanager"]
    rules = {
        "remediation.yml": yaml.safe_dump(remediation),
        "healing.yml": yaml.safe_dump(healing_stand_in(time.time() + 10)),
    }
    return yaml.safe_dump(doc), rules


def paged(hook: Hook, alertname: str) -> list[dict]:
    return [a for _, a in hook.alerts(alertname, path=PEOPLE)]


@pytest.mark.services
def test_a_wrong_webhook_path_pages_a_person(
    tmp_path: Path,
    alertmanager_factory: Callable[..., Alertmanager],
    prometheus_factory: Callable[..., Prometheus],
):
    hook = Hook(not_found=(WRONG_PATH,))
    try:
        token_file = tmp_path / "token"
        token_file.write_text("t0ken\n")
        am = alertmanager_factory(alertmanager_config(hook, token_file))
        config, rules = prometheus_config(am)
        prom = prometheus_factory(config, rules)

        wait_for(lambda: hook.refused > 0, 120, "Alertmanager to post the healing alert to the wrong path")
        wait_for(lambda: paged(hook, "StackRemediationUndecided"), 60, "StackRemediationUndecided to people")
        (undecided,) = {a["labels"]["target"]: a for a in paged(hook, "StackRemediationUndecided")}.values()
        assert undecided["labels"]["healing_alert"] == "StackAppDown"
        assert undecided["labels"]["compose_service"] == "petclinic"
        assert undecided["annotations"]["summary"] == (
            "StackAppDown for petclinic fires, and stackmedic-receiver has not decided on it."
        )

        wait_for(
            lambda: paged(hook, "StackRemediationDeliveryFailing"), 60, "StackRemediationDeliveryFailing"
        )
        failing = paged(hook, "StackRemediationDeliveryFailing")[0]
        assert failing["labels"]["job"] == "alertmanager"
        assert failing["labels"]["instance"] == am.url.removeprefix("http://")
        # The cause paged, the symptom is held back.
        wait_for(
            lambda: any(
                a["labels"]["alertname"] == "StackRemediationUndecided" and a["status"]["inhibitedBy"]
                for a in am.alerts()
            ),
            30,
            "StackRemediationUndecided to be inhibited by StackRemediationDeliveryFailing",
        )
        assert hook.alerts("StackAppDown") == []  # nothing ever reached a receiver
        assert prom.query('ALERTS{alertname="StackRemediationDeliveryFailing",alertstate="firing"}')
    finally:
        hook.close()


@pytest.mark.services
def test_a_missing_credentials_file_pages_a_person(
    tmp_path: Path,
    alertmanager_factory: Callable[..., Alertmanager],
    prometheus_factory: Callable[..., Prometheus],
):
    """The right URL, but the token file is not there: amtool check-config says SUCCESS."""
    hook = Hook()
    try:
        missing = tmp_path / "secrets" / "stackmedic-receiver-token"
        config = alertmanager_config(hook, missing, path="/api/v1/alerts")
        (tmp_path / "am.yml").write_text(config)
        check = subprocess.run(
            [require_binary("amtool"), "check-config", str(tmp_path / "am.yml")],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
        am = alertmanager_factory(config)
        prometheus_factory(*prometheus_config(am))

        wait_for(
            lambda: paged(hook, "StackRemediationDeliveryFailing"), 120, "StackRemediationDeliveryFailing"
        )
        assert hook.alerts("StackAppDown") == []
        assert "no such file or directory" in (am.base_dir / "alertmanager.log").read_text()
    finally:
        hook.close()
