"""backup, verify, restore and prune against a real MariaDB, as Jenkins runs them."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
from stackmedic.exporter.checks.backups import BackupsCheck
from stackmedic.exporter.deadline import Deadline
from stackmedic.jobs import errors
from stackmedic.jobs import manifest as mf
from stackmedic.jobs.backup import run_backup
from stackmedic.jobs.catalog import SAFETY_DIR, complete_backups
from stackmedic.jobs.lock import DirLock

from harness.services import wait_for
from tests.jobs.conftest import JobStack

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def one_json(result) -> dict:
    lines = [line for line in result.out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.out
    return json.loads(lines[0])


def exporter_count(stack: JobStack) -> float:
    check = BackupsCheck(str(stack.backup_root), [stack.db])
    samples = check.samples()
    check.run(samples, Deadline.after(5))
    return samples.value("backups_complete", stack.db)  # stackmedic_backups_complete


def expected_tables(snap: dict) -> list[str]:
    return [name for name, kind in snap["objects"] if kind == "BASE TABLE"]


def corrupt(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


def test_round_trip_backup_damage_restore_gives_identical_data(stack: JobStack):
    before = stack.snapshot()
    assert before["owners"][0] == 2000 and before["visits"][0] == 6000
    assert before["routines"] == ["visits_of"] and before["triggers"] == ["visits_default_description"]

    backup = stack.run("backup", "--database", stack.db)
    assert backup.rc == errors.OK, backup.err
    record = one_json(backup)
    dump = stack.directory / record["file"]
    manifest = mf.read(mf.manifest_path(dump))
    assert manifest.tables["owners"] == 2000 and manifest.tables["visits"] == 6000
    assert manifest.size_bytes == dump.stat().st_size and manifest.verified is None
    assert dump.stat().st_mode & 0o077 == 0o040  # not world-readable
    text = gzip.decompress(dump.read_bytes()).decode()
    assert "CREATE DEFINER" in text and "PROCEDURE `visits_of`" in text and "EVENT `tidy_visits`" in text

    verify = stack.run("verify", "--database", stack.db)
    assert verify.rc == errors.OK, verify.err
    assert mf.read(mf.manifest_path(dump)).verified_ok
    assert exporter_count(stack) == 1

    stack.execute("DROP TABLE visits", "DELETE FROM owners WHERE id > 1500", "DROP PROCEDURE visits_of")
    damaged = stack.snapshot()
    assert "visits" not in damaged and damaged["owners"][0] == 1500

    restore = stack.run("restore", "--database", stack.db, "--whole")
    assert restore.rc == errors.OK, restore.err
    report = one_json(restore)
    assert report["status"] == "ok" and report["restored_from"] == dump.name and "skipped" not in report
    assert stack.snapshot() == before

    # The damaged state was kept, and it is not a backup anyone would restore or count.
    safety = stack.directory / report["safety_dump"]
    assert safety.parent.name == SAFETY_DIR and mf.manifest_path(safety).exists()
    assert "CREATE TABLE `visits`" not in gzip.decompress(safety.read_bytes()).decode()
    assert [b.name for b in complete_backups(stack.directory, stack.db)] == [dump.name]
    assert exporter_count(stack) == 1


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_corrupt_newest_backup_is_skipped_and_reported(stack: JobStack, how: str):
    older = run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute("INSERT INTO owners (first_name, last_name) VALUES ('Newer', 'Data')")
    newer = run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=2))
    stack.execute("DELETE FROM owners WHERE last_name = 'Data'")
    expected = stack.snapshot()
    stack.execute("DROP TABLE visits")
    corrupt(newer.path, how)

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert report["restored_from"] == older.name
    expected_reason = {
        "flipped": "checksum mismatch",
        "truncated": f"size {newer.path.stat().st_size} differs from the manifest's {newer.manifest.size_bytes}",
    }[how]
    assert report["skipped"] == [{"file": newer.name, "reason": expected_reason}]
    assert stack.snapshot() == expected
    recorded = mf.read(newer.manifest_path).verified
    assert (recorded.ok, recorded.reason) == (False, expected_reason)
    assert "skipping backup" in result.err and f"file={newer.name}" in result.err


def test_corruption_the_checksum_cannot_see_is_caught_by_the_load(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    corrupt(backup.path, "truncated")
    # as if the file had been damaged before it was hashed: manifest and file agree
    data = backup.path.read_bytes()
    fixed = dataclasses.replace(
        backup.manifest, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    mf.write(backup.manifest_path, fixed)
    result = stack.run("verify", "--database", stack.db)
    assert result.rc == errors.FAILED
    assert one_json(result)["backups"] == [
        {"file": backup.name, "status": "failed", "reason": "compressed stream is truncated"}
    ]
    assert f"stackmedic-job verify: {backup.name} failed: compressed stream is truncated" in result.err


def test_a_backup_taken_after_tables_went_missing_is_never_restored(stack: JobStack):
    good = run_backup(stack.config, stack.database, now=lambda: T0)
    expected = stack.snapshot()
    stack.execute("DROP TABLE visits")
    damaged = run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=2))
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert report["restored_from"] == good.name
    assert report["skipped"] == [{"file": damaged.name, "reason": "lacks table visits"}]
    assert stack.snapshot() == expected


def test_all_backups_corrupt_refuses_and_touches_nothing(stack: JobStack):
    first = run_backup(stack.config, stack.database, now=lambda: T0)
    second = run_backup(stack.config, stack.database, now=lambda: T0 + timedelta(hours=2))
    corrupt(first.path, "flipped")
    corrupt(second.path, "truncated")
    stack.execute("DROP TABLE visits")
    before = stack.snapshot()

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.NO_VALID_BACKUP == 4
    report = one_json(result)
    assert report["status"] == "refused" and "restored_from" not in report and "safety_dump" not in report
    assert [s["file"] for s in report["skipped"]] == [second.name, first.name]
    message = f"none of the 2 backups of {stack.db} can be restored (visits)"
    assert report["error"] == message and report["exit_code"] == 4
    assert result.err.strip().splitlines()[-1] == f"stackmedic-job restore: {message}"
    assert stack.snapshot() == before
    assert not (stack.directory / SAFETY_DIR).exists()


def test_no_backup_at_all_refuses(stack: JobStack):
    result = stack.run("restore", "--database", stack.db, "--whole")
    assert result.rc == errors.NO_VALID_BACKUP
    assert f"no complete backup of {stack.db}" in result.err
    assert one_json(result)["status"] == "refused"


def test_dry_run_says_what_it_would_restore_and_changes_nothing(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute("DROP TABLE visits")
    before = stack.snapshot()
    manifest_before = backup.manifest_path.read_bytes()
    result = stack.run("restore", "--database", stack.db, "--dry-run")
    assert result.rc == errors.OK
    report = one_json(result)
    assert report["status"] == "dry-run" and report["would_restore_from"] == backup.name
    assert "restored_from" not in report and "safety_dump" not in report and report["tables"] == ["visits"]
    assert stack.snapshot() == before
    assert backup.manifest_path.read_bytes() == manifest_before


def test_server_down_refuses_with_its_own_status(mariadb_factory, stack_factory):
    server = mariadb_factory()
    stack = stack_factory(server)
    assert stack.run("backup", "--database", stack.db).rc == errors.OK
    server.stop()

    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.SERVER_DOWN == 3
    last = result.err.strip().splitlines()[-1]
    assert last.startswith(f"stackmedic-job restore: database server 127.0.0.1:{server.port} is down")
    assert one_json(result)["status"] == "refused"
    assert stack.run("backup", "--database", stack.db).rc == errors.SERVER_DOWN
    assert len(complete_backups(stack.directory, stack.db)) == 1  # the failed backup left nothing


def test_a_second_restore_is_refused_while_the_lock_is_held(stack: JobStack):
    run_backup(stack.config, stack.database, now=lambda: T0)
    before = stack.snapshot()
    with DirLock(stack.directory, "restore"):
        result = stack.run("restore", "--database", stack.db)
        assert result.rc == errors.LOCKED == 5
        assert f"is locked by job=restore pid={os.getpid()}" in result.err
        assert stack.run("prune", "--database", stack.db).rc == errors.LOCKED
        assert stack.run("backup", "--database", stack.db).rc == errors.LOCKED
    assert stack.snapshot() == before


def test_a_second_restore_waits_for_the_first_when_asked_to(stack: JobStack, tmp_path):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    stack.execute("DROP TABLE visits")
    log = tmp_path / "waiter.log"
    holder = DirLock(stack.directory, "restore").__enter__()
    proc = stack.spawn("restore", "--database", stack.db, "--lock.wait", "60", stderr=log)
    try:
        wait_for(lambda: "waiting for lock" in log.read_text(), 30, "the second restore to wait")
        assert proc.poll() is None
        holder.__exit__(None, None, None)
        out, _ = proc.communicate(timeout=120)
    finally:
        holder.__exit__(None, None, None)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == errors.OK, log.read_text()
    assert json.loads(out)["restored_from"] == backup.name


def test_backup_killed_midway_leaves_nothing_taken_for_a_backup(stack: JobStack, tmp_path):
    stack.execute(
        "CREATE TABLE bulk (id INT AUTO_INCREMENT PRIMARY KEY, payload TEXT)",
        "INSERT INTO bulk (payload) SELECT REPEAT(MD5(RAND()), 16) FROM seq_1_to_150000",
    )
    proc = stack.spawn("backup", "--database", stack.db, stderr=tmp_path / "backup.log")
    tmp = stack.directory / f".tmp-{stack.db}-"
    try:
        wait_for(
            lambda: any(
                p.name.startswith(tmp.name) and p.stat().st_size > 0 for p in stack.directory.iterdir()
            ),
            60,
            "the dump to be under way",
            interval=0.01,
        )
        os.kill(proc.pid, signal.SIGKILL)  # the job itself, as a crash or an OOM kill would
        proc.wait(10)
        # its children lose their reader and die of SIGPIPE; wait for them by their group
        wait_for(lambda: _group_gone(proc.pid), 30, "mariadb-dump and gzip to exit")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    names = sorted(p.name for p in stack.directory.iterdir())
    assert [n for n in names if not n.startswith(".")] == []
    assert complete_backups(stack.directory, stack.db) == []
    assert exporter_count(stack) == 0
    listed = stack.run("list", "--database", stack.db)
    assert listed.rc == errors.OK and listed.out == ""
    assert stack.run("verify", "--database", stack.db).rc == errors.NO_VALID_BACKUP
    assert stack.run("restore", "--database", stack.db, "--dry-run", "--whole").rc == errors.NO_VALID_BACKUP

    # The lock died with its holder; prune clears the remains, the next backup works.
    pruned = stack.run("prune", "--database", stack.db)
    assert pruned.rc == errors.OK
    assert one_json(pruned)["leftovers"] == [n for n in names if n.startswith(".tmp-")]
    assert stack.run("backup", "--database", stack.db).rc == errors.OK
    assert len(complete_backups(stack.directory, stack.db)) == 1


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_prune_applies_retention_and_keeps_the_newest_verified(stack: JobStack):
    stamps = [datetime.now(UTC).replace(microsecond=0) - timedelta(days=3, hours=h) for h in range(4)]
    made = [run_backup(stack.config, stack.database, now=lambda t=t: t) for t in stamps]
    oldest = made[-1]
    assert stack.run("verify", "--database", stack.db, "--file", oldest.name).rc == errors.OK
    (stack.directory / f".tmp-{stack.db}-20000101T000000Z.sql.gz").write_bytes(b"x")
    dry = stack.run("prune", "--database", stack.db, "--dry-run")
    assert dry.rc == errors.OK and len(list(stack.directory.iterdir())) == 2 * 4 + 2
    result = stack.run("prune", "--database", stack.db)
    report = one_json(result)
    # keep_last 2, one a day for 1 day (today: none), plus the newest verified
    assert report["kept"] == sorted([made[0].name, made[1].name, oldest.name], reverse=True)
    assert sorted(report["deleted"]) == sorted([made[2].name])
    assert [b.name for b in complete_backups(stack.directory, stack.db)] == [
        made[0].name,
        made[1].name,
        oldest.name,
    ]
    assert report == {**one_json(dry), "status": "ok"}


def test_verify_file_must_be_a_listed_backup(stack: JobStack):
    run_backup(stack.config, stack.database, now=lambda: T0)
    for bad in ("../../etc/passwd", f"{stack.db}-20990101T000000Z.sql.gz", ".lock"):
        result = stack.run("verify", "--database", stack.db, "--file", bad)
        assert result.rc == errors.USAGE
        assert f"no complete backup named {bad!r}" in result.err


def test_restore_of_a_database_that_is_gone_entirely(stack: JobStack):
    backup = run_backup(stack.config, stack.database, now=lambda: T0)
    expected = stack.snapshot()
    stack.mariadb.execute(f"DROP DATABASE `{stack.db}`")
    result = stack.run("restore", "--database", stack.db)
    assert result.rc == errors.OK, result.err
    report = one_json(result)
    assert report["restored_from"] == backup.name and "safety_dump" not in report
    assert report["tables"] == sorted(expected_tables(expected))
    assert stack.snapshot() == expected
