"""The shipped Roles grant each program exactly the API requests it makes, no more and no less.

The exporter's `kubernetes` check and the receiver's Kubernetes actuator run their whole paths
against the API stand-in (restart: patch, find by label, follow the rollout; restore: read the
template, create the Job, find it, follow it, read its pod's log); every request the stand-in
recorded is then judged by the rendered Role of that program, as RBAC would: a request no rule
allows is a Role too narrow, a rule no request used is a Role too wide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stackmedic.receiver.actuators.kube_api import KubeAPI
from stackmedic.receiver.actuators.kubernetes import KubernetesActuator

from harness.kube_standin import PATH, KubeStandIn
from harness.services import wait_for
from tests.deploy_kubernetes.render import OVERLAYS, find, overlay
from tests.kube.test_exporter_check import scrape

TOKEN = "0123456789abcdef0123456789abcdef"
VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}

#: (apiGroup, resource, verb, name or None)
Request = tuple[str, str, str, str | None]


def requests_made(kube: KubeStandIn) -> set[Request]:
    made = set()
    for call in kube.calls:
        m = PATH.match(call.path)
        assert m, f"a request outside the namespaced API: {call.method} {call.path}"
        name = m.group("name")
        resource = m.group("resource") + (f"/{m.group('sub')}" if m.group("sub") else "")
        verb = ("get" if name else "list") if call.method == "GET" else VERBS[call.method]
        made.add((m.group("group") or "", resource, verb, name))
    return made


def allows(rule: dict[str, Any], request: Request) -> bool:
    group, resource, verb, name = request
    names = rule.get("resourceNames")
    return (
        group in rule["apiGroups"]
        and resource in rule["resources"]
        and verb in rule["verbs"]
        and (not names or name in names)
    )


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def judge(role: dict[str, Any], made: set[Request]) -> tuple[list[Request], list[tuple[str, str, str]]]:
    """(requests the Role refuses, grants no request used)."""
    refused = sorted((r for r in made if not any(allows(rule, r) for rule in role["rules"])), key=str)
    used = {(g, r, v) for g, r, v, _ in made}
    return refused, sorted(grants(role) - used)


def run_receiver_paths(kube: KubeStandIn, token_file: Path) -> None:
    actuator = KubernetesActuator(KubeAPI(kube.url, str(token_file), timeout=2), "stackmedic")
    for job, params in (("restart", {"DEPLOYMENT": "petclinic"}), ("restore", {"DATABASE": "petclinic"})):
        state = {"ref": actuator.trigger(job, params, TOKEN)}
        assert actuator.find(job, TOKEN) is not None

        def finished(job: str = job, state: dict = state) -> bool:
            state["ref"] = actuator.follow(job, state["ref"], TOKEN)
            return state["ref"].result is not None

        wait_for(finished, 20, f"the {job} to finish", interval=0.02)
        assert state["ref"].result == "SUCCESS"
        if job == "restore":
            assert state["ref"].description  # the pod's log was read


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_exporter_role_is_what_the_kubernetes_check_uses(kube, token_file, name):
    kube.add_statefulset("mysql")
    kube.add_pod("petclinic-a", {"app.kubernetes.io/name": "petclinic"}, restarts=1)
    got = scrape(
        kube,
        token_file,
        [{"kind": "Deployment", "name": "petclinic"}, {"kind": "StatefulSet", "name": "mysql"}],
    )
    assert got[("stackmedic_kubernetes_up",)] == 1
    role = find(overlay(name), "Role", "stackmedic-exporter")
    assert judge(role, requests_made(kube)) == ([], [])


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_receiver_role_is_what_the_actuator_uses(kube, token_file, name):
    run_receiver_paths(kube, token_file)
    role = find(overlay(name), "Role", "stackmedic-receiver")
    assert judge(role, requests_made(kube)) == ([], [])


def test_a_role_too_narrow_or_too_wide_is_caught(kube, token_file):
    run_receiver_paths(kube, token_file)
    role = find(overlay("openshift"), "Role", "stackmedic-receiver")
    logs = next(r for r in role["rules"] if r["resources"] == ["pods/log"])
    role["rules"].remove(logs)
    role["rules"].append({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]})
    refused, unused = judge(role, requests_made(kube))
    assert [r[:3] for r in refused] == [("", "pods/log", "get")]
    assert unused == [("batch", "jobs", "list")]
