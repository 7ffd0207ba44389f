"""What a pod of stackmedic must be on any cluster, and what OpenShift's restricted-v2 SCC adds.

Each rule returns the problems it finds as `Kind/name: what`, so a test shows all at once, and
each rule is also run on a broken object (tests/deploy_kubernetes/test_security.py) to prove it
can fail.
"""

from __future__ import annotations

from typing import Any

from tests.deploy_kubernetes.render import POD_KINDS, name_of, pod_spec


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in POD_KINDS]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("initContainers", []) + spec["containers"]


def hardening(objects: list[dict[str, Any]]) -> list[str]:
    """Non-root, seccomp RuntimeDefault, read-only root, no capability, no escalation, sized."""
    problems = []
    for obj in workloads(objects):
        n = name_of(obj)
        spec = pod_spec(obj)
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True:
            problems.append(f"{n}: runAsNonRoot is not true")
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{n}: seccompProfile is not RuntimeDefault")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                problems.append(f"{n}: {key}")
        for c in _containers(spec):
            sc = c.get("securityContext", {})
            where = f"{n} container {c['name']}"
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root file system is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
                problems.append(f"{where}: capabilities are not all dropped")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            resources = c.get("resources", {})
            for which in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(which, {}):
                        problems.append(f"{where}: no {resource} {which[:-1]}")
    return problems


def openshift(objects: list[dict[str, Any]]) -> list[str]:
    """restricted-v2 assigns the uid and fsGroup itself and forbids host paths; requests set;
    the restore Job is never retried by Kubernetes (a second restore is a second incident)."""
    problems = []
    for obj in workloads(objects):
        n = name_of(obj)
        spec = pod_spec(obj)
        contexts = [("pod", spec.get("securityContext", {}))]
        contexts += [(f"container {c['name']}", c.get("securityContext", {})) for c in _containers(spec)]
        for where, sc in contexts:
            for key in ("runAsUser", "runAsGroup", "fsGroup"):
                if key in sc:
                    problems.append(f"{n} {where}: fixed {key} {sc[key]}")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                path = volume["hostPath"].get("path", "")
                what = "the Docker socket" if path.endswith(("docker.sock", "/var/run", "/run")) else path
                problems.append(f"{n}: hostPath volume {volume['name']} ({what})")
        for c in _containers(spec):
            if not c.get("resources", {}).get("requests"):
                problems.append(f"{n} container {c['name']}: no requests")
    restore = [o for o in workloads(objects) if o["metadata"]["name"] == "stackmedic-restore"]
    if not restore:
        problems.append("no stackmedic-restore template")
    for obj in restore:
        job_spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
        if job_spec.get("backoffLimit") != 0:
            problems.append(
                f"{name_of(obj)}: backoffLimit is {job_spec.get('backoffLimit', 'unset (6)')}, not 0"
            )
        if pod_spec(obj).get("restartPolicy") != "Never":
            problems.append(f"{name_of(obj)}: restartPolicy is not Never")
        if obj["kind"] == "CronJob" and obj["spec"].get("suspend") is not True:
            problems.append(f"{name_of(obj)}: the restore template is not suspended")
    return problems
