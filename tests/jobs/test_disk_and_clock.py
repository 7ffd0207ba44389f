"""Disk full (issue 10 defect 12) and a clock that jumped (defects 5 and 8), through the command line.

The backup folder is a small real tmpfs (`mount -t tmpfs -o size=...`), unmounted afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from stackmedic.jobs import errors
from stackmedic.jobs import manifest as mf
from stackmedic.jobs.backup import run_backup
from stackmedic.jobs.catalog import complete_backups
from stackmedic.jobs.cli import main
from stackmedic.jobs.lock import DirLock
from stackmedic.jobs.prune import Candidate, plan

from tests.jobs.conftest import JobStack

DB = "petclinic"


def one_json(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(path)], check=True)


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], check=False).returncode != 0:
        subprocess.run(["umount", "--lazy", str(path)], check=True)  # a file still open: detach it


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs for the backups."""
    root = tmp_path / "backups"
    mount_tmpfs(root, "512k")
    try:
        yield root
    finally:
        unmount(root)


def fill(directory: Path, leave: int = 0) -> Path:
    """Write a filler file until only `leave` bytes are free (0: until the disk is full)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = b"\0" * 4096
        while free_bytes(directory) > leave:
            os.write(fd, block[: max(1, min(len(block), free_bytes(directory) - leave))])
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    return filler


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def write_config(tmp_path: Path, backup_root: Path, **retention) -> Path:
    user = {"user": "nobody", "password_env": "UNUSED_PW"}
    config = {
        "state_dir": str(tmp_path / "state"),
        "databases": {
            DB: {
                "connection": {"port": 3306},
                "backup_user": user,
                "restore_user": user,
                "verify_user": user,
                "backup_dir": str(backup_root),
                "required_tables": ["owners"],
                "retention": retention or {"keep_last": 2, "keep_daily_days": 1},
            }
        },
    }
    path = tmp_path / "jobs.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def fake_backup(directory: Path, when: datetime, verified: bool = False, size: int = 2000) -> str:
    """A backup as prune and list see it: a dump and its manifest (the content is not read)."""
    directory.mkdir(parents=True, exist_ok=True)
    dump = directory / mf.backup_name(DB, when)
    dump.write_bytes(b"x" * size)
    ok = mf.Verification(when, True, "") if verified else None
    mf.write(mf.manifest_path(dump), mf.Manifest(DB, dump.name, when, size, "0" * 64, {"owners": 1}, ok))
    return dump.name


def candidates(directory: Path) -> list[Candidate]:
    return [
        Candidate(b.name, b.manifest.created, b.manifest.trusted) for b in complete_backups(directory, DB)
    ]


def run(config: Path, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--config.file", str(config), *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_list_and_prune_work_with_zero_bytes_free(small_disk: Path, tmp_path: Path, capsys):
    config = write_config(tmp_path, small_disk)
    directory = small_disk / DB
    now = datetime.now(UTC).replace(microsecond=0)
    names = [fake_backup(directory, now - timedelta(days=d), verified=d == 0, size=30000) for d in range(4)]
    with DirLock(directory, "backup"):
        pass  # the lock file exists, as after any earlier job
    (directory / f".tmp-{DB}-20000101T000000Z.sql.gz").write_bytes(b"half")
    fill(small_disk)
    assert free_bytes(small_disk) == 0

    rc, out, err = run(config, capsys, "list", "--database", DB)
    assert rc == errors.OK, err
    assert [line.split()[0] for line in out.splitlines()] == names

    rc, out, err = run(config, capsys, "prune", "--database", DB)
    assert rc == errors.OK, err
    assert one_json(out) == {
        "command": "prune",
        "database": DB,
        "status": "ok",
        "kept": names[:2],
        "deleted": names[2:],
        "leftovers": [f".tmp-{DB}-20000101T000000Z.sql.gz"],
        "orphans": [],
    }
    assert free_bytes(small_disk) >= 60000
    assert [b.name for b in complete_backups(directory, DB)] == names[:2]


def test_prune_with_the_clock_30_days_ahead_deletes_nothing(tmp_path: Path, capsys):
    root = tmp_path / "backups"
    directory = root / DB
    config = write_config(tmp_path, root, keep_last=12, keep_daily_days=14)
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)  # as if the clock jumped 30 days
    made = [fake_backup(directory, newest - timedelta(hours=2 * i)) for i in range(78)]
    orphan = mf.backup_name(DB, newest - timedelta(days=40))
    (directory / orphan).write_bytes(b"a whole dump whose manifest was lost")
    before = sorted(p.name for p in directory.iterdir())

    rc, out, err = run(config, capsys, "prune", "--database", DB)
    assert rc == errors.FAILED
    result = one_json(out)
    clock = re.search(r"the clock \((\S+)\)", result["error"]).group(1)
    # 12 kept by count, one a day for 14 days: how many depends on the hour the test runs
    at_newest = len(plan(candidates(directory), newest, 12, 14).delete)
    reason = (
        f"the clock ({clock}) is 30d 0h past the newest backup ({made[0]}), more than"
        " max_clock_gap 1d 12h: by the clock prune would delete 66 of 78 backups, at the newest backup's"
        f" time {at_newest}; nothing deleted (check the clock, or take a backup first)"
    )
    assert result["status"] == "refused" and result["error"] == f"prune of {DB} refused: {reason}"
    assert result["deleted"] == [] and result["orphans"] == [orphan]
    assert err.strip().endswith(f"stackmedic-job prune: prune of {DB} refused: {reason}")
    assert sorted(p.name for p in directory.iterdir() if p.name != ".lock") == before


def test_a_complete_dump_without_manifest_is_kept_and_reported(tmp_path: Path, capsys):
    # Issue 10 defect 8: prune deleted complete dumps that had no manifest.
    root = tmp_path / "backups"
    directory = root / DB
    config = write_config(tmp_path, root)
    now = datetime.now(UTC).replace(microsecond=0)
    fake_backup(directory, now)
    orphan = mf.backup_name(DB, now - timedelta(hours=1))
    (directory / orphan).write_bytes(b"whole")
    (directory / "safety").mkdir()
    safety_orphan = mf.backup_name(DB, now - timedelta(hours=2))
    (directory / "safety" / safety_orphan).write_bytes(b"whole")
    rc, out, err = run(config, capsys, "prune", "--database", DB)
    assert rc == errors.OK, err
    assert one_json(out)["orphans"] == [orphan, f"safety/{safety_orphan}"]
    assert (directory / orphan).exists() and (directory / "safety" / safety_orphan).exists()
    assert f'msg="kept a complete dump without manifest" file={orphan}' in err


@pytest.mark.services
def test_backup_refuses_up_front_when_free_space_is_short(stack: JobStack):
    mount_tmpfs(stack.backup_root, "2m")
    try:
        first = run_backup(
            stack.config, stack.database, now=lambda: datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
        )
        size = first.manifest.size_bytes
        with DirLock(stack.directory, "backup"):  # measured as the job sees it: its lock written
            fill(stack.backup_root, leave=size)  # room for one more of the same size, not the margin
            free = free_bytes(stack.backup_root)
        result = stack.run("backup", "--database", stack.db)
        assert result.rc == errors.FAILED
        needed = int(size * 1.25)
        error = (
            f"not enough free space in {stack.directory}: {free} bytes free, the last backup ({first.name})"
            f" took {size} bytes, {needed} needed with a 25% margin"
        )
        assert one_json(result.out) == {
            "status": "failed",
            "command": "backup",
            "database": stack.db,
            "error": error,
            "exit_code": errors.FAILED,
        }
        assert sorted(p.name for p in stack.directory.iterdir() if not p.name.startswith(".")) == [
            first.name,
            first.name + ".json",
        ]
    finally:
        unmount(stack.backup_root)


@pytest.mark.services
def test_database_and_disk_errors_still_print_one_result_line(mariadb_factory, stack_factory):
    # Issue 10 defect 13: database and disk errors printed no JSON result line.
    server = mariadb_factory()
    stack = stack_factory(server)
    mount_tmpfs(stack.backup_root, "1m")
    try:
        backup = stack.run("backup", "--database", stack.db)
        assert backup.rc == errors.OK, backup.err
        filler = fill(stack.backup_root)
        verify = stack.run("verify", "--database", stack.db)  # the load works; the manifest cannot be written
        assert verify.rc == errors.FAILED
        line = one_json(verify.out)
        assert (line["status"], line["command"], line["database"]) == ("failed", "verify", stack.db)
        assert "No space left on device" in line["error"]

        filler.unlink()
        server.stop()
        down = f"database server 127.0.0.1:{server.port} is down"
        for args in (("backup",), ("verify",)):
            result = stack.run(*args, "--database", stack.db)
            assert result.rc == errors.SERVER_DOWN
            line = one_json(result.out)
            assert (line["status"], line["command"], line["exit_code"]) == ("refused", args[0], 3)
            assert line["error"].startswith(down)
    finally:
        unmount(stack.backup_root)
