"""Restore through a scratch schema and one atomic RENAME: only what is broken, never half, undoable.

Against the real MariaDB (binary logs on) with exactly the documented grants. Kill tests
run `stackmedic-job` as its own process with one function wrapped to stop at the moment
under test (tests/jobs/pausing_job.py), and SIGKILL its whole process group there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from stackmedic.jobs import errors
from stackmedic.jobs import manifest as mf
from stackmedic.jobs.backup import run_backup
from stackmedic.jobs.catalog import SAFETY_DIR
from stackmedic.jobs.schemas import PREFIX

from harness.services import wait_for
from tests.jobs.conftest import REPO, JobStack

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def one_json(result) -> dict:
    lines = [line for line in result.out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.out
    return json.loads(lines[0])


def owned_schemas(stack: JobStack) -> list[tuple[str, str]]:
    rows = stack.mariadb.execute(
        "SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA"
        f" WHERE SCHEMA_NAME LIKE '{PREFIX.replace('_', chr(92) + '_')}%'"
    )
    return [(name, json.loads(comment)["kind"]) for name, comment in rows if stack.db in comment]


@pytest.fixture(autouse=True)
def _drop_owned_schemas(stack: JobStack):
    yield
    for name, _kind in owned_schemas(stack):
        stack.mariadb.execute("SET FOREIGN_KEY_CHECKS = 0", f"DROP DATABASE IF EXISTS `{name}`")


def exporter_sees(stack: JobStack) -> dict[str, tuple[float, float]]:
    """(table_present, table_has_rows) per required table, as stackmedic-exporter's MySQL check reports them."""
    from stackmedic.exporter.checks.mysql_check import MysqlCheck, MysqlServer

    from tests.exporter.helpers import scrape

    server = MysqlServer(
        name="stack",
        user="root",
        password=stack.mariadb.root_password,
        host=stack.mariadb.host,
        port=stack.mariadb.port,
        tables={stack.db: list(stack.required)},
    )
    reg = scrape([MysqlCheck(server)])
    labels = {"server": "stack", "database": stack.db}
    return {
        t: tuple(
            reg.get_sample_value(f"stackmedic_mysql_{m}", {**labels, "table": t})
            for m in ("table_present", "table_has_rows")
        )
        for t in stack.required
    }


def rows(stack: JobStack, sql: str) -> list[tuple]:
    return stack.mariadb.execute(sql, db=stack.db)


def test_only_the_dropped_table_comes_back_and_other_tables_keep_newer_rows(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute(
        "INSERT INTO visits (pet_id, visit_date, description) VALUES (1, '2026-11-25', 'newer visit')",
        "UPDATE vets SET last_name = 'Newer' WHERE id = 1",
    )
    kept = stack.snapshot()
    stack.execute("DROP TABLE owners")

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert report["status"] == "ok" and report["restored_from"] == backup.name
    assert report["tables"] == ["owners"] and report["exit_code"] == 0
    assert report["rollback_point"].startswith(PREFIX + "rb_")
    assert "safety_dump" not in report  # nothing was displaced: owners was gone
    assert stack.snapshot() == kept  # owners back, visits and vets with their newer rows
    # pets' foreign key points at the live owners again, not into a restore schema
    fk = rows(
        stack,
        "SELECT UNIQUE_CONSTRAINT_SCHEMA FROM information_schema.REFERENTIAL_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = 'owners'",
    )
    assert fk == [(stack.db,)]


def test_an_emptied_table_is_replaced_and_the_rollback_command_undoes_it(stack: JobStack):
    run_backup(stack.config, stack.database, now=lambda: T0)
    expected = stack.snapshot()
    stack.execute("DELETE FROM visits")
    emptied = stack.snapshot()

    result = stack.run("restore", "--database", stack.db)
    report = one_json(result)
    assert result.rc == errors.OK, result.err
    assert report["tables"] == ["visits"] and report["safety_dump"].startswith(f"{SAFETY_DIR}/")
    assert stack.snapshot() == expected
    # the trigger of visits came through the swap
    assert stack.snapshot()["triggers"] == ["visits_default_description"]

    back = stack.run("rollback", "--database", stack.db)
    assert back.rc == errors.OK, back.err
    undone = one_json(back)
    assert undone["command"] == "rollback" and undone["restored_from"] == report["rollback_point"]
    assert stack.snapshot() == emptied
    # and the rollback is itself a rollback point: the restore can be had again
    again = stack.run("rollback", "--database", stack.db, "--point", undone["rollback_point"])
    assert again.rc == errors.OK, again.err
    assert stack.snapshot() == expected


def test_no_rollback_point_refuses_with_status_4(stack: JobStack):
    result = stack.run("rollback", "--database", stack.db)
    assert result.rc == errors.NO_VALID_BACKUP
    assert one_json(result)["error"] == f"no rollback point of {stack.db} at all"


def test_nothing_broken_means_nothing_restored(stack: JobStack):
    run_backup(stack.config, stack.database, now=lambda: T0)
    before = stack.snapshot()
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK
    report = one_json(result)
    assert report == {"status": "nothing-to-do", "command": "restore", "database": stack.db, "exit_code": 0}
    assert stack.snapshot() == before


def test_a_backup_lacking_the_missing_table_is_never_picked(stack: JobStack):
    good = run_backup(stack.config, stack.database, now=lambda: T0)
    expected = stack.snapshot()
    stack.execute("DROP TABLE specialties")
    lacking = run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=2))
    result = stack.run("restore", "--database", stack.db)
    report = one_json(result)
    assert result.rc == errors.OK, result.err
    assert report["restored_from"] == good.name
    assert report["skipped"] == [{"file": lacking.name, "reason": "lacks table specialties"}]
    assert stack.snapshot() == expected


@pytest.mark.parametrize("missing", ["CREATE", "INSERT"])
def test_a_restore_account_missing_a_grant_destroys_nothing(stack: JobStack, missing: str):
    run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute("DELETE FROM visits")
    before = stack.snapshot()
    user = f"smr_{stack.db.removeprefix('pc_')}"
    for host in ("127.0.0.1", "localhost"):
        stack.mariadb.execute(f"REVOKE {missing} ON `{stack.db}`.* FROM '{user}'@'{host}'")

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.FAILED
    report = one_json(result)
    assert report["status"] == "failed" and "restored_from" not in report and report["exit_code"] == 1
    assert report["error"].startswith("the server refused the swap, nothing was replaced: ")
    assert f"{missing} command denied to user '{user}'" in report["error"]
    assert stack.snapshot() == before
    assert [kind for _name, kind in owned_schemas(stack)] == []  # scratch and rollback point gone


def test_writes_during_the_restore_make_it_refuse_to_swap(stack: JobStack, monkeypatch):
    from stackmedic.jobs import restore

    run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute("DELETE FROM visits WHERE id > 10")
    stack.execute("DELETE FROM owners")
    real_load = restore.load_file

    def load_while_the_app_writes(*args, **kwargs):
        real_load(*args, **kwargs)
        stack.execute("INSERT INTO owners (first_name, last_name) VALUES ('Written', 'During')")

    monkeypatch.setattr(restore, "load_file", load_while_the_app_writes)
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.FAILED
    message = (
        f"tables of {stack.db} were written during the restore, nothing was replaced:"
        " stop the application's writes, or restore only the broken tables"
    )
    assert one_json(result)["error"] == message
    assert rows(stack, "SELECT first_name FROM owners") == [("Written",)]  # the write is kept


def test_restore_file_takes_a_chosen_backup_or_a_safety_dump(stack: JobStack):
    older = run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute("DELETE FROM owners WHERE id > 100")
    at_older = stack.snapshot()
    run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=1))
    stack.execute("DELETE FROM visits")

    first = stack.run("restore", "--database", stack.db, "--file", older.name, "--whole")
    assert first.rc == errors.OK, first.err
    safety = one_json(first)["safety_dump"]
    assert stack.snapshot()["owners"] == at_older["owners"] or stack.snapshot()["owners"][0] == 2000

    second = stack.run("restore", "--database", stack.db, "--file", safety, "--tables", "visits")
    assert second.rc == errors.OK, second.err
    assert one_json(second)["restored_from"] == safety.removeprefix(f"{SAFETY_DIR}/")
    assert stack.snapshot()["visits"][0] == 0  # the safety dump held the emptied visits

    bad = stack.run("restore", "--database", stack.db, "--file", "../../etc/passwd")
    assert bad.rc == errors.USAGE
    assert (
        one_json(bad)["error"] == f"no complete backup or safety dump named '../../etc/passwd' for {stack.db}"
    )


def test_safety_dumps_in_the_same_second_and_with_a_broken_view(stack: JobStack):
    run_backup(stack.config, stack.database, now=lambda: T0)
    # owner_pet_counts refers to owners: with owners emptied and a view referring to a
    # dropped table, the safety dump must still work (only base tables are named)
    stack.execute(
        "CREATE VIEW broken AS SELECT id FROM specialties", "DROP TABLE specialties", "DELETE FROM vets"
    )
    config = stack.config
    from stackmedic.jobs.safety import safety_dump

    first = safety_dump(config, stack.database, ["vets"], lambda: T0)
    second = safety_dump(config, stack.database, ["vets"], lambda: T0)
    assert first != second
    assert {first, second} == {
        f"{SAFETY_DIR}/{stack.db}-20261124T093000Z.sql.gz",
        f"{SAFETY_DIR}/{stack.db}-20261124T093001Z.sql.gz",
    }
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    assert one_json(result)["tables"] == ["specialties", "vets"]


# -- kills -------------------------------------------------------------------------------

PAUSER = """
import os, sys, time, pathlib
marker, where = pathlib.Path(sys.argv[1]), sys.argv[2]
def pause():
    marker.write_text(where)
    time.sleep(600)
from stackmedic.jobs import load, restore, swap
if where == "load":
    real_feed = load._feed
    def feed(path, stdin, *a, **kw):
        class Half:
            written = 0
            def write(self, data):
                stdin.write(data)
                stdin.flush()
                self.written += len(data)
                if self.written > 200_000:
                    pause()
            def close(self):
                stdin.close()
        return real_feed(path, Half(), *a, **kw)
    load._feed = feed
elif where == "replay":
    real = restore._replay
    def replay(*a, **kw):
        pause()
    restore._replay = replay
elif where == "before-swap":
    real_swap = swap.swap
    swap.swap = lambda cursor, plan, before_rename=None: real_swap(cursor, plan, before_rename=pause)
elif where == "after-rename":
    swap.complete = lambda cursor, plan: pause()
from stackmedic.jobs.cli import main
sys.exit(main(sys.argv[3:]))
"""


def kill_at(stack: JobStack, tmp_path, where: str, *args: str) -> None:
    marker = tmp_path / f"at-{where}"
    env = {**os.environ, **stack.env}
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSER, str(marker), where, "--config.file", str(stack.config_path), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / f"{where}.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        wait_for(marker.exists, 120, f"the restore to reach {where}", interval=0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("where", ["load", "replay", "before-swap"])
def test_a_restore_killed_before_the_swap_leaves_the_live_database_as_it_was(
    stack: JobStack, tmp_path, where
):
    run_backup(stack.config, stack.database, now=lambda: T0)
    expected = stack.snapshot()
    stack.execute("DELETE FROM visits")
    damaged = stack.snapshot()

    kill_at(stack, tmp_path, where, "restore", "--database", stack.db)
    assert stack.snapshot() == damaged
    assert exporter_sees(stack)["visits"] == (1, 0)  # still broken, so the alert keeps firing
    # the next run cleans up what the killed one left, then restores
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    assert stack.snapshot() == expected
    assert set(exporter_sees(stack).values()) == {(1, 1)}
    assert [kind for _name, kind in owned_schemas(stack)] == ["rb"]


def test_a_restore_killed_right_after_the_rename_is_finished_by_the_next_run(stack: JobStack, tmp_path):
    run_backup(stack.config, stack.database, now=lambda: T0)
    expected = stack.snapshot()
    stack.execute("DELETE FROM visits")

    kill_at(stack, tmp_path, "after-rename", "restore", "--database", stack.db)
    half = stack.snapshot()
    assert half["visits"] == expected["visits"]  # the rows are swapped in...
    on = rows(
        stack, "SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
    )
    assert on != [("visits",)]  # ...but the trigger is not on them yet: the old table still has it

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    assert one_json(result)["status"] == "nothing-to-do"
    assert stack.snapshot() == expected
    assert "interrupted swap found" in result.err


def _with_binlog_accounts(stack: JobStack) -> None:
    """The binlog reader account of jobs/grants.py in the configuration (the restore account is unchanged)."""
    from stackmedic.jobs.grants import binlog_grants

    suffix = stack.db.removeprefix("pc_")
    stack.mariadb.create_user(f"sml_{suffix}", "binlog pw", binlog_grants())
    os.environ[f"BINLOG_PW_{suffix}"] = "binlog pw"
    data = yaml.safe_load(stack.config_path.read_text())
    data["databases"][stack.db]["binlog_user"] = {
        "user": f"sml_{suffix}",
        "password_env": f"BINLOG_PW_{suffix}",
    }
    stack.config_path.write_text(yaml.safe_dump(data))


def _after_the_backup(stack: JobStack) -> None:
    stack.execute(
        "INSERT INTO owners (first_name, last_name) SELECT CONCAT('New', seq), 'Owner' FROM seq_1_to_300",
        "INSERT INTO visits (pet_id, visit_date, description) SELECT 1, '2026-11-25', 'new' FROM seq_1_to_290",
        "CREATE TABLE invoices (id INT PRIMARY KEY, owner_id INT UNSIGNED)",
        "INSERT INTO invoices VALUES (1, 2001), (2, 2002)",
        "UPDATE owners SET city = 'Monona' WHERE id <= 50",
    )


def test_point_in_time_recovery_loses_no_row_of_the_dropped_table(stack: JobStack):
    _with_binlog_accounts(stack)
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    assert backup.manifest.binlog and backup.manifest.binlog.file.startswith("binlog.")
    assert mf.read(backup.manifest_path).binlog == backup.manifest.binlog
    _after_the_backup(stack)
    expected = stack.snapshot()
    stack.execute("DROP TABLE owners")

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert report["tables"] == ["owners"] and "lost_window" not in report
    assert report["replayed_events"] == 2  # the INSERT of 300 owners and the UPDATE
    assert stack.snapshot() == expected  # 0 rows lost, in owners and everywhere else


def test_without_binary_log_replay_the_lost_window_is_named(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    _after_the_backup(stack)
    stack.execute("DROP TABLE owners")
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    window = report["lost_window"]
    assert window["from"] == mf.iso(backup.manifest.created)
    assert window["reason"] == (
        f"cannot list binary logs as smr_{stack.db.removeprefix('pc_')}: Access denied; you need (at least one of)"
        " the SUPER, BINLOG MONITOR privilege(s) for this operation"
    )
    assert rows(stack, "SELECT COUNT(*) FROM owners") == [(2000,)]  # the backup's rows only


def test_replayed_rows_keep_every_odd_value_exactly(stack: JobStack):
    _with_binlog_accounts(stack)
    stack.execute(
        "CREATE TABLE odd (id INT UNSIGNED PRIMARY KEY, s VARCHAR(50), b VARBINARY(10), ts TIMESTAMP(3) NULL,"
        " dt DATETIME, d DECIMAL(10,2), f DOUBLE, e ENUM('a','b'), bi BIT(4), j TEXT, u BIGINT UNSIGNED,"
        " g INT AS (id MOD 7) VIRTUAL) CHARSET utf8mb4",
        "INSERT INTO odd (id, s) VALUES (0, 'zero id')",
    )
    run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute(
        "SET time_zone = '+05:00'",
        "INSERT INTO odd (id, s, b, ts, dt, d, f, e, bi, j, u) VALUES (4294967295,"
        " 'it''s \\\\ a \"q\" é 🐹\\nnl\\ttab', x'00ff275c', '2026-01-01 10:00:00.123',"
        " '2026-01-02 03:04:05', -12.34, 0.1, 'b', b'0101', NULL, 18446744073709551615)",
        "INSERT INTO odd (id, s, f) VALUES (5, 'five', 1e300), (6, NULL, -0.5)",
        "UPDATE odd SET s = 'changed', d = 1.5 WHERE id = 5",
        "DELETE FROM odd WHERE id = 6",
        "UPDATE odd SET id = 7 WHERE id = 0",
    )
    expected = stack.snapshot()
    stack.execute("DROP TABLE odd")

    result = stack.run("restore", "--database", stack.db, "--tables", "odd")
    assert result.rc == errors.OK, result.err
    assert one_json(result)["replayed_events"] == 5
    assert stack.snapshot() == expected


def test_until_stops_the_replay_at_the_given_time(stack: JobStack):
    _with_binlog_accounts(stack)
    run_backup(stack.config, stack.database, now=lambda: T0)
    now = int(datetime.now(UTC).timestamp())
    # binary log events carry the statement's TIMESTAMP: no waiting for the clock
    stack.execute(
        f"SET TIMESTAMP = {now + 100}",
        "INSERT INTO specialties (name) VALUES ('before the mistake')",
        f"SET TIMESTAMP = {now + 200}",
        "INSERT INTO specialties (name) VALUES ('after the mistake')",
    )
    until = datetime.fromtimestamp(now + 150, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = stack.run("restore", "--database", stack.db, "--tables", "specialties", "--until", until)
    assert result.rc == errors.OK, result.err
    assert one_json(result)["replayed_events"] == 1
    names = [r[0] for r in rows(stack, "SELECT name FROM specialties")]
    assert "before the mistake" in names and "after the mistake" not in names

    bad = stack.run("restore", "--database", stack.db, "--until", "yesterday")
    assert bad.rc == errors.USAGE
    assert "invalid time 'yesterday': give UTC as 2026-11-24T09:30:00Z" in bad.err
    assert one_json(bad) == {
        "status": "refused",
        "command": "restore",
        "error": "invalid arguments",
        "exit_code": 2,
    }


def test_a_dropped_database_comes_back_with_everything_done_after_the_backup(stack: JobStack):
    _with_binlog_accounts(stack)
    run_backup(stack.config, stack.database, now=lambda: T0)
    _after_the_backup(stack)  # new rows, a new table, updates
    stack.execute(
        "CREATE TRIGGER invoices_positive BEFORE INSERT ON invoices FOR EACH ROW SET NEW.id = ABS(NEW.id)",
        "GRANT SELECT ON *.* TO CURRENT_USER",  # not the database's: never replayed
        "INSERT INTO invoices VALUES (-3, 2003)",
    )
    expected = stack.snapshot()
    stack.mariadb.execute(f"DROP DATABASE `{stack.db}`")

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert "lost_window" not in report and report["replayed_events"] == 7  # the GRANT is not replayed
    assert stack.snapshot() == expected
