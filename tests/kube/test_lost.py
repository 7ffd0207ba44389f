"""An action the receiver cannot account for through Kubernetes: lost, and the audit says where to look."""

from __future__ import annotations

import time

from stackmedic.receiver.app import create_app

from harness.services import wait_for
from tests.kube.test_receiver import kube_config, restore_alert
from tests.receiver.helpers import AUTH, TOKEN, actions, notification, settled


def test_a_restore_job_that_cannot_be_accounted_for_is_lost_with_kubernetes_advice(
    kube, token_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_RECEIVER_TOKEN", TOKEN)
    kube.hang("POST /apis/batch", after=True)  # the Job is created, the 201 never comes
    kube.fail(500, f"GET /apis/batch/v1/namespaces/{kube.namespace}/jobs/")  # the lookups cannot tell
    config = kube_config(
        tmp_path / "receiver.sqlite",
        kube,
        token_file,
        dispatcher={"backoff_initial": 0.01, "backoff_max": 0.02, "max_attempts": 3, "lease": 5},
    )
    app = create_app(config, clock=time.time)
    try:
        assert (
            app.test_client()
            .post("/api/v1/alerts", json=notification(restore_alert()), headers=AUTH)
            .status_code
            == 200
        )
        wait_for(lambda: settled(app), 20, "the action to end")
        [action] = actions(app)
        assert action["build"]["state"] == "lost" and action["build"]["result"] == "LOST"
        error = action["build"]["error"]
        assert error.endswith(
            "(after 3 attempts); a restart or a restore Job may exist: look at the namespace's Deployments and Jobs"
        ), error
        assert "Jenkins" not in error
    finally:
        kube.fail(None)
        kube.release()
        app.extensions["stackmedic"].close()
