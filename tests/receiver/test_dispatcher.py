"""The dispatcher against a Jenkins that fails, refuses, hangs, wants crumbs and forgets queue items."""

from __future__ import annotations

import pytest
import requests
from stackmedic.receiver.actuators.jenkins import (
    JenkinsClient,
    JenkinsRejected,
    JenkinsUnavailable,
    JenkinsUncertain,
)

from harness.jenkins_standin import JenkinsStandIn
from harness.services import wait_for
from tests.receiver.helpers import AUTH, actions, alert, notification, settled


def post(app, body):
    resp = app.test_client().post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.data
    return resp


def metric(app, line_start: str) -> float:
    for line in app.test_client().get("/metrics").data.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {line_start}")


def test_jenkins_503_for_a_while_then_back_gives_exactly_one_build(make_app, standin):
    standin.fail(503, match="buildWithParameters")
    app = make_app()
    post(app, notification(alert()))
    wait_for(lambda: len(standin.posts()) >= 3, 10, "three refused attempts")
    standin.fail(None)
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    statuses = [c.status for c in standin.posts()]
    assert statuses[-1] == 201 and set(statuses[:-1]) == {503} and len(statuses) >= 4
    assert len(standin.builds()) == 1
    [action] = actions(app)
    assert action["decision"] == "triggered" and action["build"]["result"] == "SUCCESS"
    assert action["build"]["attempts"] == len(statuses)


def test_jenkins_refusing_connections_then_back_gives_exactly_one_build(make_app, standin):
    standin.refuse()
    app = make_app()
    post(app, notification(alert()))
    wait_for(lambda: (actions(app)[0]["build"]["attempts"] or 0) >= 3, 10, "three attempts")
    assert "cannot connect" in actions(app)[0]["build"]["error"]
    standin.accept()
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    assert [c.status for c in standin.posts()] == [201]
    assert len(standin.builds()) == 1


def test_post_that_times_out_after_queuing_is_found_by_its_token_not_sent_again(make_app, standin):
    # Jenkins queues the build but the answer never comes: the receiver must not POST again
    standin.hang("buildWithParameters", after=True)
    app = make_app()
    post(app, notification(alert()))
    wait_for(lambda: standin.builds(), 10, "the build Jenkins started")
    wait_for(lambda: settled(app), 15, "the action to settle")
    standin.release()
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1
    [action] = actions(app)
    assert action["build"]["result"] == "SUCCESS" and action["build"]["number"] == 1
    # the last problem stays in the audit: the POST that got no answer
    assert action["build"]["error"] == "build: no answer within 1s"
    assert action["build"]["attempts"] == 1


def test_gives_up_after_max_attempts_and_records_failed(make_app, standin):
    standin.fail(503, match="buildWithParameters")
    app = make_app(dispatcher={"backoff_initial": 0.01, "backoff_max": 0.02, "max_attempts": 3})
    post(app, notification(alert()))
    wait_for(lambda: settled(app), 10, "the action to fail")
    [action] = actions(app)
    assert action["decision"] == "failed"
    assert action["build"]["state"] == "failed" and action["build"]["result"] == "ERROR"
    assert action["build"]["error"] == "build: HTTP 503 (after 3 attempts)"
    assert [c.status for c in standin.posts()] == [503, 503, 503]
    assert metric(app, 'stackmedic_receiver_decisions_total{outcome="failed"}') == 1
    assert (
        metric(
            app,
            'stackmedic_receiver_builds_total{jenkins_job="stackmedic-restart",result="ERROR",rule="restart-app"}',
        )
        == 1
    )


def test_unknown_job_fails_at_once(make_app, standin):
    standin.jobs.pop("stackmedic-restart")
    app = make_app()
    post(app, notification(alert()))
    wait_for(lambda: settled(app), 10, "the action to fail")
    [action] = actions(app)
    assert action["decision"] == "failed" and action["build"]["error"].startswith("build: HTTP 404")
    assert len(standin.posts()) == 1


def test_password_auth_uses_a_crumb_with_its_session_cookie(make_app, standin):
    jenkins = {
        "url": standin.url,
        "user": standin.user,
        "password_env": "TEST_JENKINS_PASSWORD",
        "timeout": 1,
        "poll_interval": 0.02,
    }
    app = make_app(jenkins=jenkins)
    post(app, notification(alert()))
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    [post_call] = standin.posts()
    assert post_call.auth == "password" and post_call.status == 201
    assert [c.path for c in standin.calls][:2] == [
        "/crumbIssuer/api/json",
        "/job/stackmedic-restart/buildWithParameters",
    ]


def test_crumb_is_fetched_again_when_its_session_expired(standin):
    client = JenkinsClient(standin.url, standin.user, password=standin.password, timeout=2)
    first = client.trigger("stackmedic-restart", {"SERVICE": "petclinic"}, "a")
    standin.expire_sessions()
    second = client.trigger("stackmedic-restart", {"SERVICE": "wordpress"}, "b")
    assert second.queue_id == first.queue_id + 1
    assert [c.status for c in standin.posts()] == [201, 403, 201]
    assert [c.path for c in standin.calls].count("/crumbIssuer/api/json") == 2


def test_crumb_without_its_session_cookie_is_refused(standin):
    session = requests.Session()
    session.auth = (standin.user, standin.password)
    crumb = session.get(f"{standin.url}/crumbIssuer/api/json", timeout=5).json()
    url = f"{standin.url}/job/stackmedic-restart/buildWithParameters"
    header = {crumb["crumbRequestField"]: crumb["crumb"]}
    bare = requests.post(url, auth=session.auth, headers=header, data={"SERVICE": "x"}, timeout=5)
    assert bare.status_code == 403
    assert (
        session.post(url, headers=header, data={"SERVICE": "x"}, timeout=5, allow_redirects=False).status_code
        == 201
    )


def test_identical_request_while_queued_is_merged_with_303(standin):
    standin.hold_queue()
    client = JenkinsClient(standin.url, standin.user, api_token=standin.token, timeout=2)
    params = {"SERVICE": "petclinic"}
    first = client.trigger("stackmedic-restart", params, "same")
    again = client.trigger("stackmedic-restart", params, "same")
    assert (first.merged, again.merged, again.queue_id) == (False, True, first.queue_id)
    standin.hold_queue(False)
    wait_for(lambda: standin.finished(), 10, "the build")
    assert len(standin.builds()) == 1


def test_client_errors_say_whether_the_request_may_have_happened(standin):
    client = JenkinsClient(standin.url, standin.user, api_token=standin.token, timeout=0.3)
    standin.fail(503, count=1)
    with pytest.raises(JenkinsUnavailable) as failed:
        client.trigger("stackmedic-restart", {}, "t")
    assert not isinstance(failed.value, JenkinsUncertain)
    standin.hang("buildWithParameters")
    with pytest.raises(JenkinsUncertain) as uncertain:
        client.trigger("stackmedic-restart", {}, "t")
    # "may have happened" must never be caught as "surely did not happen"
    assert not isinstance(uncertain.value, JenkinsUnavailable)
    standin.release()
    bad = JenkinsClient(standin.url, standin.user, api_token="wrong", timeout=2)
    with pytest.raises(JenkinsRejected) as rejected:
        bad.trigger("stackmedic-restart", {}, "t")
    assert rejected.value.status == 401
    standin.refuse()
    with pytest.raises(JenkinsUnavailable) as refused:
        client.trigger("stackmedic-restart", {}, "t")
    assert not isinstance(refused.value, JenkinsUncertain)


def test_forgotten_queue_item_is_followed_through_the_builds(standin):
    standin.forget_after = 0.0
    client = JenkinsClient(standin.url, standin.user, api_token=standin.token, timeout=2)
    ref = client.trigger("stackmedic-restart", {"SERVICE": "petclinic"}, "tok")
    wait_for(lambda: standin.finished(), 10, "the build")
    wait_for(lambda: client.queue_item(ref.queue_id) is None, 5, "the left item to be forgotten")
    found = client.find("stackmedic-restart", "tok")
    assert found is not None and (found.number, found.result) == (1, "SUCCESS")
    assert client.follow("stackmedic-restart", ref, "tok") == found
    assert client.find("stackmedic-restart", "other") is None


def test_builds_are_followed_while_running(make_app, standin):
    standin.build_duration = 0.5
    app = make_app()
    post(app, notification(alert()))
    wait_for(lambda: actions(app)[0]["build"]["state"] == "building", 10, "the build to start")
    assert actions(app)[0]["build"]["result"] is None
    wait_for(lambda: settled(app), 10, "the build to finish")
    assert actions(app)[0]["build"]["result"] == "SUCCESS"


def test_failed_build_result_is_recorded(make_app, standin):
    standin.jobs["stackmedic-restart"] = lambda params: "FAILURE"
    app = make_app()
    post(app, notification(alert()))
    wait_for(lambda: settled(app), 10, "the build")
    assert actions(app)[0]["build"]["result"] == "FAILURE"
    assert (
        metric(
            app,
            'stackmedic_receiver_builds_total{jenkins_job="stackmedic-restart",result="FAILURE",rule="restart-app"}',
        )
        == 1
    )


def test_stand_in_runs_a_real_command(tmp_path):
    from harness.jenkins_standin import command_runner

    marker = tmp_path / "ran"
    jenkins = JenkinsStandIn(
        jobs={"touch": command_runner(["sh", "-c", 'echo "$SERVICE" > "$0"', str(marker)])}
    )
    jenkins.start()
    try:
        client = JenkinsClient(jenkins.url, jenkins.user, api_token=jenkins.token, timeout=2)
        client.trigger("touch", {"SERVICE": "petclinic"}, "t")
        wait_for(lambda: jenkins.finished(), 10, "the build")
        assert marker.read_text() == "petclinic\n"
        assert jenkins.builds()[0].result == "SUCCESS"
    finally:
        jenkins.stop()


def test_lookup_that_cannot_answer_is_never_taken_as_absent(make_app, standin):
    # issue 12 defect 3: the POST gets no answer, then Jenkins answers the lookups with 404
    # (a proxy, a permission): "cannot tell" must not become "absent" and a second POST
    standin.hang("buildWithParameters")
    standin.fail(404, match="/api/json")
    app = make_app(dispatcher={"backoff_initial": 0.01, "backoff_max": 0.02, "max_attempts": 3, "lease": 5})
    post(app, notification(alert()))
    wait_for(lambda: settled(app), 15, "the action to end")
    [action] = actions(app)
    assert action["build"]["state"] == "lost" and action["build"]["result"] == "LOST"
    assert action["build"]["error"] == (
        "cannot tell whether the build was requested: job_builds: HTTP 404 (after 3 attempts);"
        " a build may exist: look in Jenkins"
    )
    standin.fail(None)
    standin.release()  # the first POST arrives after all
    wait_for(lambda: standin.finished(), 10, "the build")
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1
    assert (
        metric(
            app,
            'stackmedic_receiver_builds_total{jenkins_job="stackmedic-restart",result="LOST",rule="restart-app"}',
        )
        == 1
    )
