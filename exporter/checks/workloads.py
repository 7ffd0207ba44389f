"""Workloads on Kubernetes (the `kubernetes` section): the analogue of the container counts.

On a cluster there is no Docker socket to count containers with; the API says how many replicas
each Deployment or StatefulSet wants and how many are ready and available, and its pods'
containers say how often they restarted. One GET per workload and one pod list per workload
(by its selector), each bounded by the scrape deadline. A workload that does not exist wants
its configured `expected` replicas and has none, so an alert on `ready < desired` fires for it.
Sample::

    stackmedic_kubernetes_up 1
    stackmedic_workload_replicas_desired{namespace="shop",kind="Deployment",workload="petclinic"} 2
    stackmedic_workload_replicas_ready{namespace="shop",kind="Deployment",workload="petclinic"} 1
    stackmedic_workload_replicas_available{namespace="shop",kind="Deployment",workload="petclinic"} 1
    stackmedic_workload_restarts{namespace="shop",kind="Deployment",workload="petclinic"} 3
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from stackmedic.kube import CA_FILE, TOKEN_FILE, in_cluster_namespace, in_cluster_url, read_token

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check

log = logging.getLogger(__name__)

RESOURCES = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
LABELS = ("namespace", "kind", "workload")
UP = MetricSpec("kubernetes_up", "gauge", "1 when the Kubernetes API answered for every workload.")
DESIRED = MetricSpec("workload_replicas_desired", "gauge", "Replicas the workload's spec asks for.", LABELS)
READY = MetricSpec("workload_replicas_ready", "gauge", "Replicas whose pods are ready.", LABELS)
AVAILABLE = MetricSpec(
    "workload_replicas_available", "gauge", "Replicas ready for at least minReadySeconds.", LABELS
)
RESTARTS = MetricSpec(
    "workload_restarts", "gauge", "Container restarts summed over the workload's current pods.", LABELS
)


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    expected: int = 1


def label_selector(selector: dict[str, Any]) -> str:
    """A workload's `spec.selector` as the API's `labelSelector` query: matchLabels and the
    set-based matchExpressions alike, so that its pods are exactly the workload's."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, values = expression["key"], ",".join(expression.get("values") or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[expression["operator"]]
        )
    return ",".join(terms)


class ApiError(Exception):
    """The API did not answer as it should (status, transport, or body)."""


class WorkloadsCheck(Check):
    """Replicas and restarts of the configured Deployments and StatefulSets of one namespace."""

    kind = "kubernetes"
    metrics = (UP, DESIRED, READY, AVAILABLE, RESTARTS)

    def __init__(
        self,
        workloads: Sequence[Workload],
        api_url: str | None = None,
        namespace: str | None = None,
        token_file: str = TOKEN_FILE,
        ca_file: str | None = CA_FILE,
        verify_tls: bool = True,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ):
        super().__init__("kubernetes", timeout)
        self.workloads = list(workloads)
        self.api_url = api_url
        self.namespace = namespace
        self.token_file = token_file
        self.session = session or requests.Session()
        self.session.verify = (ca_file or True) if verify_tls else False

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        workloads = [Workload(w["kind"], w["name"], w["expected"]) for w in section["workloads"]]
        keys = ("api_url", "namespace", "token_file", "ca_file", "verify_tls", "timeout")
        return [cls(workloads, **{k: section[k] for k in keys if k in section})]

    def _ns(self) -> str:
        if self.namespace is None:
            self.namespace = in_cluster_namespace()
        return self.namespace

    def _get(
        self, path: str, deadline: Deadline, params: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        base = (self.api_url or in_cluster_url()).rstrip("/")
        headers = {"Authorization": f"Bearer {read_token(self.token_file)}", "Accept": "application/json"}
        try:
            resp = self.session.get(
                base + path, params=params, headers=headers, timeout=deadline.timeout(self.timeout)
            )
        except requests.RequestException as exc:
            raise ApiError(f"{path}: {exc}") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ApiError(f"{path}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise ApiError(f"{path}: answer is not JSON") from exc
        return body if isinstance(body, dict) else None

    def run(self, out: Samples, deadline: Deadline) -> None:
        ns = self._ns()
        values = []
        try:
            for w in self.workloads:
                values.append((w, self._measure(ns, w, deadline)))
        except (ApiError, OSError) as exc:
            log.warning("kubernetes API: %s", exc)
            self.blank(out, "", 0.0)
            return
        out.add(UP, 1)
        for w, (desired, ready, available, restarts) in values:
            labels = (ns, w.kind, w.name)
            out.add(DESIRED, desired, *labels)
            out.add(READY, ready, *labels)
            out.add(AVAILABLE, available, *labels)
            out.add(RESTARTS, restarts, *labels)

    def _measure(self, ns: str, w: Workload, deadline: Deadline) -> tuple[int, int, int, int]:
        obj = self._get(f"/apis/apps/v1/namespaces/{ns}/{RESOURCES[w.kind]}/{w.name}", deadline)
        if obj is None:
            return w.expected, 0, 0, 0  # gone: wanted, and nothing there
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        desired = spec.get("replicas", 1)
        query = label_selector(spec.get("selector") or {})
        restarts = 0
        if query:  # apps/v1 requires a selector; an empty one would count every pod
            pods = self._get(f"/api/v1/namespaces/{ns}/pods", deadline, {"labelSelector": query}) or {}
            for pod in pods.get("items") or []:
                for c in (pod.get("status") or {}).get("containerStatuses") or []:
                    restarts += int(c.get("restartCount") or 0)
        return desired, status.get("readyReplicas", 0), status.get("availableReplicas", 0), restarts

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        out.add(UP, 0)
        ns = self.namespace or ""
        for w in self.workloads:
            for spec in (DESIRED, READY, AVAILABLE, RESTARTS):
                out.add(spec, 0, ns, w.kind, w.name)
