"""The Kubernetes API stand-in with the objects deploy/kubernetes makes: two app Deployments and
the suspended restore CronJob (its jobTemplate taken from the rendered base, so the actuator is
tested with what ships)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kube_standin import KubeStandIn
from tests.receiver.conftest import serve  # noqa: F401 - the receiver tests' fixture, used here too

RESULT_OK = {
    "status": "ok",
    "command": "restore",
    "database": "petclinic",
    "restored_from": "petclinic-1.sql.gz",
}


def shipped_restore_template() -> dict:
    from tests.deploy_kubernetes.render import find, overlay

    return find(overlay("openshift"), "CronJob", "stackmedic-restore")["spec"]["jobTemplate"]


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    def runner(job: dict) -> tuple[int, str]:
        env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        line = {**RESULT_OK, "database": env["STACKMEDIC_DATABASE"]}
        return 0, "progress on stderr\n" + json.dumps(line) + "\n"

    standin = KubeStandIn(job_runner=runner).start()
    standin.add_deployment("petclinic")
    standin.add_deployment("wordpress")
    standin.add_cronjob("stackmedic-restore", shipped_restore_template())
    yield standin
    standin.stop()


@pytest.fixture
def token_file(tmp_path: Path, kube: KubeStandIn) -> Path:
    path = tmp_path / "sa-token"
    path.write_text(kube.token + "\n")
    return path
