"""A backup is trusted only when it deserves it, and verify cannot touch a live database.

Issue 10 defects 4 (a backup dated 400 days ahead wins), 6 (empty required_tables), 7 (10 of
6,000 visits accepted; a dump of another database filed under this one) and 14 (verify loads
with an account that owns the live database: a tampered backup dropped a live table).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pymysql
import pytest
from stackmedic.jobs import errors
from stackmedic.jobs import manifest as mf
from stackmedic.jobs.backup import run_backup
from stackmedic.jobs.catalog import Backup
from stackmedic.jobs.known_good import restore_candidates
from stackmedic.jobs.scratch import verify_scratch_name

from tests.jobs.conftest import JobStack

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def one_json(result) -> dict:
    lines = [line for line in result.out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.out
    return json.loads(lines[0])


def rewrite_dump(backup: Backup, change) -> None:
    """Change the SQL inside a backup and make its manifest agree (as a tamperer would)."""
    text = gzip.decompress(backup.path.read_bytes()).decode("utf-8")
    data = gzip.compress(change(text).encode("utf-8"))
    backup.path.write_bytes(data)
    mf.write(
        backup.manifest_path,
        dataclasses.replace(backup.manifest, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
    )


def test_a_backup_dated_in_the_future_is_ignored_and_reported(stack: JobStack):
    now = datetime.now(UTC).replace(microsecond=0)
    good = run_backup(stack.config, stack.database, now=lambda: now - timedelta(hours=1))
    ahead = now + timedelta(days=400, minutes=30)
    future = run_backup(stack.config, stack.database, now=lambda: ahead)
    reason = f"dated 400d 0h in the future ({mf.iso(ahead)}), beyond the allowed clock skew of 5m 0s: ignored"

    result = stack.run("verify", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert report["backups"] == [{"file": good.name, "status": "ok", "reason": ""}]
    assert report["future_dated"] == [{"file": future.name, "reason": reason}]
    assert mf.read(future.manifest_path).verified is None

    named = stack.run("verify", "--database", stack.db, "--file", future.name)
    assert named.rc == errors.NO_VALID_BACKUP
    assert named.err.strip().endswith(f"stackmedic-job verify: {future.name} is {reason}")

    stack.execute("DROP TABLE owners")
    restore = stack.run("restore", "--database", stack.db, "--dry-run")
    assert restore.rc == errors.OK, restore.err
    assert one_json(restore)["would_restore_from"] == good.name
    assert {"file": future.name, "reason": reason} in one_json(restore)["skipped"]
    candidates = restore_candidates(stack.database)
    assert [b.name for b in candidates.usable] == [good.name]
    assert candidates.skipped == [{"file": future.name, "reason": reason}]


def test_a_dump_of_another_database_fails_verification(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    rewrite_dump(backup, lambda sql: sql.replace(f"Database: {stack.db}\n", "Database: petclinic_staging\n"))
    result = stack.run("verify", "--database", stack.db)
    assert result.rc == errors.FAILED
    reason = f"the dump is of database petclinic_staging, not {stack.db} (its header says Database: petclinic_staging)"
    assert one_json(result)["backups"] == [{"file": backup.name, "status": "failed", "reason": reason}]
    assert result.err.strip().endswith(f"stackmedic-job verify: {backup.name} failed: {reason}")
    assert mf.read(backup.manifest_path).verify_status == "failed"


def test_a_sudden_drop_or_a_missing_table_makes_a_backup_suspicious(stack: JobStack):
    stack.execute("CREATE TABLE audit (id INT PRIMARY KEY)", "INSERT INTO audit SELECT seq FROM seq_1_to_100")
    trusted = run_backup(stack.config, stack.database, now=lambda: T0)
    assert stack.run("verify", "--database", stack.db).rc == errors.OK
    stack.execute("DROP TABLE audit", "DELETE FROM visits WHERE id > 10")
    doubtful = run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=2))

    result = stack.run("verify", "--database", stack.db)
    assert result.rc == errors.FAILED
    reason = f"against {trusted.name}: table audit missing; visits 6000 -> 10 rows (-99.8%)"
    assert one_json(result) == {
        "command": "verify",
        "database": stack.db,
        "status": "suspicious",
        "error": f"{doubtful.name} suspicious: {reason}",
        "backups": [{"file": doubtful.name, "status": "suspicious", "reason": reason}],
    }
    assert result.err.strip().endswith(f"stackmedic-job verify: {doubtful.name} suspicious: {reason}")
    recorded = mf.read(doubtful.manifest_path)
    assert (recorded.verify_status, recorded.status_reason, recorded.trusted) == ("suspicious", reason, False)

    # Still suspicious at the next backup: it is compared with the last trusted one, not the doubtful one.
    later = run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=4))
    again = one_json(stack.run("verify", "--database", stack.db))
    assert again["backups"][0]["reason"] == reason

    stack.execute("DROP TABLE owners")
    restore = stack.run("restore", "--database", stack.db, "--dry-run")
    assert restore.rc == errors.OK, restore.err
    planned = one_json(restore)
    assert planned["would_restore_from"] == trusted.name
    assert planned["skipped"] == [
        {"file": later.name, "reason": f"suspicious: {reason}"},
        {"file": doubtful.name, "reason": f"suspicious: {reason}"},
    ]
    candidates = restore_candidates(stack.database, now=T0 + timedelta(hours=5))
    assert [b.name for b in candidates.usable] == [trusted.name]
    assert candidates.skipped == [
        {"file": later.name, "reason": f"suspicious: {reason}"},
        {"file": doubtful.name, "reason": f"suspicious: {reason}"},
    ]

    # The drop was intended: a person accepts the newest one, and it becomes the reference.
    assert stack.run("verify", "--database", stack.db, "--accept").rc == errors.USAGE
    accepted = stack.run("verify", "--database", stack.db, "--file", later.name, "--accept")
    assert accepted.rc == errors.OK, accepted.err
    assert one_json(accepted)["backups"] == [
        {"file": later.name, "status": "ok", "reason": f"accepted by a person: {reason}"}
    ]
    assert restore_candidates(stack.database, now=T0 + timedelta(hours=5)).usable[0].name == later.name


def test_a_tampered_backup_cannot_touch_the_live_database_during_verify(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    live = f"`{stack.db}`.`owners`"
    rewrite_dump(
        backup, lambda sql: sql.replace("-- Dump completed", f"DROP TABLE {live};\n-- Dump completed")
    )
    line = gzip.decompress(backup.path.read_bytes()).decode().splitlines().index(f"DROP TABLE {live};") + 1
    result = stack.run("verify", "--database", stack.db)
    assert result.rc == errors.FAILED
    user = stack.database.verify_user.user
    reason = (
        f"loading into scratch database failed: ERROR 1142 (42000) at line {line}:"
        f" DROP command denied to user '{user}'@'127.0.0.1' for table {live}"
    )
    assert one_json(result)["backups"] == [{"file": backup.name, "status": "failed", "reason": reason}]
    assert stack.snapshot()["owners"][0] == 2000


def test_the_verify_account_cannot_reach_a_live_database(stack: JobStack):
    user = stack.database.verify_user
    conn = stack.mariadb.connect(user=user.user, password=user.password())
    try:
        with conn.cursor() as cur:
            for sql in (
                f"SELECT * FROM `{stack.db}`.owners",
                f"DROP TABLE `{stack.db}`.owners",
                f"USE `{stack.db}`",
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cur.execute(sql)
                assert denied.value.args[0] in (1044, 1142), sql
    finally:
        conn.close()


def test_scratch_databases_left_by_a_killed_verify_are_dropped_by_the_next(stack: JobStack):
    run_backup(stack.config, stack.database, now=lambda: T0)
    leftover, others = verify_scratch_name(stack.db), verify_scratch_name("another_db")
    stack.mariadb.execute(
        f"CREATE DATABASE {leftover}", f"CREATE TABLE {leftover}.owners (id INT)", f"CREATE DATABASE {others}"
    )
    try:
        result = stack.run("verify", "--database", stack.db)
        assert result.rc == errors.OK, result.err
        assert one_json(result)["scratch_dropped"] == [leftover]
        names = {row[0] for row in stack.mariadb.execute("SHOW DATABASES LIKE 'stackmedic\\_verify\\_%'")}
        assert names == {others}  # another database's verify may be running: never touched
        said = (
            f'msg="dropped a scratch database left by a killed verify" database={stack.db} scratch={leftover}'
        )
        assert said in result.err
    finally:
        stack.mariadb.execute(f"DROP DATABASE IF EXISTS {leftover}", f"DROP DATABASE IF EXISTS {others}")
