"""Replicas on the real MariaDB store: unique names, heartbeats, and one clock (issue 12)."""

from __future__ import annotations

import time

import pytest
from stackmedic.receiver.replicas import ReplicaNameTaken, StoreClock, persisted_name

from harness.services import wait_for
from tests.receiver.helpers import AUTH, actions, alert, notification, settled

pytestmark = pytest.mark.services

FAST = {
    "backoff_initial": 0.05,
    "backoff_max": 0.2,
    "max_attempts": 30,
    "heartbeat": 0.2,
    "heartbeat_timeout": 1,
}


def heartbeat(mariadb, store: dict, name: str) -> float:
    [(at,)] = mariadb.execute(f"SELECT heartbeat_at FROM {store['database']}.replicas WHERE name='{name}'")
    return float(at)


def test_a_second_replica_with_a_live_name_refuses_to_start(make_app, mysql_store):
    # issue 12 defect 2: two replicas with one name took each other's live actions
    make_app(store=mysql_store(replica="a"), dispatcher=FAST)
    with pytest.raises(ReplicaNameTaken) as refused:
        make_app(store=mysql_store(replica="a"), dispatcher=FAST)
    assert str(refused.value) == (
        "replica name 'a' is held by a live receiver (its heartbeat moves);"
        " give each replica its own store.replica, or leave it unset for a generated one"
    )


def test_a_name_whose_process_died_is_taken_after_the_heartbeat_timeout(make_app, mysql_store, mariadb):
    first = make_app(store=mysql_store(replica="a"), dispatcher=FAST)
    first.extensions["stackmedic"].replica._stop.set()  # the process dies: its heartbeat stops, no goodbye
    again = make_app(store=mysql_store(replica="a"), dispatcher=FAST)
    assert again.extensions["stackmedic"].replica.instance != first.extensions["stackmedic"].replica.instance


def test_a_clean_stop_gives_the_name_up_at_once(make_app, mysql_store, mariadb):
    store = mysql_store(replica="a")
    first = make_app(store=store, dispatcher={**FAST, "heartbeat": 5, "heartbeat_timeout": 60})
    first.extensions["stackmedic"].close()
    assert heartbeat(mariadb, store, "a") == 0
    make_app(store=store, dispatcher={**FAST, "heartbeat": 5, "heartbeat_timeout": 60})


def test_replica_name_is_generated_when_it_cannot_be_kept(tmp_path, caplog):
    # a read-only root file system (the Kubernetes Deployment's) made the receiver crash at start
    (tmp_path / "file").write_text("")
    name = persisted_name(str(tmp_path / "file" / "state"))
    assert len(name.rsplit("-", 1)[1]) == 8 and name != persisted_name(str(tmp_path / "file" / "state"))
    assert f"replica name={name} is not kept" in caplog.text


def test_replica_name_is_generated_once_and_kept(tmp_path):
    name = persisted_name(str(tmp_path))
    assert name == persisted_name(str(tmp_path)) and len(name.rsplit("-", 1)[1]) == 8
    assert persisted_name(str(tmp_path / "other")) != name


def test_actions_of_a_replica_whose_heartbeat_stopped_move_on_before_its_lease(
    make_app, mysql_store, standin
):
    # issue 12 defect 9: a crashed replica's actions waited a whole lease (61 s measured)
    standin.hang("buildWithParameters", after=True)
    dispatcher = {**FAST, "lease": 120}
    a = make_app(store=mysql_store(replica="a"), dispatcher=dispatcher)
    a.test_client().post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    wait_for(lambda: standin.posts(), 10, "replica a's POST")
    services = a.extensions["stackmedic"]
    services.replica._stop.set()  # a dies: no heartbeat, no goodbye, its lease has 2 minutes left
    services.dispatcher.stop(timeout=0.1)
    standin.release()
    b = make_app(store=mysql_store(replica="b"), dispatcher=dispatcher)
    wait_for(lambda: settled(b), 20, "replica b to finish a's action")
    [action] = actions(b)
    assert action["build"]["result"] == "SUCCESS"
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1


def test_store_clock_reads_the_servers_time_through_a_skewed_local_clock(mysql_store, make_app):
    skewed = StoreClock(local=lambda: time.time() + 90)
    app = make_app(clock=skewed, store=mysql_store(replica="a"), dispatcher=FAST)
    store = app.extensions["stackmedic"].store
    assert abs(skewed() - store.server_time()) < 1.0  # was 90 s off


@pytest.mark.parametrize("skew", [90, -90])
def test_clock_skew_between_replicas_never_takes_a_live_action(make_app, mysql_store, standin, mariadb, skew):
    # issue 12 defect 5: leases compared two replicas' wall clocks; b, 180 s ahead of a (or
    # behind), took a's live action at once, looked for it and sent it again
    standin.hang("buildWithParameters")  # a's POST waits in Jenkins, not yet queued
    dispatcher = {**FAST, "lease": 10}
    slow = {"url": standin.url, "user": standin.user, "api_token_env": "TEST_JENKINS_TOKEN", "timeout": 8}
    a_store, b_store = mysql_store(replica="a"), mysql_store(replica="b")
    a = make_app(
        clock=StoreClock(lambda: time.time() - skew), store=a_store, dispatcher=dispatcher, jenkins=slow
    )
    a.test_client().post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    wait_for(lambda: standin.posts(), 10, "replica a's POST")
    make_app(
        clock=StoreClock(lambda: time.time() + skew),
        store=b_store,
        dispatcher=dispatcher,
        jenkins={**slow, "timeout": 1, "poll_interval": 0.05},
    )
    # b's loop runs at least once a second; its grace is 1 s: give it 3 s of beats to misbehave
    first = heartbeat(mariadb, b_store, "b")
    wait_for(lambda: heartbeat(mariadb, b_store, "b") > first + 3, 10, "three seconds of b's heartbeats")
    assert [c.path for c in standin.calls] == ["/job/stackmedic-restart/buildWithParameters"]
    standin.release()
    wait_for(lambda: settled(a) and standin.finished(), 20, "a's build")
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1
    [(owner,)] = mariadb.execute(f"SELECT owner FROM {a_store['database']}.actions WHERE token IS NOT NULL")
    assert owner == "a"
