"""The closed loop, end to end: a failure in the stack becomes an alert, the alert a Jenkins
build, the build a fix, and the fix a resolved alert, with every part real (conftest.py).

Each scenario asserts the exact builds the Jenkins stand-in made (job, parameters, result)
and the state the stack ends in. Waits are on conditions, with deadlines.
"""

from __future__ import annotations

import json

import pytest

from harness.services import wait_for
from tests.e2e.loop import LoopStack
from tests.e2e.petclinic import DATABASE, REQUIRED_TABLES, SERVICE, World, prepare

pytestmark = [pytest.mark.e2e, pytest.mark.services]


def tokens(loop: LoopStack) -> list[str]:
    """The action tokens of the receiver's triggered decisions, oldest first."""
    return [d["build"]["action_token"] for d in loop.decisions() if d["decision"] == "triggered"]


def resolved(loop: LoopStack, alertname: str) -> bool:
    """Gone from Prometheus and Alertmanager, and the receiver closed its incident."""
    return (
        not loop.prometheus_alerts(alertname)
        and not loop.alertmanager_alerts(alertname)
        and any(d["decision"] == "resolved" for d in loop.decisions(alertname))
    )


def told_people(loop: LoopStack, alertname: str) -> list[dict]:
    """`alertname` active in Alertmanager and routed to the people receiver."""
    return [
        a
        for a in loop.alertmanager_alerts(alertname)
        if a["status"]["state"] == "active" and [r["name"] for r in a["receivers"]] == ["people"]
    ]


def job_result(loop: LoopStack, job: str) -> dict:
    """The JSON line the job's last run printed (what the Jenkins build description shows)."""
    assert loop.jenkins
    output = loop.jenkins.jobs[job].output[-1]  # type: ignore[attr-defined]
    return json.loads(next(line for line in output.splitlines() if line.startswith("{")))


def test_a_killed_app_is_started_again_and_its_alert_resolves(world: World, loop_factory, container):
    container(world)
    loop = loop_factory(world)
    loop.wait_quiet()

    world.docker.client.containers.get(SERVICE).kill()  # docker kill petclinic

    wait_for(lambda: loop.jenkins.finished(), 60, "a build to finish")
    wait_for(world.answers, 30, "petclinic to answer again")
    wait_for(lambda: resolved(loop, "StackAppDown"), 60, "StackAppDown to resolve")
    assert loop.builds() == [
        ("stackmedic-restart", {"SERVICE": SERVICE, "STACKMEDIC_ACTION_ID": tokens(loop)[0]}, "SUCCESS")
    ]
    assert world.state() == "running"
    assert job_result(loop, "stackmedic-restart")["status"] in ("ok", "restarted")
    decided = [(d["status"], d["decision"]) for d in loop.decisions("StackAppDown")]
    assert decided[0] == ("firing", "triggered") and decided[-1] == ("resolved", "resolved")
    assert {d for d in decided[1:-1]} <= {("firing", "duplicate")}


def test_a_dropped_table_is_restored_from_the_newest_verified_backup(world: World, loop_factory, container):
    container(world)
    before = {table: world.rows(table) for table in REQUIRED_TABLES}
    assert len(before["owners"]) == 11  # Petclinic's ten and the one only the newest backup has
    loop = loop_factory(world)
    loop.wait_quiet()

    world.mariadb.execute("SET FOREIGN_KEY_CHECKS = 0", "DROP TABLE owners", db=DATABASE)

    wait_for(lambda: loop.jenkins.finished(), 90, "a build to finish")
    wait_for(
        lambda: resolved(loop, "StackDatabaseTablesMissing"), 60, "StackDatabaseTablesMissing to resolve"
    )
    performed = wait_for(
        lambda: told_people(loop, "StackRemediationPerformed"),
        60,
        "StackRemediationPerformed to reach people",
    )
    assert loop.builds() == [
        ("stackmedic-restore", {"DATABASE": DATABASE, "STACKMEDIC_ACTION_ID": tokens(loop)[0]}, "SUCCESS")
    ]
    assert {table: world.rows(table) for table in REQUIRED_TABLES} == before
    result = job_result(loop, "stackmedic-restore")
    assert (result["status"], result["restored_from"]) == ("ok", world.backup_file), result
    # only the dropped table was rebuilt; nothing was displaced, so no safety dump
    assert result["tables"] == ["owners"] and "safety_dump" not in result and result["rollback_point"]
    assert performed[0]["labels"]["severity"] == "info"
    assert performed[0]["labels"]["rule"] == "restore-database"
    # the notification and the audit name the database and the backup (the build's description)
    assert performed[0]["labels"]["target"] == DATABASE
    assert world.backup_file in performed[0]["annotations"]["description"]
    [action] = [d for d in loop.decisions() if d["build"]]
    assert action["build"]["report"] == result
    assert action["build"]["summary"].startswith(f"restored {DATABASE} from {world.backup_file} (")
    assert world.answers()


BREAKER_AFTER = 3  # builds before the breaker opens
NEVER_STICKS = {
    "restart-app": {
        "cooldown": "0s",
        "max_actions": BREAKER_AFTER,
        "window": "10m",
        "ineffective_after": "1m",
        "max_ineffective": BREAKER_AFTER,
    }
}


def test_a_fix_that_never_sticks_opens_the_breaker_pages_a_person_and_no_more_builds_are_made(
    world: World, loop_factory, container
):
    container(world, lifetime=3)
    loop = loop_factory(world, rule_breakers=NEVER_STICKS)
    loop.wait_quiet()

    world.break_for_good()  # from now on it dies 3 s after each start

    # the breaker opens on an open incident, which is escalated: StackRemediationEscalated pages
    # (and holds back StackRemediationBreakerOpen, which would say less)
    opened = wait_for(
        lambda: told_people(loop, "StackRemediationEscalated"), 120, "StackRemediationEscalated to fire"
    )
    # the incident after the opening one is refused too (Alertmanager repeats it)
    wait_for(
        lambda: sum(d["decision"] == "breaker_open" for d in loop.decisions("StackAppDown")) >= 2,
        60,
        "a second incident decided breaker_open",
    )
    build = ("stackmedic-restart", SERVICE, "SUCCESS")
    assert [(job, params["SERVICE"], result) for job, params, result in loop.builds()] == [
        build
    ] * BREAKER_AFTER
    assert [p["STACKMEDIC_ACTION_ID"] for _, p, _ in loop.builds()] == tokens(loop)
    assert opened[0]["labels"]["target"] == SERVICE
    assert opened[0]["labels"]["severity"] == "critical"
    assert loop.prometheus_alerts("StackAppDown", "firing")
    assert world.state() == "exited"
    assert loop.jenkins and len(loop.jenkins.posts()) == BREAKER_AFTER


def test_a_stopped_database_server_is_never_restored(
    mariadb_factory, docker_engine, tmp_path, loop_factory, container
):
    server = mariadb_factory()  # its own server: this one is stopped
    world = prepare(server, docker_engine, tmp_path / "world")
    container(world)
    loop = loop_factory(world)
    loop.wait_quiet()
    assert loop.prometheus

    server.stop()

    told = wait_for(lambda: told_people(loop, "StackDatabaseDown"), 30, "StackDatabaseDown to fire")
    # the tables now look missing to the exporter: only the rules keep the restore away
    wait_for(
        lambda: loop.prometheus.query(f'max(stackmedic_mysql_table_present{{database="{DATABASE}"}}) == 0'),
        10,
        "the tables to look missing",
    )
    # well past every for: (2 s for StackDatabaseTablesMissing here, 10 s as shipped): ten
    # scrapes in a row with the server down
    down_samples = "count_over_time(stackmedic_mysql_up[1m]) - sum_over_time(stackmedic_mysql_up[1m]) >= 10"
    wait_for(lambda: loop.prometheus.query(down_samples), 60, "ten samples with the server down")
    assert loop.builds() == []
    assert loop.jenkins and loop.jenkins.posts() == []
    assert loop.decisions() == []  # the receiver was never asked
    assert loop.never_seen("StackDatabaseTablesMissing")
    assert loop.never_seen("StackAppDown")
    assert told[0]["labels"]["server"] == "stack"
    assert world.answers()  # the app itself was never touched
