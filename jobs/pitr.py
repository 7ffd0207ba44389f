"""Point-in-time recovery: replay the binary log from the backup's position into the scratch copy.

    mariadb-binlog --read-from-remote-server --to-last-log --start-position=P FILE \\
        --rewrite-db='live->scratch'  |  BinlogFilter  |  mariadb scratch

The logs are read over the client connection (so it works where Jenkins runs apart from
the database host), with the account `binlog_user` (REPLICATION SLAVE, BINLOG MONITOR);
the restore account replays them (BINLOG REPLAY). Without binary logs, with a backup that
records no position, or with a gap (the backup's log was purged), the restore falls back
to the backup alone and names the lost window: from the backup's snapshot to now.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import pymysql

from . import db as dbc
from . import manifest as mf
from .binlog_filter import BinlogFilter, Stop
from .catalog import Backup
from .config import Database, JobsConfig
from .errors import LoadError
from .load import CLIENT_OPTIONS
from .progress import Progress

log = logging.getLogger(__name__)

BINLOG_COMMAND = "mariadb-binlog"


@dataclass
class PitrResult:
    replayed_events: int | None = None
    lost_window: dict[str, str] | None = None
    stopped: Stop | None = None


def lost(backup: Backup, reason: str, now: datetime | None = None) -> PitrResult:
    """Nothing replayed: what happened after the backup's snapshot is lost."""
    now = now or datetime.now(UTC)
    window = {"from": mf.iso(backup.manifest.created), "to": mf.iso(now), "reason": reason}
    log.warning("no point-in-time recovery reason=%s lost_from=%s", reason, window["from"])
    return PitrResult(None, window)


def binary_logs(database: Database) -> list[str] | None:
    """Names of the server's binary logs, oldest first; None when it keeps none."""
    conn = dbc.connect(database.connection, database.binlog_reader)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.log_bin")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SHOW BINARY LOGS")
            return [row[0] for row in cur.fetchall()]
    except pymysql.err.MySQLError as exc:
        raise LoadError(f"cannot list binary logs as {database.binlog_reader.user}: {exc.args[-1]}") from None
    finally:
        conn.close()


def end_of_log(database: Database) -> tuple[str, int] | None:
    """(file, position) the server writes next: taken before the restore writes anything itself."""
    conn = dbc.connect(database.connection, database.binlog_reader)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.log_bin")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            return (row[0], int(row[1])) if row else None
    except pymysql.err.MySQLError as exc:
        raise LoadError(
            f"cannot read the binary log position as {database.binlog_reader.user}: {exc.args[-1]}"
        ) from None
    finally:
        conn.close()


def may_replay(database: Database) -> bool:
    """Whether the restore account may run the BINLOG statements mariadb-binlog prints for row events."""
    conn = dbc.connect(database.connection, database.restore_user)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS")
            grants = " ".join(row[0] for row in cur.fetchall()).upper()
    finally:
        conn.close()
    return "BINLOG REPLAY" in grants or "ALL PRIVILEGES ON *.*" in grants or "SUPER" in grants


def recover(
    config: JobsConfig,
    database: Database,
    backup: Backup,
    scratch: str,
    tables: list[str] | None,
    until: datetime | None = None,
    end: tuple[str, int] | None = None,
) -> PitrResult:
    """Replay what happened to `tables` (None: the whole database) after `backup` into `scratch`."""
    coords = getattr(backup.manifest, "binlog", None)
    if not database.pitr:
        return lost(backup, "point-in-time recovery is off (pitr: false)")
    if not coords:
        return lost(backup, "the backup records no binary log position")
    try:
        logs = binary_logs(database)
    except LoadError as exc:
        return lost(backup, str(exc))
    if logs is None:
        return lost(backup, "the server keeps no binary logs")
    if not may_replay(database):
        return lost(
            backup,
            f"{database.restore_user.user} may not replay row events: BINLOG REPLAY is not granted"
            " (it is root-equivalent, docs/jobs.md)",
        )
    if end is None:
        return lost(backup, "the binary log position at the start of the restore is unknown")
    if coords.file not in logs:
        return lost(backup, f"binary log {coords.file} of the backup is gone (purged): a gap")
    filt = BinlogFilter(database.name, scratch, set(tables) if tables else None, coords.file, until, end)
    replay(config, database, coords.file, coords.position, scratch, filt)
    if filt.stop:
        log.info("replay stopped before %s at %s:%d", filt.stop.reason, filt.stop.file, filt.stop.position)
    return PitrResult(filt.replayed, None, filt.stop)


def replay(
    config: JobsConfig, database: Database, file: str, position: int, scratch: str, filt: BinlogFilter
) -> None:
    """Run mariadb-binlog into the filter into the mariadb client; LoadError names what failed."""
    env = {**os.environ, "TZ": "UTC"}  # event times are printed in the local time zone
    reader = database.binlog_reader
    with (
        dbc.options_fd(database.connection, reader) as (rfd, rarg),
        dbc.options_fd(database.connection, database.restore_user) as (cfd, carg),
        tempfile.TemporaryFile() as rerr,
        tempfile.TemporaryFile() as cerr,
    ):
        argv = [
            BINLOG_COMMAND,
            rarg,
            "--read-from-remote-server",
            "--to-last-log",
            f"--start-position={position}",
            f"--rewrite-db={database.name}->{scratch}",
            file,
        ]
        src = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=rerr, stdin=subprocess.DEVNULL, env=env, pass_fds=(rfd,)
        )
        dst = subprocess.Popen(
            [config.client_command, carg, *CLIENT_OPTIONS, scratch],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=cerr,
            pass_fds=(cfd,),
        )
        timer = threading.Timer(database.dump_timeout, lambda: (src.kill(), dst.kill()))
        timer.start()
        progress = Progress(f"restore {database.name}: replay", unit="events")
        try:
            _pump(src, dst, filt, progress)
        finally:
            timer.cancel()
            if src.poll() is None:
                src.kill()
            src.wait()
        rc = dst.wait()
        progress.finish()
        if src.returncode not in (0, -9) and not filt.stop:
            raise LoadError(f"reading the binary logs failed: {_last_line(rerr) or src.returncode}")
        if rc != 0:
            raise LoadError(f"replaying the binary logs failed: {_last_line(cerr) or rc}")


def _pump(src, dst, filt: BinlogFilter, progress: Progress) -> None:
    buffered: list[bytes] = []
    size = 0
    try:
        for line in src.stdout:
            before = filt.replayed
            out = filt.feed(line)
            if out:
                buffered.append(out)
                size += len(out)
                if size >= 1 << 20:
                    dst.stdin.write(b"".join(buffered))
                    buffered, size = [], 0
            if filt.replayed != before:
                progress.add(filt.replayed - before)
            if filt.stop:
                break
        if not filt.stop:
            buffered.append(filt.finish())
        buffered.append(b"DELIMITER ;\n")
        dst.stdin.write(b"".join(buffered))
    except BrokenPipeError:
        pass  # the client stopped: its exit status and stderr say why
    finally:
        with contextlib.suppress(OSError):
            dst.stdin.close()


def _last_line(handle) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", "replace").strip().splitlines()
    return text[-1] if text else ""
