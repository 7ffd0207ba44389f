"""The receiver acting through Kubernetes: exactly one restart or restore Job per incident, when
two replicas share the store and when a receiver is killed in the middle (SIGKILL of a real
process), as tests/receiver does for Jenkins."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.kube_standin import KubeStandIn
from harness.receiver_process import ReceiverProcess
from harness.services import wait_for
from tests.receiver.helpers import AUTH, TOKEN, actions, alert, notification, receiver_config, settled

pytestmark = pytest.mark.slow  # each test kills and restarts a receiver process

RULES = [
    {
        "name": "restart",
        "match": {"remediation": "restart"},
        "actuator": "kubernetes",
        "job": "restart",
        "target": "compose_service",
        "params": {"DEPLOYMENT": "{compose_service}"},
        "allow": {"compose_service": "^(petclinic|wordpress)$"},
    },
    {
        "name": "restore",
        "match": {"remediation": "restore"},
        "actuator": "kubernetes",
        "job": "restore",
        "target": "database",
        "params": {"DATABASE": "{database}"},
        "allow": {"database": "^(petclinic|wordpress)$"},
    },
]


def restore_alert(database: str = "petclinic") -> dict[str, Any]:
    a = alert("mysql", fingerprint=f"fp-db-{database}")
    a["labels"] = {"alertname": "StackDatabaseTablesMissing", "remediation": "restore", "database": database}
    return a


def kube_config(store: dict | Path, kube: KubeStandIn, token_file: Path, **overrides: Any) -> dict[str, Any]:
    config = receiver_config(store if isinstance(store, Path) else "unused", None, rules=RULES, **overrides)
    if isinstance(store, dict):
        config["store"] = store
    config["kubernetes"] = {
        "api_url": kube.url,
        "namespace": kube.namespace,
        "token_file": str(token_file),
        "timeout": 1,
        "poll_interval": 0.02,
    }
    return config


# two replicas on one MySQL store (a real MariaDB)


@pytest.mark.services
def test_one_restart_and_one_job_per_incident_across_two_replicas(
    kube, token_file, serve, mariadb, monkeypatch
):
    import uuid

    from stackmedic.receiver.app import create_app

    monkeypatch.setenv("TEST_RECEIVER_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", mariadb.root_password)
    database = f"receiver_{uuid.uuid4().hex[:10]}"
    mariadb.execute(f"CREATE DATABASE {database}")

    def store(replica: str) -> dict:
        return {
            "type": "mysql",
            "host": mariadb.host,
            "port": mariadb.port,
            "user": "root",
            "password_env": "TEST_MYSQL_PASSWORD",
            "database": database,
            "replica": replica,
        }

    replicas = [create_app(kube_config(store(name), kube, token_file)) for name in ("a", "b")]
    try:
        urls = [serve(app) + "/api/v1/alerts" for app in replicas]
        body = json.dumps(notification(alert("petclinic"), restore_alert("wordpress")))
        barrier = threading.Barrier(4)
        statuses: list[int] = []

        def sender(url: str) -> None:
            session = requests.Session()
            barrier.wait()
            for _ in range(10):
                r = session.post(
                    url, data=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=20
                )
                statuses.append(r.status_code)

        threads = [threading.Thread(target=sender, args=(url,)) for url in urls * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 40
        wait_for(
            lambda: settled(replicas[0]) and len(actions(replicas[0])) == 80, 30, "both actions to finish"
        )
        done = [a for a in actions(replicas[1]) if a["build"]]
        assert sorted((a["rule"], a["build"]["result"]) for a in done) == [
            ("restart", "SUCCESS"),
            ("restore", "SUCCESS"),
        ]
        assert len([p for p in kube.patches() if p.status == 200]) == 1
        assert kube.get("deployments", "petclinic")["metadata"]["generation"] == 2
        assert [j["metadata"]["name"] for j in kube.jobs()] == [
            f"stackmedic-restore-{a['build']['action_token']}" for a in done if a["rule"] == "restore"
        ]
    finally:
        for app in replicas:
            app.extensions["stackmedic"].close()
        mariadb.execute(f"DROP DATABASE IF EXISTS {database}")


# a real receiver process, killed


@pytest.fixture
def receiver(tmp_path: Path, kube: KubeStandIn, token_file: Path) -> Iterator[Callable[[], ReceiverProcess]]:
    made: list[ReceiverProcess] = []

    def make() -> ReceiverProcess:
        config = kube_config(tmp_path / "receiver.sqlite", kube, token_file)
        r = ReceiverProcess(tmp_path, config, {"TEST_RECEIVER_TOKEN": TOKEN}, TOKEN)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def test_killed_after_the_job_was_created_but_before_the_answer(receiver, kube):
    kube.hang("POST /apis/batch", after=True)  # created, but the 201 never comes
    r = receiver().start()
    assert r.post(notification(restore_alert())).status_code == 200
    wait_for(lambda: kube.jobs(), 10, "the Job to be created")
    r.kill()
    kube.release()
    r.start()
    wait_for(r.settled, 30, "the restore to settle after the restart")
    [action] = [a for a in r.actions() if a["build"]]
    assert action["build"]["result"] == "SUCCESS"
    [job] = kube.jobs()
    assert job["metadata"]["name"] == f"stackmedic-restore-{action['build']['action_token']}"
    # found again by its name, or created again and answered 409: never a second Job
    assert [c.status for c in kube.calls if c.method == "POST"] in ([201], [201, 409])


def test_killed_after_the_restart_patch_but_before_the_answer(receiver, kube):
    kube.hang("PATCH /apis/apps", after=True)
    r = receiver().start()
    assert r.post(notification(alert("wordpress"))).status_code == 200
    wait_for(lambda: kube.patches(), 10, "the patch to arrive")
    r.kill()
    kube.release()
    r.start()
    wait_for(r.settled, 30, "the restart to settle after the restart")
    [action] = [a for a in r.actions() if a["build"]]
    assert action["build"]["result"] == "SUCCESS"
    deployment = kube.get("deployments", "wordpress")
    assert deployment["metadata"]["generation"] == 2  # one rollout, not two
    assert len(kube.patches()) == 1


def test_killed_while_following_the_rollout(receiver, kube):
    kube.hang("GET /apis/apps/v1/namespaces/stackmedic/deployments/petclinic")
    r = receiver().start()
    assert r.post(notification(alert("petclinic"))).status_code == 200
    wait_for(lambda: any(c.method == "GET" for c in kube.calls), 10, "the receiver to read the Deployment")
    kube.release()
    wait_for(lambda: kube.patches(), 10, "the patch")
    kube.hang("GET /apis/apps/v1/namespaces/stackmedic/deployments/petclinic")
    r.kill()
    kube.release()
    r.start()
    wait_for(r.settled, 30, "the rollout to be followed to its end")
    assert [a["build"]["result"] for a in r.actions() if a["build"]] == ["SUCCESS"]
    assert kube.get("deployments", "petclinic")["metadata"]["generation"] == 2


def test_a_stalled_rollout_is_a_failed_remediation(receiver, kube):
    kube.add_deployment("wordpress", progress_deadline=0)
    kube.rollout["wordpress"] = "stall"
    r = receiver().start()
    r.post(notification(alert("wordpress")))
    wait_for(r.settled, 30, "the rollout to fail")
    [action] = [a for a in r.actions() if a["build"]]
    assert action["build"]["result"] == "FAILURE"
    assert action["build"]["report"]["status"] == "failed"
    assert action["build"]["summary"] == "restart failed; deployment wordpress: progress deadline exceeded"
    metrics = requests.get(f"{r.url}/metrics", timeout=5).text
    assert (
        'stackmedic_receiver_builds_total{jenkins_job="restart",result="FAILURE",rule="restart"} 1.0'
        in metrics
    )
    assert (
        'stackmedic_receiver_kubernetes_request_duration_seconds_count{endpoint="deployment_patch"} 1.0'
        in metrics
    )


def test_the_audit_says_what_the_deployment_and_the_job_did(receiver, kube):
    """A restart's rollout and a restore Job's result line reach the audit, as a Jenkins build's
    description does: the API's report and the one-line summary the page shows."""
    r = receiver().start()
    assert r.post(notification(alert("petclinic"), restore_alert())).status_code == 200
    wait_for(r.settled, 30, "the restart and the restore to finish")
    builds = {a["rule"]: a["build"] for a in r.actions() if a["build"]}
    restart, restore = builds["restart"], builds["restore"]
    assert restart["result"] == "SUCCESS"
    assert restart["report"] == {
        "job": "restart",
        "deployment": "petclinic",
        "status": "ok",
        "generation": 2,
        "replicas": 2,
        "available_replicas": 2,
        "message": "deployment petclinic rolled out generation 2: 2/2 replicas available",
    }
    assert restart["summary"] == (
        "restart ok; deployment petclinic rolled out generation 2: 2/2 replicas available"
    )
    assert restore["result"] == "SUCCESS"
    assert restore["report"]["restored_from"] == "petclinic-1.sql.gz"
    assert restore["summary"] == "restored petclinic from petclinic-1.sql.gz"
    page = requests.get(r.url + "/", timeout=5).text
    assert restart["summary"] in page and restore["summary"] in page
