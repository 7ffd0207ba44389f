"""The Kubernetes actuator against the API stand-in: restart by a pod-template annotation and
its rollout, restore by a Job named after the token, and every answer the API can give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stackmedic.receiver.actuators.base import LookupUncertain, MaybeSent, NotSent, Ref, Rejected
from stackmedic.receiver.actuators.kube_api import KubeAPI
from stackmedic.receiver.actuators.kubernetes import ANNOTATION, TOKEN_LABEL, KubernetesActuator

from harness.kube_standin import KubeStandIn
from harness.services import wait_for

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def actuator(kube: KubeStandIn, token_file: Path) -> KubernetesActuator:
    return KubernetesActuator(KubeAPI(kube.url, str(token_file), timeout=2), "stackmedic")


def follow_to_end(actuator: KubernetesActuator, job: str, ref: Ref) -> Ref:
    state = {"ref": ref}

    def finished() -> bool:
        state["ref"] = actuator.follow(job, state["ref"], TOKEN)
        return state["ref"].result is not None

    wait_for(finished, 20, f"the {job} to finish", interval=0.02)
    return state["ref"]


def test_restart_patches_the_template_once_and_follows_the_rollout(kube, actuator):
    ref = actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, TOKEN)
    deployment = kube.get("deployments", "petclinic")
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {ANNOTATION: TOKEN}
    assert deployment["metadata"]["labels"][TOKEN_LABEL] == TOKEN
    assert ref == Ref(queue_id=2)  # the generation the rollout must reach
    # the patch was made from the version it read (optimistic concurrency)
    [patch] = kube.patches()
    assert patch.body["metadata"]["resourceVersion"]
    running = actuator.follow("restart", ref, TOKEN)
    assert running.number == 2 and running.url.endswith("/deployments/petclinic")
    done = follow_to_end(actuator, "restart", running)
    assert done.result == "SUCCESS" and done.note is None
    assert kube.get("deployments", "wordpress")["metadata"]["generation"] == 1


def test_a_repeated_restart_is_a_no_op(kube, actuator):
    first = actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, TOKEN)
    version = kube.get("deployments", "petclinic")["metadata"]["resourceVersion"]
    again = actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, TOKEN)
    assert again == first
    assert len(kube.patches()) == 1
    assert kube.get("deployments", "petclinic")["metadata"]["resourceVersion"] == version
    # another action's token is another restart
    actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, "f" * 32)
    assert kube.get("deployments", "petclinic")["metadata"]["generation"] == 3


def test_a_stalled_rollout_fails_at_its_progress_deadline(kube, actuator):
    kube.add_deployment("stuck", progress_deadline=0)
    kube.rollout["stuck"] = "stall"
    ref = actuator.trigger("restart", {"DEPLOYMENT": "stuck"}, TOKEN)
    done = follow_to_end(actuator, "restart", actuator.follow("restart", ref, TOKEN))
    assert done.result == "FAILURE"
    assert done.note == "deployment stuck: progress deadline exceeded"


def test_a_concurrent_change_is_read_again_not_overwritten(kube, actuator, monkeypatch):
    """409 Conflict on the patch: someone changed the Deployment; read it again and patch that."""
    real_patch = actuator.api.patch
    changed = []

    def patch_after_someone_else(endpoint, path, body, before=None):
        if not changed:
            changed.append(True)
            kube.set_status("deployments", "petclinic")  # no change yet; now a real concurrent write:
            kube.objects[("deployments", "stackmedic", "petclinic")]["metadata"]["resourceVersion"] = "999999"
        return real_patch(endpoint, path, body, before)

    monkeypatch.setattr(actuator.api, "patch", patch_after_someone_else)
    actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, TOKEN)
    assert [c.status for c in kube.patches()] == [409, 200]
    assert (
        kube.get("deployments", "petclinic")["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
        == TOKEN
    )


def test_restore_creates_one_job_named_after_the_token_and_reads_its_result(kube, actuator):
    ref = actuator.trigger("restore", {"DATABASE": "petclinic"}, TOKEN)
    assert ref == Ref(queue_id=1)
    [job] = kube.jobs()
    assert job["metadata"]["name"] == f"stackmedic-restore-{TOKEN}"
    assert job["metadata"]["labels"][TOKEN_LABEL] == TOKEN
    assert job["spec"]["backoffLimit"] == 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "STACKMEDIC_DATABASE", "value": "petclinic"} in container["env"]
    assert [e["name"] for e in container["env"]].count("STACKMEDIC_DATABASE") == 1
    done = follow_to_end(actuator, "restore", ref)
    assert done.result == "SUCCESS"
    assert json.loads(done.description)["restored_from"] == "petclinic-1.sql.gz"


def test_a_second_create_answers_409_and_creates_nothing(kube, actuator):
    actuator.trigger("restore", {"DATABASE": "petclinic"}, TOKEN)
    again = actuator.trigger("restore", {"DATABASE": "petclinic"}, TOKEN)
    assert again == Ref(queue_id=1)
    creates = [c for c in kube.calls if c.method == "POST"]
    assert [c.status for c in creates] == [201, 409]
    assert len(kube.jobs()) == 1


def test_a_failed_restore_is_a_failure_with_its_result_line(kube, actuator):
    kube.job_runner = lambda job: (4, json.dumps({"status": "failed", "error": "no backup verifies"}) + "\n")
    ref = actuator.trigger("restore", {"DATABASE": "wordpress"}, TOKEN)
    done = follow_to_end(actuator, "restore", ref)
    assert done.result == "FAILURE"
    assert json.loads(done.description) == {"status": "failed", "error": "no backup verifies"}
    assert done.note == "BackoffLimitExceeded"


def test_find_tells_absent_from_unknown(kube, actuator):
    assert actuator.find("restart", TOKEN) is None
    assert actuator.find("restore", TOKEN) is None
    actuator.trigger("restart", {"DEPLOYMENT": "wordpress"}, TOKEN)
    actuator.trigger("restore", {"DATABASE": "wordpress"}, TOKEN)
    found = actuator.find("restart", TOKEN)
    assert found.number == 2 and found.url.endswith("/deployments/wordpress")
    assert actuator.find("restore", TOKEN).queue_id == 1
    kube.fail(500)
    with pytest.raises(LookupUncertain):
        actuator.find("restore", TOKEN)
    kube.fail(None)
    kube.forbid("list", "deployments")
    with pytest.raises(LookupUncertain, match="HTTP 403 Forbidden"):
        actuator.find("restart", TOKEN)


@pytest.mark.parametrize(
    ("setup", "job", "params", "error", "message"),
    [
        (
            lambda k: None,
            "restart",
            {"DEPLOYMENT": "nginx"},
            Rejected,
            "deployment nginx not found in stackmedic",
        ),
        (
            lambda k: k.forbid("patch", "deployments"),
            "restart",
            {"DEPLOYMENT": "petclinic"},
            Rejected,
            "HTTP 403 Forbidden",
        ),
        (
            lambda k: k.forbid("create", "jobs"),
            "restore",
            {"DATABASE": "petclinic"},
            Rejected,
            "HTTP 403 Forbidden",
        ),
        (
            lambda k: k.objects.pop(("cronjobs", "stackmedic", "stackmedic-restore")),
            "restore",
            {"DATABASE": "x"},
            Rejected,
            "restore template cronjob stackmedic-restore not found",
        ),
        (
            lambda k: k.fail(503, "/jobs"),
            "restore",
            {"DATABASE": "petclinic"},
            NotSent,
            "job_create: HTTP 503",
        ),
        (lambda k: k.fail(429), "restart", {"DEPLOYMENT": "petclinic"}, NotSent, "deployment: HTTP 429"),
        (lambda k: k.refuse(), "restart", {"DEPLOYMENT": "petclinic"}, NotSent, "deployment: cannot connect"),
        (
            lambda k: None,
            "rollback",
            {"DEPLOYMENT": "petclinic"},
            Rejected,
            "unknown kubernetes job 'rollback'",
        ),
        (lambda k: None, "restore", {}, Rejected, "restore: parameter DATABASE is missing"),
    ],
)
def test_what_each_answer_means(kube, actuator, setup, job, params, error, message):
    setup(kube)
    with pytest.raises(error, match=message):
        actuator.trigger(job, params, TOKEN)


def test_an_invalid_job_is_rejected_with_the_api_message(kube, actuator):
    with pytest.raises(Rejected, match="HTTP 422 Invalid"):
        actuator.trigger("restore", {"DATABASE": "petclinic"}, "NOT_A_DNS_LABEL")


def test_a_create_that_hangs_after_creating_may_have_been_sent(kube, token_file):
    actuator = KubernetesActuator(KubeAPI(kube.url, str(token_file), timeout=0.5), "stackmedic")
    kube.hang("/jobs", after=True)
    with pytest.raises(MaybeSent):
        actuator.trigger("restore", {"DATABASE": "petclinic"}, TOKEN)
    kube.release()
    # looked up by its token: it is there, so nothing is sent again
    assert actuator.find("restore", TOKEN) is not None
    assert len(kube.jobs()) == 1


def test_a_wrong_token_is_rejected(kube, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("not-the-token")
    actuator = KubernetesActuator(KubeAPI(kube.url, str(bad)), "stackmedic")
    with pytest.raises(Rejected, match="HTTP 401 Unauthorized"):
        actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, TOKEN)


def test_confirm_runs_right_before_the_request_and_can_stop_it(kube, actuator):
    """The flow proves it still owns the action at the moment of sending (base.py)."""
    seen = []
    actuator.trigger("restore", {"DATABASE": "petclinic"}, TOKEN, lambda: seen.append(len(kube.calls)))
    assert seen == [1]  # after reading the template, before the create
    assert [c.method for c in kube.calls] == ["GET", "POST"]

    class NotOurs(Exception):
        pass

    def refuse():
        raise NotOurs

    with pytest.raises(NotOurs):
        actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, "e" * 32, refuse)
    assert kube.patches() == []


def test_a_paused_deployment_is_a_failed_restart_not_an_endless_wait(kube, actuator):
    """A paused Deployment takes the new template and rolls nothing out, and never reaches its
    progress deadline: waiting would last until follow_timeout (2 h) and end LOST."""
    kube.objects[("deployments", "stackmedic", "petclinic")]["spec"]["paused"] = True
    ref = actuator.trigger("restart", {"DEPLOYMENT": "petclinic"}, TOKEN)
    done = follow_to_end(actuator, "restart", actuator.follow("restart", ref, TOKEN))
    assert done.result == "FAILURE"
    assert done.note == "deployment petclinic is paused: the restart is not rolled out"
    assert json.loads(done.description)["status"] == "failed"
