"""The PrometheusRule and AlertmanagerConfig say what deploy/prometheus/rules and
deploy/alertmanager/alertmanager.yml say (one source of truth), the committed copies are not
stale, promtool's rule tests pass on what the PrometheusRule contains, and Alertmanager, given
the routing the operator makes of the AlertmanagerConfig, sends each rendered alert where the
compose stack's Alertmanager sends it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.services import require_binary
from tests.deploy import shipped
from tests.deploy_kubernetes import operator_view
from tests.deploy_kubernetes.render import KUBERNETES_DIR, OVERLAYS, REPO, find, overlay

GENERATOR = KUBERNETES_DIR / "generate.py"


def generator():
    spec = importlib.util.spec_from_file_location("k8s_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_objects_are_up_to_date():
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert run.returncode == 0, run.stderr


def test_check_fails_when_a_rule_is_added_and_not_regenerated(tmp_path: Path, monkeypatch):
    gen = generator()
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in shipped.RULES_DIR.glob("*.yml"):
        (rules / path.name).write_text(path.read_text())
    (rules / "zz-new.yml").write_text(
        "groups:\n  - name: zz-new\n    rules:\n      - alert: StackSomethingNew\n        expr: vector(1)\n"
    )
    monkeypatch.setattr(gen, "RULES_DIR", rules)
    assert gen.main(["--check"]) == 1
    # and the regenerated object has it
    text = next(t for p, t in gen.outputs(rules_dir=rules).items() if p.name == "prometheusrule.yaml")
    assert "alert: StackSomethingNew" in text


def test_the_prometheus_rule_holds_every_shipped_group_unchanged():
    generated = yaml.safe_load((KUBERNETES_DIR / "base/generated/prometheusrule.yaml").read_text())
    expected = [g for p in sorted(shipped.RULES_DIR.glob("*.yml")) for g in shipped.load(p)["groups"]]
    assert generated["spec"]["groups"] == expected
    assert len([r for g in expected for r in g["rules"] if "alert" in r]) == len(shipped.alerts())


def test_untranslatable_alertmanager_settings_are_refused(tmp_path: Path):
    gen = generator()
    am = shipped.load(shipped.ALERTMANAGER_CONFIG)
    am["receivers"][1]["email_configs"] = [{"to": "ops@example.org"}]
    with pytest.raises(gen.TranslationError, match=r"receivers\[1\]: email_configs has no translation"):
        gen.alertmanager_config(am)
    am = shipped.load(shipped.ALERTMANAGER_CONFIG)
    am["route"]["routes"][0]["match_re"] = {"remediation": ".+"}
    with pytest.raises(gen.TranslationError, match=r"route.routes\[0\]: match_re has no translation"):
        gen.alertmanager_config(am)
    # The operator's time intervals have no location: only UTC means the same there.
    am = shipped.load(shipped.ALERTMANAGER_CONFIG)
    am["time_intervals"][0]["time_intervals"][0]["location"] = "Europe/Berlin"
    with pytest.raises(
        gen.TranslationError,
        match=r"time_intervals\[0\].time_intervals\[0\]: location 'Europe/Berlin' has no translation \(only UTC\)",
    ):
        gen.alertmanager_config(am)


def test_the_maintenance_window_becomes_a_mute_time_interval():
    spec = generator().alertmanager_config(shipped.load(shipped.ALERTMANAGER_CONFIG))["spec"]
    assert spec["muteTimeIntervals"] == [
        {
            "name": "maintenance",
            "timeIntervals": [
                {"times": [{"startTime": "03:00", "endTime": "04:00"}], "weekdays": ["sunday"]}
            ],
        }
    ]
    assert spec["route"]["routes"][0]["muteTimeIntervals"] == ["maintenance"]


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def _write_rules_of(prometheus_rule: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    """The PrometheusRule's groups as a rules file, and every shipped rule test pointed at it."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    rules = tmp_path / "rules" / "from-prometheusrule.yml"
    rules.write_text(yaml.safe_dump({"groups": prometheus_rule["spec"]["groups"]}, sort_keys=False))
    for path in sorted(shipped.RULE_TESTS_DIR.glob("*.yml")):
        test = yaml.safe_load(path.read_text())
        test["rule_files"] = ["../rules/from-prometheusrule.yml"]
        (tmp_path / "tests" / path.name).write_text(yaml.safe_dump(test, sort_keys=False))
    return rules, tmp_path / "tests"


@pytest.mark.slow  # promtool runs every rule test file again (about 20 s)
def test_promtool_rule_tests_pass_on_the_generated_object(tmp_path: Path):
    base = yaml.safe_load((KUBERNETES_DIR / "base/generated/prometheusrule.yaml").read_text())
    rules, tests = _write_rules_of(base, tmp_path)
    check = _promtool("check", "rules", str(rules), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    test_files = sorted(p.name for p in tests.glob("*.yml"))
    assert len(test_files) == len(list(shipped.RULE_TESTS_DIR.glob("*.yml")))
    run = _promtool("test", "rules", *test_files, cwd=tests)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(test_files)


@pytest.mark.slow  # promtool runs every rule test file again, per overlay (about 20 s each)
@pytest.mark.parametrize("name", OVERLAYS)
def test_promtool_rule_tests_pass_on_the_rendered_object(name: str, tmp_path: Path):
    """What is applied: the overlay's PrometheusRule, whose alerts all carry its namespace. The
    shipped tests, expecting that label on every alert, pass on it unchanged otherwise."""
    rule = find(overlay(name), "PrometheusRule", "stackmedic")
    namespace = rule["metadata"]["namespace"]
    _, tests = _write_rules_of(rule, tmp_path)
    for path in sorted(tests.glob("*.yml")):
        test = yaml.safe_load(path.read_text())
        for case in test["tests"]:
            for alert_test in case.get("alert_rule_test", []):
                for expected in alert_test.get("exp_alerts") or []:
                    expected["exp_labels"] = {**expected.get("exp_labels", {}), "namespace": namespace}
        path.write_text(yaml.safe_dump(test, sort_keys=False))
    test_files = sorted(p.name for p in tests.glob("*.yml"))
    run = _promtool("test", "rules", *test_files, cwd=tests)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(test_files)


def test_promtool_rule_tests_fail_on_a_changed_object(tmp_path: Path):
    """The check above can fail: a healing alert's for: changed in the object breaks its test."""
    base = yaml.safe_load((KUBERNETES_DIR / "base/generated/prometheusrule.yaml").read_text())
    healing = next(g for g in base["spec"]["groups"] if g["name"] == "stackmedic-healing")
    tables = next(r for r in healing["rules"] if r.get("alert") == "StackDatabaseTablesMissing")
    tables["for"] = "5s"
    _, tests = _write_rules_of(base, tmp_path)
    run = _promtool("test", "rules", "stackmedic-healing.yml", cwd=tests)
    assert run.returncode != 0
    assert "alertname: StackDatabaseTablesMissing" in run.stdout + run.stderr


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_rendered_alert_carries_its_namespace(name: str):
    objects = overlay(name)
    rule = find(objects, "PrometheusRule", "stackmedic")
    namespace = rule["metadata"]["namespace"]
    labels = [r["labels"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert labels and all(lab.get("namespace") == namespace for lab in labels)
    am = find(objects, "AlertmanagerConfig", "stackmedic")
    url = am["spec"]["receivers"][0]["webhookConfigs"][0]["url"]
    assert url == f"http://stackmedic-receiver.{namespace}.svc:9878/api/v1/alerts"


def test_the_overlays_scope_to_their_namespace_alike():
    blocks = {
        name: yaml.safe_load((KUBERNETES_DIR / "overlays" / name / "kustomization.yaml").read_text())[
            "replacements"
        ]
        for name in OVERLAYS
    }
    first = blocks[OVERLAYS[0]]
    assert all(b == first for b in blocks.values())


def test_a_renamed_namespace_is_followed(tmp_path: Path):
    from tests.deploy_kubernetes.render import kustomize

    source = KUBERNETES_DIR / "overlays" / "kube-prometheus-stack"
    k = yaml.safe_load((source / "kustomization.yaml").read_text())
    k["namespace"] = "team-a"
    # no Namespace object (its name is fixed); kustomize wants a relative path to the base
    k["resources"] = [os.path.relpath(KUBERNETES_DIR / "base", tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(k))
    objects = kustomize(tmp_path)
    rule = find(objects, "PrometheusRule", "stackmedic")
    assert {r["labels"]["namespace"] for g in rule["spec"]["groups"] for r in g["rules"]} == {"team-a"}
    am = find(objects, "AlertmanagerConfig", "stackmedic")
    assert am["spec"]["receivers"][0]["webhookConfigs"][0]["url"].startswith(
        "http://stackmedic-receiver.team-a.svc:"
    )


@pytest.mark.parametrize("name", OVERLAYS)
def test_alertmanager_routes_rendered_alerts_as_the_compose_stack_does(name: str, tmp_path: Path):
    objects = overlay(name)
    config = operator_view.alertmanager_config(find(objects, "AlertmanagerConfig", "stackmedic"))
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    amtool = require_binary("amtool")
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    def receivers_for(labels: dict[str, str]) -> str:
        args = [f"{k}={v}" for k, v in labels.items()]
        run = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={path}", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return run.stdout.strip()

    rule = find(objects, "PrometheusRule", "stackmedic")
    alerts = {r["alert"]: r["labels"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    prefix = f"{rule['metadata']['namespace']}/stackmedic/"
    app_down = {"alertname": "StackAppDown", "compose_service": "petclinic", **alerts["StackAppDown"]}
    assert receivers_for(app_down) == prefix + "stackmedic-remediation"
    performed = {"alertname": "StackRemediationPerformed", **alerts["StackRemediationPerformed"]}
    assert receivers_for(performed) == prefix + "people"
    # the same alert without the namespace label misses stackmedic's routes altogether
    del app_down["namespace"]
    assert receivers_for(app_down) == operator_view.CLUSTER_DEFAULT
