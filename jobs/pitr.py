"""Point-in-time recovery: replay the binary log from the backup's position into the scratch copy.

    mariadb-binlog --read-from-remote-server --to-last-log --start-position=P FILE \\
        --base64-output=decode-rows -vv --rewrite-db='live->scratch'
      | BinlogFilter (the tables restored, up to the destructive statement)
      | RowApplier (INSERT/UPDATE/DELETE on the scratch schema)

The logs are read over the client connection (so it works where Jenkins runs apart from
the database host), with the account `binlog_user` (REPLICATION SLAVE, BINLOG MONITOR);
the restore account applies their row changes as plain SQL (jobs/row_replay.py), never
as `BINLOG` statements, which need the root-equivalent BINLOG REPLAY. Without binary
logs, with a backup that records no position, or with a gap (the backup's log was
purged), the restore falls back to the backup alone and names the lost window: from the
backup's snapshot to now.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pymysql
from pymysql.constants import CLIENT

from . import db as dbc
from . import manifest as mf
from .binlog_filter import BinlogFilter, Stop
from .catalog import Backup
from .config import Database, JobsConfig
from .definer import rewrite
from .errors import LoadError
from .progress import Progress
from .row_replay import RowApplier, parse_rows

T = TypeVar("T")

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


def _ask_binlog(database: Database, doing: str, ask: Callable[[Any], T]) -> T | None:
    """ask(cursor) as the binlog reader; None when the server keeps no binary logs."""
    conn = dbc.connect(database.connection, database.binlog_reader)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.log_bin")
            if not cur.fetchone()[0]:
                return None
            return ask(cur)
    except pymysql.err.MySQLError as exc:
        raise LoadError(f"cannot {doing} as {database.binlog_reader.user}: {exc.args[-1]}") from None
    finally:
        conn.close()


def binary_logs(database: Database) -> list[str] | None:
    """Names of the server's binary logs, oldest first; None when it keeps none."""

    def names(cur: Any) -> list[str]:
        cur.execute("SHOW BINARY LOGS")
        return [row[0] for row in cur.fetchall()]

    return _ask_binlog(database, "list binary logs", names)


def end_of_log(database: Database) -> tuple[str, int] | None:
    """(file, position) the server writes next: taken before the restore writes anything itself."""

    def position(cur: Any) -> tuple[str, int] | None:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        return (row[0], int(row[1])) if row else None

    return _ask_binlog(database, "read the binary log position", position)


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
    """Run mariadb-binlog (rows decoded) through the filter; kept events are applied as plain SQL.

    LoadError names what failed.
    """
    env = {**os.environ, "TZ": "UTC"}  # event times are printed in the local time zone
    reader = database.binlog_reader
    conn = dbc.connect(database.connection, database.restore_user, scratch, CLIENT.MULTI_STATEMENTS)
    progress = Progress(f"restore {database.name}: replay", unit="events")
    try:
        with (
            conn.cursor() as cur,
            dbc.options_fd(database.connection, reader) as (rfd, rarg),
            tempfile.TemporaryFile() as rerr,
        ):
            for setting in REPLAY_SESSION:
                cur.execute(setting)
            batch = Batch(cur, RowApplier(cur, scratch), progress)
            filt.sink = batch.add
            argv = [
                BINLOG_COMMAND,
                rarg,
                "--read-from-remote-server",
                "--to-last-log",
                "--base64-output=decode-rows",
                "--verbose",
                "--verbose",
                f"--start-position={position}",
                f"--rewrite-db={database.name}->{scratch}",
                file,
            ]
            src = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=rerr, stdin=subprocess.DEVNULL, env=env, pass_fds=(rfd,)
            )
            assert src.stdout is not None  # stdout=PIPE
            timer = threading.Timer(database.dump_timeout, src.kill)
            timer.start()
            try:
                for n, line in enumerate(src.stdout):
                    filt.feed(line)
                    if n % 4096 == 0:
                        progress.add(0)  # a long scan past other tables' events still reports
                    if filt.stop:
                        break
                else:
                    filt.finish()
                batch.flush()
            finally:
                timer.cancel()
                if src.poll() is None:
                    src.kill()
                src.wait()
            if src.returncode not in (0, -9) and not filt.stop:
                raise LoadError(f"reading the binary logs failed: {_last_line(rerr) or src.returncode}")
    finally:
        conn.close()
    progress.finish()


# Rows come from a consistent history: no foreign key checks, an id 0 stays 0, times in UTC.
REPLAY_SESSION = (
    "SET SESSION foreign_key_checks = 0",
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
    "SET SESSION time_zone = '+00:00'",
)


class Batch:
    """Kept transactions as SQL text, sent many per round trip (about 1 MiB); DDL alone."""

    LIMIT = 1 << 20

    def __init__(self, cursor, applier: RowApplier, progress: Progress):
        self.cursor = cursor
        self.applier = applier
        self.progress = progress
        self.parts: list[str] = []
        self.size = 0
        self.count = 0

    def add(self, statement: str, rows: list[str]) -> None:
        """One kept transaction (row lines) or DDL statement."""
        if statement:
            self.flush()
            self._run(rewrite(statement.encode("utf-8")).decode("utf-8"))  # DEFINER=CURRENT_USER
            self.applier.forget()
            self.progress.add(1)
            return
        ops = parse_rows(rows)
        text = ";\n".join(["START TRANSACTION", *(self.applier.sql(op) for op in ops), "COMMIT"])
        self.parts.append(text)
        self.size += len(text)
        self.count += 1
        if self.size >= self.LIMIT:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self._run(";\n".join(self.parts))
            self.progress.add(self.count)
            self.parts, self.size, self.count = [], 0, 0

    def _run(self, sql: str) -> None:
        try:
            self.cursor.execute(sql)
            while self.cursor.nextset():
                pass
        except pymysql.err.MySQLError as exc:
            raise LoadError(f"replaying the binary logs failed: {exc.args[-1]}") from None


def _last_line(handle) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", "replace").strip().splitlines()
    return text[-1] if text else ""
