"""The MySQL store against a real MariaDB: the same semantics, shared by several replicas."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from stackmedic.receiver.config import StoreConfig
from stackmedic.receiver.store.mysql import MySQLStore

from harness.services import MariaDB, wait_for
from stackmedic.secrets import Secret
from tests.receiver.helpers import AUTH, FakeClock, actions, alert, decisions, notification, settled

pytestmark = pytest.mark.services


def test_one_build_per_incident_across_two_replicas_under_concurrent_senders(
    make_app, mysql_store, standin, serve
):
    replicas = [make_app(store=mysql_store(replica=name)) for name in ("a", "b")]
    urls = [serve(app) + "/api/v1/alerts" for app in replicas]
    body = json.dumps(notification(alert("petclinic"), alert("wordpress")))
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def sender(url: str) -> None:
        session = requests.Session()
        barrier.wait()
        for _ in range(10):
            r = session.post(url, data=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=20)
            statuses.append(r.status_code)

    threads = [threading.Thread(target=sender, args=(url,)) for url in urls * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    wait_for(lambda: settled(replicas[0]) and len(standin.finished()) == 2, 15, "two builds")
    assert sorted(b.params["SERVICE"] for b in standin.builds()) == ["petclinic", "wordpress"]
    assert len(standin.posts()) == 2
    got = decisions(replicas[1])  # one shared audit
    assert got.count("triggered") == 2 and got.count("duplicate") == 78


def test_breaker_state_is_shared_and_survives(make_app, mysql_store, standin):
    clock = FakeClock()
    breaker = {"cooldown": "5m", "max_actions": 1, "window": "1h", "max_ineffective": 0}
    a = make_app(clock=clock, store=mysql_store(replica="a"), breaker=breaker)
    a.test_client().post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    wait_for(lambda: settled(a) and standin.finished(), 10, "the build")
    clock.advance(600)
    b = make_app(clock=clock, store=mysql_store(replica="b"), breaker=breaker)
    second = notification(alert(starts_at="2026-01-01T11:00:00Z"))
    assert b.test_client().post("/api/v1/alerts", json=second, headers=AUTH).json["decisions"] == {
        "escalated": 1  # the breaker opened on it: a person is paged
    }
    [state] = a.test_client().get("/api/v1/breakers").json["breakers"]
    assert state["state"] == "open" and state["reason"] == "1 actions within 1h"
    assert (
        a.test_client()
        .post("/api/v1/breakers/restart-app:petclinic/reset", json={"author": "test"}, headers=AUTH)
        .status_code
        == 200
    )
    assert b.test_client().post("/api/v1/alerts", json=second, headers=AUTH).json["decisions"] == {
        "triggered": 1
    }
    wait_for(lambda: settled(b) and len(standin.finished()) == 2, 10, "the second build")
    assert len(standin.builds()) == 2


def test_other_replica_takes_over_an_action_whose_lease_ran_out(make_app, mysql_store, standin):
    standin.hang("buildWithParameters", after=True)
    dispatcher = {"backoff_initial": 0.05, "backoff_max": 0.2, "max_attempts": 30, "lease": 1}
    a = make_app(store=mysql_store(replica="a"), dispatcher=dispatcher)
    a.test_client().post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    wait_for(lambda: standin.posts(), 10, "replica a's POST")
    # replica a stops in the middle of its call (as if its host died): its lease runs out
    a.extensions["stackmedic"].dispatcher.stop(timeout=0.1)
    standin.release()
    b = make_app(store=mysql_store(replica="b"), dispatcher=dispatcher)
    wait_for(lambda: settled(b), 20, "replica b to finish the action")
    [action] = actions(b)
    assert action["build"]["result"] == "SUCCESS"
    assert len(standin.posts()) == 1 and len(standin.builds()) == 1


def test_store_down_answers_503_so_alertmanager_sends_again(make_app, mariadb_factory, monkeypatch, standin):
    server = mariadb_factory()
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", MariaDB.root_password)
    server.execute("CREATE DATABASE receiver")
    store = {
        "type": "mysql",
        "host": server.host,
        "port": server.port,
        "user": "root",
        "password_env": "TEST_MYSQL_PASSWORD",
        "database": "receiver",
        "replica": "a",
    }
    app = make_app(store=store)
    client = app.test_client()
    assert client.get("/-/ready").status_code == 200
    server.kill()
    resp = client.post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    assert resp.status_code == 503 and resp.json == {"error": "store unavailable; send again"}
    assert client.get("/-/ready").status_code == 503
    assert "stackmedic_receiver_store_errors_total 1.0" in client.get("/metrics").data.decode()
    server.start()
    resp = client.post("/api/v1/alerts", json=notification(alert()), headers=AUTH)
    assert resp.status_code == 200 and resp.json["decisions"] == {"triggered": 1}
    wait_for(lambda: settled(app) and standin.finished(), 10, "the build")
    assert len(standin.builds()) == 1


def one_slot_jenkins(standin, timeout: float) -> dict:
    """The Jenkins section for the stand-in with a single connection slot, polled every 50 ms."""
    return {
        "url": standin.url,
        "user": standin.user,
        "api_token_env": "TEST_JENKINS_TOKEN",
        "timeout": timeout,
        "poll_interval": 0.05,
        "max_concurrent_requests": 1,
    }


def test_replica_that_lost_an_action_while_waiting_for_a_slot_never_sends_it(make_app, mysql_store, standin):
    # issue 12 defect 1: replica a's only connection slot is held by a hanging POST; its second
    # action waits for the slot longer than its lease; replica b takes that action over and
    # sends it; when a finally gets the slot, the fence tells it the action is no longer its own
    standin.hang("/job/stackmedic-restart/")
    dispatcher = {"backoff_initial": 0.05, "backoff_max": 0.2, "max_attempts": 30, "lease": 1}
    jenkins = one_slot_jenkins(standin, timeout=4)
    a = make_app(store=mysql_store(replica="a"), dispatcher=dispatcher, jenkins=jenkins)
    body = notification(
        alert("petclinic"), alert(database="visits", remediation="restore", fingerprint="fp-db")
    )
    assert a.test_client().post("/api/v1/alerts", json=body, headers=AUTH).status_code == 200
    wait_for(
        lambda: [c.path for c in standin.calls] == ["/job/stackmedic-restart/buildWithParameters"],
        10,
        "a's hanging POST",
    )
    wait_for(lambda: all(x["build"]["state"] == "dispatching" for x in actions(a)[:2]), 10, "a to claim both")
    # a's loop stops taking work (as if stalled); its two workers carry on: one in the POST, one waiting
    a.extensions["stackmedic"].dispatcher.stop(timeout=0.1)
    b = make_app(store=mysql_store(replica="b"), dispatcher=dispatcher, jenkins={**jenkins, "timeout": 1})
    wait_for(lambda: standin.builds("stackmedic-restore"), 10, "b to send the restore a is waiting to send")
    standin.release()
    wait_for(lambda: settled(b) and len(standin.finished()) >= 2, 30, "both actions to finish")
    assert len(standin.posts("stackmedic-restore")) == 1 and len(standin.builds("stackmedic-restore")) == 1
    assert len(standin.builds("stackmedic-restart")) == 1
    restore = next(x for x in actions(b) if x["rule"] == "restore-database")
    assert restore["build"]["result"] == "SUCCESS"


def test_a_live_replica_keeps_the_lease_of_an_action_waiting_for_a_slot(
    make_app, mysql_store, standin, mariadb
):
    # found by tests/receiver/test_ha_rig.py: with a slow Jenkins, slot waits longer than the
    # lease passed each action from replica to replica (70 take-overs each), and none finished.
    # A live replica whose worker still holds the action keeps its lease.
    standin.hang("/job/stackmedic-restart/")
    dispatcher = {"backoff_initial": 0.05, "backoff_max": 0.2, "max_attempts": 30, "lease": 1}
    jenkins = one_slot_jenkins(standin, timeout=10)
    store = mysql_store(replica="a")
    a = make_app(store=store, dispatcher=dispatcher, jenkins=jenkins)
    body = notification(
        alert("petclinic"), alert(database="visits", remediation="restore", fingerprint="fp-db")
    )
    assert a.test_client().post("/api/v1/alerts", json=body, headers=AUTH).status_code == 200
    wait_for(lambda: standin.posts(), 10, "a's hanging POST")
    wait_for(lambda: all(x["build"]["state"] == "dispatching" for x in actions(a)[:2]), 10, "a to claim both")
    make_app(store=mysql_store(replica="b"), dispatcher=dispatcher, jenkins={**jenkins, "timeout": 1})

    def b_beats() -> float:
        [(at,)] = mariadb.execute(f"SELECT heartbeat_at FROM {store['database']}.replicas WHERE name='b'")
        return float(at)

    first = b_beats()
    # three leases while a's second action waits for the slot the hanging POST holds
    wait_for(lambda: b_beats() > first + 3, 10, "three seconds of b's heartbeats")
    owners = mariadb.execute(f"SELECT owner FROM {store['database']}.actions WHERE token IS NOT NULL")
    assert sorted(owners) == [("a",), ("a",)]
    standin.release()
    wait_for(lambda: settled(a) and len(standin.finished()) == 2, 30, "both actions to finish")
    assert len(standin.posts()) == 2 and len(standin.builds()) == 2


def test_frozen_store_answers_503_at_once_and_ready_fails(
    make_app, mariadb_factory, monkeypatch, serve, standin
):
    # issue 12 defect 6: with the store frozen (SIGSTOP: connections accepted, nothing answers)
    # the webhook must answer 503 within the store timeout, not hang until Alertmanager gives up
    server = mariadb_factory()
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", MariaDB.root_password)
    server.execute("CREATE DATABASE receiver")
    store = {
        "type": "mysql",
        "host": server.host,
        "port": server.port,
        "user": "root",
        "password_env": "TEST_MYSQL_PASSWORD",
        "database": "receiver",
        "replica": "a",
        "timeout": "1s",
    }
    url = serve(make_app(store=store))
    server.freeze()
    try:
        # a client that waits 10 s: the receiver's 1 s store timeout must answer first
        resp = requests.post(f"{url}/api/v1/alerts", json=notification(alert()), headers=AUTH, timeout=10)
        assert resp.status_code == 503 and resp.json() == {"error": "store unavailable; send again"}
        assert requests.get(f"{url}/-/ready", timeout=10).status_code == 503
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 200
    finally:
        server.thaw()
    resp = requests.post(f"{url}/api/v1/alerts", json=notification(alert()), headers=AUTH, timeout=10)
    assert resp.status_code == 200 and resp.json()["decisions"] == {"triggered": 1}
    wait_for(lambda: len(standin.finished()) == 1, 10, "the build")
    assert len(standin.posts()) == 1


def test_a_transaction_sends_no_begin_and_is_still_all_or_nothing(mysql_store):
    """Autocommit is off: the first statement opens the transaction, a BEGIN was a wasted round trip."""
    section = mysql_store()
    store = MySQLStore(
        StoreConfig(
            type="mysql",
            host=section["host"],
            port=section["port"],
            user="root",
            password=Secret(MariaDB.root_password),
            database=section["database"],
        )
    )
    store.create_schema()

    def half(tx):
        tx.insert_action(created_at=1.0, decision="no_rule", reason="kept?")
        raise RuntimeError("after the first write")

    with pytest.raises(RuntimeError):
        store.atomic(half)
    store.atomic(lambda tx: tx.insert_action(created_at=2.0, decision="no_rule", reason="kept"))
    assert [a.reason for a in store.atomic(lambda tx: tx.list_actions(10))] == ["kept"]
    assert store.atomic(lambda tx: tx.row("SHOW SESSION STATUS LIKE 'Com_begin'"))["Value"] == "0"
    store.close()
