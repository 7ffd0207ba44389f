"""Every pod hardened on every overlay; the OpenShift overlay passes restricted-v2's rules; the
receiver is highly available; the webhook reachable only from Alertmanager; RBAC least privilege.
Each rule is also shown to fail on an object that breaks it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy_kubernetes import lint
from tests.deploy_kubernetes.render import OVERLAYS, find, overlay, pod_spec


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pod_is_hardened(name: str):
    objects = overlay(name)
    assert len(lint.workloads(objects)) >= 8  # exporter, receiver, 4 backup/verify, prune, restore
    assert lint.hardening(objects) == []


def test_openshift_overlay_passes_the_restricted_rules():
    assert lint.openshift(overlay("openshift")) == []


def _exporter(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment", "stackmedic-exporter")


@pytest.mark.parametrize(
    ("rule", "breakage", "expected"),
    [
        (
            lint.openshift,
            lambda o: pod_spec(_exporter(o))["securityContext"].update(runAsUser=10001),
            "Deployment/stackmedic-exporter pod: fixed runAsUser 10001",
        ),
        (
            lint.openshift,
            lambda o: pod_spec(_exporter(o))["securityContext"].update(fsGroup=10001),
            "Deployment/stackmedic-exporter pod: fixed fsGroup 10001",
        ),
        (
            lint.openshift,
            lambda o: pod_spec(_exporter(o))["volumes"].append(
                {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}
            ),
            "Deployment/stackmedic-exporter: hostPath volume docker (the Docker socket)",
        ),
        (
            lint.openshift,
            lambda o: pod_spec(_exporter(o))["containers"][0]["resources"].pop("requests"),
            "Deployment/stackmedic-exporter container exporter: no requests",
        ),
        (
            lint.openshift,
            lambda o: find(o, "CronJob", "stackmedic-restore")["spec"]["jobTemplate"]["spec"].pop(
                "backoffLimit"
            ),
            "CronJob/stackmedic-restore: backoffLimit is unset (6), not 0",
        ),
        (
            lint.hardening,
            lambda o: pod_spec(_exporter(o))["containers"][0]["securityContext"].update(
                readOnlyRootFilesystem=False
            ),
            "Deployment/stackmedic-exporter container exporter: root file system is writable",
        ),
        (
            lint.hardening,
            lambda o: pod_spec(_exporter(o))["containers"][0]["securityContext"]["capabilities"].update(
                add=["NET_RAW"]
            ),
            "Deployment/stackmedic-exporter container exporter: capabilities are not all dropped",
        ),
        (
            lint.hardening,
            lambda o: pod_spec(_exporter(o))["securityContext"].pop("seccompProfile"),
            "Deployment/stackmedic-exporter: seccompProfile is not RuntimeDefault",
        ),
        (
            lint.hardening,
            lambda o: pod_spec(_exporter(o))["containers"][0]["resources"]["limits"].pop("memory"),
            "Deployment/stackmedic-exporter container exporter: no memory limit",
        ),
    ],
)
def test_each_rule_catches_what_it_is_for(rule, breakage, expected: str):
    objects = overlay("openshift")
    breakage(objects)
    assert expected in rule(objects)


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_receiver_survives_a_node_drain(name: str):
    objects = overlay(name)
    receiver = find(objects, "Deployment", "stackmedic-receiver")
    assert receiver["spec"]["replicas"] >= 2
    pdb = find(objects, "PodDisruptionBudget", "stackmedic-receiver")
    assert pdb["spec"]["minAvailable"] == 1
    labels = receiver["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    store = next(v for v in pod_spec(receiver)["volumes"] if v["name"] == "store")
    assert store["secret"]["secretName"] == "stackmedic-receiver-store"


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_alertmanager_and_prometheus_reach_the_receiver(name: str):
    policy = find(overlay(name), "NetworkPolicy", "stackmedic-receiver")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    apps = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers)
    assert apps == ["alertmanager", "prometheus"]
    # never a bare namespace or ipBlock peer: every peer names its pods and their namespace
    assert all(set(p) == {"podSelector", "namespaceSelector"} for p in peers)
    assert all(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in policy["spec"]["ingress"])


@pytest.mark.parametrize("name", OVERLAYS)
def test_schedules_never_overlap_and_jobs_are_never_retried(name: str):
    cronjobs = [o for o in overlay(name) if o["kind"] == "CronJob"]
    names = sorted(c["metadata"]["name"] for c in cronjobs)
    assert names == [
        "stackmedic-backup-petclinic",
        "stackmedic-backup-wordpress",
        "stackmedic-prune",
        "stackmedic-restore",
        "stackmedic-verify-petclinic",
        "stackmedic-verify-wordpress",
    ]
    for c in cronjobs:
        assert c["spec"]["concurrencyPolicy"] == "Forbid", c["metadata"]["name"]
        assert c["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0, c["metadata"]["name"]
    assert [c["metadata"]["name"] for c in cronjobs if c["spec"].get("suspend")] == ["stackmedic-restore"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_rbac_is_least_privilege(name: str):
    objects = overlay(name)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    assert sorted(roles) == ["stackmedic-exporter", "stackmedic-receiver"]
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "secrets" not in rule["resources"]
            assert not {"delete", "deletecollection", "update", "escalate", "bind"} & set(rule["verbs"])
    exporter_verbs = {v for r in roles["stackmedic-exporter"]["rules"] for v in r["verbs"]}
    assert exporter_verbs == {"get", "list"}
    # the job pods talk to MySQL only: no API token at all
    for c in (o for o in objects if o["kind"] == "CronJob"):
        assert pod_spec(c)["automountServiceAccountToken"] is False


def test_on_plain_kubernetes_the_backups_volume_is_writable_by_the_pods():
    """A new volume's root is root's, mode 0755 (ext4 on a block device, for one): the image's
    user (10001, group 0) could not write it. kube-prometheus-stack's overlay asks the kubelet
    to give every pod's volumes to an fsGroup (group-owned, group-writable, setgid), changed
    only when the root is not already the group's; OpenShift's restricted-v2 assigns one itself
    (and the openshift lint refuses a fixed one)."""
    objects = overlay("kube-prometheus-stack")
    with_claims = [
        o
        for o in lint.workloads(objects)
        if any("persistentVolumeClaim" in v for v in pod_spec(o).get("volumes", []))
    ]
    assert len(with_claims) == 7  # the exporter (reads), 4 backup/verify, prune, restore
    wrong = {
        o["metadata"]["name"]: pod_spec(o)["securityContext"]
        for o in with_claims
        if not isinstance(pod_spec(o)["securityContext"].get("fsGroup"), int)
        or pod_spec(o)["securityContext"].get("fsGroupChangePolicy") != "OnRootMismatch"
    }
    assert wrong == {}
    # still no fixed uid anywhere, and the restricted rules otherwise hold
    assert [p for p in lint.openshift(objects) if "fsGroup" not in p] == []


MONITORING_NAMESPACES = {
    "kube-prometheus-stack": ["monitoring"],
    # user workload monitoring's Alertmanager and Prometheus, or the platform's Alertmanager
    # (enableUserAlertmanagerConfig)
    "openshift": ["openshift-monitoring", "openshift-user-workload-monitoring"],
}


def _peer_namespaces(peer: dict[str, Any]) -> list[str]:
    selector = peer["namespaceSelector"]
    named = list(selector.get("matchLabels", {}).values())
    for expression in selector.get("matchExpressions", []):
        assert expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "In"
        named += expression["values"]
    return sorted(named)


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_monitoring_namespaces_are_the_overlays_own(name: str):
    """The OpenShift overlay patches the base's peers by position: every peer of both policies
    must end up naming that platform's monitoring namespaces, none left at the base's."""
    objects = overlay(name)
    for policy in ("stackmedic-receiver", "stackmedic-exporter"):
        spec = find(objects, "NetworkPolicy", policy)["spec"]
        peers = [peer for rule in spec["ingress"] for peer in rule["from"]]
        assert {tuple(_peer_namespaces(p)) for p in peers} == {tuple(MONITORING_NAMESPACES[name])}, policy
