"""The receiver's configuration for the kubernetes actuator: what a rule must say, and the section."""

from __future__ import annotations

import pytest
from stackmedic.receiver import config

from stackmedic.config import ConfigError
from tests.kube.test_receiver import RULES


def build(rules: list[dict], **extra) -> config.Config:
    return config.build({"auth": "none", "rules": rules, **extra})


def test_a_kubernetes_rule_needs_the_kubernetes_section_not_jenkins():
    built = build(RULES, kubernetes={"namespace": "shop", "restore_template": "restore"})
    assert built.jenkins is None
    assert built.kubernetes == config.KubernetesConfig(namespace="shop", restore_template="restore")
    assert [r.actuator for r in built.rules] == ["kubernetes", "kubernetes"]
    with pytest.raises(ConfigError) as exc:
        build(RULES)
    assert exc.value.problems == [("kubernetes", "required key missing: a rule uses the kubernetes actuator")]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"job": "rollback"}, ("rules[0].job", "the kubernetes actuator runs restart or restore")),
        (
            {"params": {"SERVICE": "{compose_service}"}},
            ("rules[0].params", "the kubernetes job restart needs the parameter DEPLOYMENT"),
        ),
    ],
)
def test_a_kubernetes_rule_runs_restart_or_restore_with_its_parameter(change, problem):
    with pytest.raises(ConfigError) as exc:
        build([{**RULES[0], **change}], kubernetes={})
    assert exc.value.problems == [problem]


def test_the_section_refuses_unknown_keys():
    with pytest.raises(ConfigError) as exc:
        build(RULES, kubernetes={"namespace": "shop", "token": "x"})
    assert [p for p, _ in exc.value.problems] == ["kubernetes.token"]
