"""The Kubernetes actuator: restart a Deployment, or restore a database with a Job, exactly once.

A rule picks it with `actuator: kubernetes` and one of two jobs:

- `restart` (param `DEPLOYMENT`): the Deployment's pod template gets the annotation
  `stackmedic.io/restart-token: <token>` (what `kubectl rollout restart` does with a time), and
  its metadata the label `stackmedic.io/action-token: <token>` so the action can be found again
  by its token alone. The patch carries the resourceVersion it was made from (a concurrent
  change answers 409 and it is read and made again); when the template already holds the token
  the patch is not sent at all: a repeat is a no-op, and Kubernetes rolls out nothing for a
  template that did not change anyway. The rollout is then followed as `kubectl rollout status`
  does, to available (SUCCESS) or to its progress deadline (FAILURE); a paused Deployment,
  which rolls nothing out and has no deadline, is a FAILURE once it has seen the new template.
- `restore` (param `DATABASE`): a Job named `stackmedic-restore-<token>` is created from the
  `jobTemplate` of the suspended restore CronJob (deploy/kubernetes), never retried
  (`backoffLimit: 0`), with the database in `STACKMEDIC_DATABASE`. The name is the exactly-once
  guarantee: a second create, from a retry, a restarted receiver or another replica, answers 409
  AlreadyExists and creates nothing. The Job's conditions give the result (Complete: SUCCESS,
  Failed: FAILURE) and its pod's log the job's JSON result line (`Ref.description`).

Either way the finished Ref carries a `description` that the audit keeps, as it keeps a Jenkins
build's: the restore Job's own result line, or for a restart a line of the same form saying
which Deployment rolled out to which generation with how many replicas available (or why not).

The Ref it hands back: `queue_id` is the Deployment's generation (restart) or 1 (restore) until
the work is seen running; `number` then says the same and `url` is the object's API path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from .base import LookupUncertain, Ref
from .kube_api import KubeAPI, KubeConflict, KubeError, KubeRejected, KubeUnavailable

RESTART, RESTORE = "restart", "restore"
JOBS = {RESTART: "DEPLOYMENT", RESTORE: "DATABASE"}
ANNOTATION = "stackmedic.io/restart-token"
TOKEN_LABEL = "stackmedic.io/action-token"  # noqa: S105 - a label name
JOB_PREFIX = "stackmedic-restore-"
DATABASE_ENV = "STACKMEDIC_DATABASE"


def rollout(obj: dict[str, Any], generation: int) -> tuple[str | None, str | None]:
    """(result, note) of a Deployment's rollout to at least `generation`, as kubectl judges it."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    if status.get("observedGeneration", 0) < max(generation, meta.get("generation", 0)):
        return None, None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return "FAILURE", f"deployment {meta['name']}: progress deadline exceeded"
    if spec.get("paused"):
        # nothing rolls out until someone resumes it, and no progress deadline runs meanwhile
        return "FAILURE", f"deployment {meta['name']} is paused: the restart is not rolled out"
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if (
        updated < wanted
        or status.get("replicas", 0) > updated
        or status.get("availableReplicas", 0) < updated
    ):
        return None, None
    return "SUCCESS", None


def rollout_report(obj: dict[str, Any], result: str, note: str | None) -> str:
    """A finished rollout as a JSON result line, like `stackmedic-job restart` prints for Jenkins."""
    name, status = obj["metadata"]["name"], obj.get("status") or {}
    generation, wanted = status.get("observedGeneration", 0), (obj.get("spec") or {}).get("replicas", 1)
    available = status.get("availableReplicas", 0)
    message = (
        note
        or f"deployment {name} rolled out generation {generation}: {available}/{wanted} replicas available"
    )
    line = {
        "job": RESTART,
        "deployment": name,
        "status": "ok" if result == "SUCCESS" else "failed",
        "generation": generation,
        "replicas": wanted,
        "available_replicas": available,
        "message": message,
    }
    return json.dumps(line)


def result_line(log: str) -> str | None:
    """The job's JSON result line: the last line of the log that is a JSON object with a status."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "status" in value:
            return line
    return None


class KubernetesActuator:
    """Restarts and restores in `namespace` through `api` (an Actuator)."""

    lost_advice = "a restart or a restore Job may exist: look at the namespace's Deployments and Jobs"

    def __init__(
        self, api: KubeAPI, namespace: str, restore_template: str = "stackmedic-restore", retries: int = 3
    ):
        self.api = api
        self.namespace = namespace
        self.restore_template = restore_template
        self.retries = retries

    def _path(self, group: str, resource: str, name: str = "") -> str:
        prefix = "/api/v1" if not group else f"/apis/{group}/v1"
        return f"{prefix}/namespaces/{self.namespace}/{resource}" + (f"/{name}" if name else "")

    @staticmethod
    def _param(job: str, params: Mapping[str, str]) -> str:
        if job not in JOBS:
            raise KubeRejected(f"unknown kubernetes job {job!r}: restart or restore", 0)
        value = params.get(JOBS[job], "")
        if not value:
            raise KubeRejected(f"{job}: parameter {JOBS[job]} is missing", 0)
        return value

    # trigger

    def trigger(
        self, job: str, params: Mapping[str, str], token: str, confirm: Callable[[], None] = lambda: None
    ) -> Ref:
        """Patch or create; `confirm()` runs right before the request that does it (base.py)."""
        value = self._param(job, params)
        return (
            self._restart(value, token, confirm) if job == RESTART else self._restore(value, token, confirm)
        )

    def _restart(self, name: str, token: str, confirm: Callable[[], None]) -> Ref:
        path = self._path("apps", "deployments", name)
        for _ in range(self.retries):
            obj = self.api.get("deployment", path)
            if obj is None:
                raise KubeRejected(f"deployment {name} not found in {self.namespace}", 404, "NotFound")
            template_meta = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
            if (template_meta.get("annotations") or {}).get(ANNOTATION) == token:
                return Ref(queue_id=obj["metadata"].get("generation", 1))  # a repeat: already done
            body = {
                "metadata": {
                    "resourceVersion": obj["metadata"]["resourceVersion"],
                    "labels": {TOKEN_LABEL: token},
                },
                "spec": {"template": {"metadata": {"annotations": {ANNOTATION: token}}}},
            }
            try:
                patched = self.api.patch("deployment_patch", path, body, confirm)
            except KubeConflict:
                continue  # changed since we read it: read again
            return Ref(queue_id=patched["metadata"].get("generation", 1))
        raise KubeUnavailable(f"deployment {name}: still changing under us after {self.retries} attempts")

    def _restore(self, database: str, token: str, confirm: Callable[[], None]) -> Ref:
        template = self.api.get("cronjob", self._path("batch", "cronjobs", self.restore_template))
        if template is None:
            raise KubeRejected(f"restore template cronjob {self.restore_template} not found", 404, "NotFound")
        job_template = (template.get("spec") or {}).get("jobTemplate") or {}
        spec = copy.deepcopy(job_template.get("spec") or {})
        spec["backoffLimit"] = 0  # a restore is never run twice by Kubernetes
        for container in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
            env = [e for e in container.get("env") or [] if e.get("name") != DATABASE_ENV]
            container["env"] = [*env, {"name": DATABASE_ENV, "value": database}]
        labels = {**((job_template.get("metadata") or {}).get("labels") or {}), TOKEN_LABEL: token}
        body = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": JOB_PREFIX + token,
                "labels": labels,
                "annotations": {"stackmedic.io/database": database},
            },
            "spec": spec,
        }
        try:
            self.api.create("job_create", self._path("batch", "jobs"), body, confirm)
        except KubeConflict as exc:
            if exc.reason != "AlreadyExists":
                raise
            # created before (a retry, a restarted receiver, another replica): it is ours
        return Ref(queue_id=1)

    # find

    def find(self, job: str, token: str) -> Ref | None:
        try:
            if job == RESTART:
                path = self._path("apps", "deployments")
                found = self.api.get("deployment_list", path, {"labelSelector": f"{TOKEN_LABEL}={token}"})
                items = (found or {}).get("items")
                if items is None:
                    raise LookupUncertain(f"deployments with token {token}: no list in the answer")
                if not items:
                    return None
                meta = items[0]["metadata"]
                return Ref(number=meta.get("generation", 1), url=f"{path}/{meta['name']}")
            if job == RESTORE:
                obj = self.api.get("job", self._path("batch", "jobs", JOB_PREFIX + token))
                return None if obj is None else self._job_ref(obj)
        except LookupUncertain:
            raise
        except KubeError as exc:
            raise LookupUncertain(f"looking up {job} {token}: {exc}") from exc
        raise LookupUncertain(f"unknown kubernetes job {job!r}")

    # follow

    def follow(self, job: str, ref: Ref, token: str) -> Ref:
        if job == RESTORE:
            obj = self.api.get("job", self._path("batch", "jobs", JOB_PREFIX + token))
            if obj is None:
                return Ref(
                    queue_id=ref.queue_id, number=ref.number, result="LOST", note="restore job not found"
                )
            return self._job_ref(obj)
        if ref.url is None:  # queued: the patch is made, find which Deployment carries it
            found = self.find(job, token)
            if found is None:
                return Ref(
                    queue_id=ref.queue_id, result="LOST", note="no deployment carries the token any more"
                )
            return Ref(queue_id=ref.queue_id, number=max(found.number or 0, ref.queue_id or 0), url=found.url)
        obj = self.api.get("deployment", ref.url)
        if obj is None:
            return Ref(number=ref.number, url=ref.url, result="LOST", note="deployment not found")
        result, note = rollout(obj, ref.number or 0)
        description = None if result is None else rollout_report(obj, result, note)
        return Ref(number=ref.number, url=ref.url, result=result, note=note, description=description)

    def _job_ref(self, obj: dict[str, Any]) -> Ref:
        name = obj["metadata"]["name"]
        url = self._path("batch", "jobs", name)
        status = obj.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in conditions or "Failed" in conditions:
            result = "SUCCESS" if "Complete" in conditions else "FAILURE"
            description, problem = self._result_line(name)
            failed = conditions.get("Failed") or {}
            note = " ".join(filter(None, [failed.get("reason"), failed.get("message"), problem])) or None
            return Ref(queue_id=1, number=1, url=url, result=result, note=note, description=description)
        if status.get("active") or status.get("startTime"):
            return Ref(queue_id=1, number=1, url=url)
        return Ref(queue_id=1)

    def _result_line(self, job_name: str) -> tuple[str | None, str | None]:
        """(the JSON result line of the Job's pod, or why it could not be read)."""
        try:
            pods = self.api.get("pod_list", self._path("", "pods"), {"labelSelector": f"job-name={job_name}"})
            items = (pods or {}).get("items") or []
            if not items:
                return None, "no pod left to read the result from"
            pod = max(items, key=lambda p: p["metadata"].get("creationTimestamp", ""))
            containers = (pod.get("spec") or {}).get("containers") or [{}]
            params = {"container": containers[0]["name"]} if containers[0].get("name") else None
            log = self.api.text("pod_log", self._path("", "pods", pod["metadata"]["name"]) + "/log", params)
        except KubeError as exc:
            return None, f"result line unreadable: {exc}"
        line = result_line(log or "")
        return line, None if line else "no JSON result line in the pod's log"
