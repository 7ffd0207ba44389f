"""The exporter's `kubernetes` check against the API stand-in: replicas and restarts of
Deployments and StatefulSets, a missing workload, and the API down or refusing."""

from __future__ import annotations

from pathlib import Path

from stackmedic.exporter.checks import build_checks
from stackmedic.exporter.config import parse
from stackmedic.exporter.deadline import Deadline

from harness.kube_standin import KubeStandIn


def scrape(kube: KubeStandIn, token_file: Path, workloads: list[dict]) -> dict[tuple, float]:
    config = parse(
        {
            "kubernetes": {
                "api_url": kube.url,
                "namespace": kube.namespace,
                "token_file": str(token_file),
                "timeout": "2s",
                "workloads": workloads,
            }
        }
    )
    [check] = build_checks(config)
    out = check.samples()
    check.run(out, Deadline.after(5))
    check.close()
    return {(spec.full_name, *labels): value for spec, labels, value in out.items}


def test_replicas_and_restarts_of_deployments_and_statefulsets(kube, token_file):
    kube.set_status("deployments", "petclinic", readyReplicas=1, availableReplicas=1)
    kube.add_pod("petclinic-a", {"app.kubernetes.io/name": "petclinic"}, restarts=3)
    kube.add_pod("petclinic-b", {"app.kubernetes.io/name": "petclinic"}, restarts=1)
    kube.add_pod("wordpress-a", {"app.kubernetes.io/name": "wordpress"}, restarts=7)
    kube.add_statefulset("mysql", replicas=1, ready=0)
    got = scrape(
        kube,
        token_file,
        [{"kind": "Deployment", "name": "petclinic"}, {"kind": "StatefulSet", "name": "mysql"}],
    )
    d = ("stackmedic", "Deployment", "petclinic")
    s = ("stackmedic", "StatefulSet", "mysql")
    assert got[("stackmedic_kubernetes_up",)] == 1
    assert got[("stackmedic_workload_replicas_desired", *d)] == 2
    assert got[("stackmedic_workload_replicas_ready", *d)] == 1
    assert got[("stackmedic_workload_replicas_available", *d)] == 1
    assert got[("stackmedic_workload_restarts", *d)] == 4  # wordpress' pod is not petclinic's
    assert got[("stackmedic_workload_replicas_desired", *s)] == 1
    assert got[("stackmedic_workload_replicas_ready", *s)] == 0
    assert got[("stackmedic_workload_restarts", *s)] == 0


def test_a_missing_workload_wants_its_expected_replicas_and_has_none(kube, token_file):
    got = scrape(kube, token_file, [{"kind": "Deployment", "name": "gone", "expected": 2}])
    labels = ("stackmedic", "Deployment", "gone")
    assert got[("stackmedic_kubernetes_up",)] == 1
    assert got[("stackmedic_workload_replicas_desired", *labels)] == 2
    assert got[("stackmedic_workload_replicas_ready", *labels)] == 0


def test_the_api_refusing_or_down_is_up_0_not_a_failed_scrape(kube, token_file):
    workloads = [{"kind": "Deployment", "name": "petclinic"}]
    kube.forbid("list", "pods")
    got = scrape(kube, token_file, workloads)
    assert got[("stackmedic_kubernetes_up",)] == 0
    assert got[("stackmedic_workload_replicas_ready", "stackmedic", "Deployment", "petclinic")] == 0
    kube.refuse()
    got = scrape(kube, token_file, workloads)
    assert got[("stackmedic_kubernetes_up",)] == 0


def test_a_wrong_token_is_up_0(kube, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("nope")
    got = scrape(kube, bad, [{"kind": "Deployment", "name": "petclinic"}])
    assert got[("stackmedic_kubernetes_up",)] == 0


def test_restarts_follow_the_whole_selector_match_expressions_too(kube, token_file):
    """A workload's pods are those of its whole selector: the set-based matchExpressions narrow
    matchLabels (a worker Deployment's pods share app=shop with the web one's), or are all of
    it."""
    kube.add_deployment(
        "shop-web",
        selector={
            "matchLabels": {"app": "shop"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}],
        },
    )
    kube.add_deployment(
        "cache",
        selector={
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["cache"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "NotIn", "values": ["test"]},
                {"key": "zone", "operator": "Exists"},
            ]
        },
    )
    kube.add_pod("shop-web-a", {"app": "shop", "tier": "web"}, restarts=2)
    kube.add_pod("shop-worker-a", {"app": "shop", "tier": "worker"}, restarts=5)
    kube.add_pod("cache-a", {"app": "cache", "zone": "a"}, restarts=3)
    kube.add_pod("cache-canary", {"app": "cache", "zone": "a", "canary": "1"}, restarts=11)
    kube.add_pod("cache-test", {"app": "cache", "zone": "a", "tier": "test"}, restarts=13)
    kube.add_pod("cache-nozone", {"app": "cache"}, restarts=17)
    got = scrape(
        kube,
        token_file,
        [{"kind": "Deployment", "name": "shop-web"}, {"kind": "Deployment", "name": "cache"}],
    )
    assert got[("stackmedic_workload_restarts", "stackmedic", "Deployment", "shop-web")] == 2
    assert got[("stackmedic_workload_restarts", "stackmedic", "Deployment", "cache")] == 3
