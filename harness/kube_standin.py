"""A Kubernetes API stand-in: a real HTTP server on 127.0.0.1 that behaves as the API is documented.

No cluster can run on these machines (no kube-apiserver, no kind), so this server does what
stackmedic's Kubernetes actuator and the exporter's `kubernetes` check rely on, with the API's
own status codes and `Status` bodies:

- a bearer token (401 without it or with another); `forbid(verb, resource)` answers 403
  Forbidden to what RBAC would refuse;
- Deployments and StatefulSets (`apps/v1`): GET one, GET a list with `labelSelector` (equality,
  existence and set terms), PATCH with `application/merge-patch+json` or `strategic-merge-patch+json` (415 for
  other types). A patch carrying `metadata.resourceVersion` that is not the current one answers
  409 Conflict, as optimistic concurrency does. A change of `spec` bumps `metadata.generation`;
  the same patch again changes nothing (same generation, same resourceVersion);
- rollouts: after a new generation a Deployment's status moves one step per GET
  (observedGeneration, then updated, then available replicas) when it `progress`es, or stays
  with old pods when it `stall`s, until `progressDeadlineSeconds` after the change: then the
  Progressing condition turns False with reason ProgressDeadlineExceeded; a Deployment with
  `spec.paused` observes a new template and rolls nothing out (Progressing Unknown,
  DeploymentPaused), with no deadline;
- Jobs (`batch/v1`): POST answers 201, 409 AlreadyExists for a name in use, 422 Invalid for a
  name that is not a DNS-1123 label of at most 63 characters or a missing container; the Job
  runs a runner (a function of the Job object returning exit code and log) in a pod named
  `<job>-<5 chars>` labelled `job-name` and `batch.kubernetes.io/job-name`; the Job gets
  `status.active`, then the condition Complete or Failed (with `succeeded` / `failed`);
- CronJobs: GET one; pods: GET a list with `labelSelector`, GET `/pods/NAME/log` (text/plain);
- faults on demand: `fail(status, match, count)`, `refuse()`/`accept()` (connections refused),
  `hang(match, after)`/`release()` (a request held before or after doing its work); `match`
  is looked for in "METHOD /path" ("PATCH /apis/apps" holds only patches).

Objects are plain dicts (what `kubectl get -o json` shows); every request is recorded in `calls`.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.http_standin import Handler, HTTPStandIn

#: a Job's runner: the Job object in, (exit code, the pod's log) out
JobRunner = Callable[[dict[str, Any]], tuple[int, str]]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>apps|batch)/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|status))?$"
)
KINDS = {
    "deployments": ("apps", "Deployment"),
    "statefulsets": ("apps", "StatefulSet"),
    "jobs": ("batch", "Job"),
    "cronjobs": ("batch", "CronJob"),
    "pods": ("", "Pod"),
}
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None = None


def status_body(code: int, reason: str, message: str, kind: str = "", name: str = "") -> dict[str, Any]:
    """The API's `Status` object for a failure."""
    details = {k: v for k, v in (("name", name), ("kind", kind)) if v}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


SET_TERM = re.compile(r"^(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)$")


def _terms(selector: str) -> list[str]:
    """The comma-separated terms of a selector; commas inside `(...)` belong to their term."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    return [t for t in [*terms, current.strip()] if t]


def selects(selector: str, labels: dict[str, str]) -> bool:
    """A label selector against `labels`, as the API reads `labelSelector`: equality terms
    (`a=b`, `a==b`, `a!=b`), existence (`a`, `!a`) and set terms (`a in (x,y)`, `a notin (x)`)."""
    for term in _terms(selector):
        if m := SET_TERM.match(term):
            values = {v.strip() for v in m.group("values").split(",")}
            inside = m.group("key") in labels and labels[m.group("key")] in values
            if inside != (m.group("op") == "in"):
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


class KubeStandIn(HTTPStandIn):
    """See the module docstring."""

    methods = ("GET", "POST", "PATCH")

    def __init__(
        self, namespace: str = "stackmedic", token: str | None = None, job_runner: JobRunner | None = None
    ):
        super().__init__()
        self.namespace = namespace
        self.token = token or secrets.token_hex(16)
        self.job_runner: JobRunner = job_runner or (lambda job: (0, '{"status": "ok"}\n'))
        self.calls: list[Call] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self.logs: dict[str, str] = {}  # pod name -> log
        self.rollout: dict[str, str] = {}  # deployment name -> progress | stall
        self._rolling: dict[str, float] = {}  # deployment name -> when its rollout began
        self._version = 1000
        self._forbidden: set[tuple[str, str]] = set()

    # faults on demand (the server, fail, hang and release: http_standin.py)

    def forbid(self, verb: str, resource: str) -> None:
        """RBAC says no to `verb` (get, list, create, patch) on `resource` (jobs, pods/log, ...)."""
        self._forbidden.add((verb, resource))

    # the objects

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _stamp(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        group, kind = KINDS[resource]
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", self.namespace)
        meta.setdefault("labels", {})
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_version()
        meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        meta.setdefault("generation", 1)
        obj["apiVersion"] = f"{group}/v1" if group else "v1"
        obj["kind"] = kind
        self.objects[(resource, meta["namespace"], meta["name"])] = obj
        return obj

    def add_deployment(
        self,
        name: str,
        replicas: int = 2,
        progress_deadline: int = 600,
        labels: dict[str, str] | None = None,
        selector: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A Deployment whose rollout is complete; `rollout[name]` says how the next one goes."""
        labels = labels or {"app.kubernetes.io/name": name}
        obj = {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": progress_deadline,
                "selector": copy.deepcopy(selector) if selector else {"matchLabels": dict(labels)},
                "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{"name": name}]}},
            },
        }
        with self._lock:
            self._stamp("deployments", obj)
            obj["status"] = self._settled_status(obj)
            self.rollout.setdefault(name, "progress")
        return obj

    def add_statefulset(self, name: str, replicas: int = 1, ready: int | None = None) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": name}
        ready = replicas if ready is None else ready
        obj = {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}},
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "updatedReplicas": replicas,
                "currentReplicas": replicas,
            },
        }
        with self._lock:
            return self._stamp("statefulsets", obj)

    def add_pod(self, name: str, labels: dict[str, str], restarts: int = 0, log: str = "") -> dict[str, Any]:
        obj = {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"containers": [{"name": "main"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "main", "ready": True, "restartCount": restarts}],
            },
        }
        with self._lock:
            self.logs[name] = log
            return self._stamp("pods", obj)

    def add_cronjob(self, name: str, job_template: dict[str, Any]) -> dict[str, Any]:
        obj = {
            "metadata": {"name": name},
            "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": copy.deepcopy(job_template)},
        }
        with self._lock:
            return self._stamp("cronjobs", obj)

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((resource, self.namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, resource: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for (r, _, _), o in self.objects.items() if r == resource]

    def set_status(self, resource: str, name: str, **status: Any) -> None:
        with self._lock:
            self.objects[(resource, self.namespace, name)]["status"].update(status)

    # rollouts

    @staticmethod
    def _settled_status(obj: dict[str, Any]) -> dict[str, Any]:
        n = obj["spec"]["replicas"]
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }

    def _advance(self, obj: dict[str, Any]) -> None:
        """One step of the Deployment controller, taken when the Deployment is read."""
        meta, status = obj["metadata"], obj["status"]
        n = obj["spec"]["replicas"]
        started = self._rolling.get(meta["name"])
        if started is None:
            return
        mode = self.rollout.get(meta["name"], "progress")
        progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
        if obj["spec"].get("paused"):
            # the controller observes the new template but makes no ReplicaSet for it, and a
            # paused Deployment never reaches its progress deadline
            status.update(observedGeneration=meta["generation"], updatedReplicas=0)
            progressing = {"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused"}
        elif status.get("observedGeneration") != meta["generation"]:
            status.update(observedGeneration=meta["generation"], updatedReplicas=0, replicas=n + 1)
        elif mode == "stall":
            if time.monotonic() - started > obj["spec"].get("progressDeadlineSeconds", 600):
                progressing = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            status.update(updatedReplicas=1, replicas=n + 1, availableReplicas=n - 1, readyReplicas=n - 1)
        elif status["updatedReplicas"] < n:
            status.update(updatedReplicas=n, replicas=n + 1, availableReplicas=n - 1, readyReplicas=n - 1)
        else:
            obj["status"] = self._settled_status(obj)
            del self._rolling[meta["name"]]
            return
        status["conditions"] = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            progressing,
        ]

    # jobs

    def _run_job(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        pod_name = f"{name}-{secrets.token_hex(3)[:5]}"
        labels = {
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": job["metadata"]["uid"],
        }
        with self._lock:
            self.add_pod(pod_name, labels)
            job["status"] = {"active": 1, "startTime": job["metadata"]["creationTimestamp"]}
            job["metadata"]["resourceVersion"] = self._next_version()
        try:
            code, log = self.job_runner(copy.deepcopy(job))
        except Exception as exc:  # the runner is test code: its failure is the Job's failure
            code, log = 1, f"runner raised {exc!r}\n"
        with self._lock:
            self.logs[pod_name] = log
            pod = self.objects[("pods", self.namespace, pod_name)]
            pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
            done = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if code == 0:
                job["status"] = {
                    "succeeded": 1,
                    "startTime": job["status"]["startTime"],
                    "completionTime": done,
                }
                condition = {"type": "Complete", "status": "True"}
            else:
                job["status"] = {"failed": 1, "startTime": job["status"]["startTime"]}
                condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
            job["status"]["conditions"] = [{**condition, "lastTransitionTime": done}]
            job["metadata"]["resourceVersion"] = self._next_version()

    def jobs(self) -> list[dict[str, Any]]:
        return self.list("jobs")

    def patches(self, resource: str = "deployments") -> list[Call]:
        return [c for c in self.calls if c.method == "PATCH" and f"/{resource}/" in c.path]

    # HTTP (the request cycle: http_standin.py)

    def _where(self, method: str, path: str) -> str:
        return f"{method} {path}"

    def _call(self, method: str, path: str, query: dict[str, str], body: bytes) -> Call:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = ValueError
        return Call(method, path, query, parsed)

    def _route(self, h: Handler, method: str, path: str, call: Call) -> tuple[int, dict[str, str], Any]:
        status, payload = self._answer(h, method, path, call)
        return status, {}, payload

    def _answer(self, h: Handler, method: str, path: str, call: Call) -> tuple[int, Any]:
        code = self._injected(f"{method} {path}")
        if code is not None:
            return code, status_body(code, "InternalError", "fault injected by the stand-in")
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, status_body(401, "Unauthorized", "Unauthorized")
        m = PATH.match(path)
        if not m or m.group("resource") not in KINDS:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        resource, ns, name, sub = m.group("resource"), m.group("ns"), m.group("name"), m.group("sub")
        group, kind = KINDS[resource]
        if (m.group("group") or "") != group:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch"}[method]
        rbac_resource = f"{resource}/{sub}" if sub else resource
        if (verb, rbac_resource) in self._forbidden:
            message = (
                f'{rbac_resource} "{name or ""}" is forbidden: User "system:serviceaccount:{ns}:stackmedic-receiver" '
                f'cannot {verb} resource "{rbac_resource}" in API group "{group}" in the namespace "{ns}"'
            )
            return 403, status_body(403, "Forbidden", message, resource, name or "")
        with self._lock:
            if method == "POST" and not name:
                return self._create(resource, ns, call.body)
            if name is None:
                if method != "GET":
                    return 405, status_body(405, "MethodNotAllowed", "the server does not allow this method")
                items = [
                    copy.deepcopy(o)
                    for (r, n, _), o in sorted(self.objects.items())
                    if r == resource
                    and n == ns
                    and selects(call.query.get("labelSelector", ""), o["metadata"]["labels"])
                ]
                return 200, {
                    "kind": f"{kind}List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self._version)},
                    "items": items,
                }
            obj = self.objects.get((resource, ns, name))
            if obj is None:
                return 404, status_body(404, "NotFound", f'{resource} "{name}" not found', resource, name)
            if sub == "log":
                return 200, self.logs.get(name, "")
            if method == "GET":
                if resource == "deployments":
                    self._advance(obj)
                return 200, copy.deepcopy(obj)
            if method == "PATCH":
                return self._patch(h, resource, obj, call.body)
        return 405, status_body(405, "MethodNotAllowed", "the server does not allow this method")

    def _create(self, resource: str, ns: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, status_body(400, "BadRequest", "the body is not a JSON object")
        name = (body.get("metadata") or {}).get("name", "")
        _, kind = KINDS[resource]
        if not DNS_LABEL.match(name) or len(name) > 63:
            message = f'{kind}.batch "{name}" is invalid: metadata.name: Invalid value: "{name}"'
            return 422, status_body(422, "Invalid", message, resource, name)
        if resource == "jobs" and not (
            ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
        ).get("containers"):
            message = f'{kind}.batch "{name}" is invalid: spec.template.spec.containers: Required value'
            return 422, status_body(422, "Invalid", message, resource, name)
        if (resource, ns, name) in self.objects:
            message = f'{resource}.batch "{name}" already exists'
            return 409, status_body(409, "AlreadyExists", message, resource, name)
        obj = copy.deepcopy(body)
        obj.setdefault("metadata", {})["namespace"] = ns
        self._stamp(resource, obj)
        obj.setdefault("status", {})
        if resource == "jobs":
            t = threading.Thread(target=self._run_job, args=(obj,), daemon=True)
            t.start()
            self._threads.append(t)
        return 201, copy.deepcopy(obj)

    def _patch(self, h: Handler, resource: str, obj: dict[str, Any], body: Any) -> tuple[int, Any]:
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            return 415, status_body(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
            )
        if not isinstance(body, dict):
            return 400, status_body(400, "BadRequest", "the body is not a JSON object")
        meta = obj["metadata"]
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != meta["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {resource}.apps "{meta["name"]}": the object has been '
                "modified; please apply your changes to the latest version and try again"
            )
            return 409, status_body(409, "Conflict", message, resource, meta["name"])
        patch = copy.deepcopy(body)
        (patch.get("metadata") or {}).pop("resourceVersion", None)
        merged = merge_patch({k: v for k, v in obj.items() if k != "status"}, patch)
        if merged == {k: v for k, v in obj.items() if k != "status"}:
            return 200, copy.deepcopy(obj)  # nothing changed: no new resourceVersion, no rollout
        spec_changed = merged.get("spec") != obj.get("spec")
        status = obj.get("status")
        obj.clear()
        obj.update(merged, status=status)
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_version()
        if spec_changed:
            meta["generation"] = meta.get("generation", 1) + 1
            if resource == "deployments":
                self._rolling[meta["name"]] = time.monotonic()
        return 200, copy.deepcopy(obj)
