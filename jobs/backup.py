"""backup: dump one database, then write its manifest; only then is it a backup."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from . import db as dbc
from . import manifest as mf
from .catalog import Backup, complete_backups
from .config import Database, JobsConfig
from .dump import binlog_position, dump_to_file
from .errors import JobError
from .fsutil import ensure_dir
from .lock import DirLock

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Counter(threading.Thread):
    """Exact row counts in a consistent snapshot opened just before the dump opens its own.

    Counting while the dump runs keeps the backup close to the time of the dump alone; both
    snapshots are taken within milliseconds, so the counts are exact unless rows were written
    in between.
    """

    def __init__(self, database: Database):
        super().__init__(daemon=True, name=f"count-{database.name}")
        self.database = database
        self.snapshot_taken = threading.Event()
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = dbc.connect(self.database.connection, self.database.backup_user)
            try:
                with conn.cursor() as cur:
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    self.snapshot_taken.set()
                    self.counts = dbc.table_counts(cur, self.database.name)
                    cur.execute("COMMIT")
            finally:
                conn.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        finally:
            self.snapshot_taken.set()


def binlog_enabled(database: Database) -> bool:
    """Whether the server writes binary logs (then the dump records its position for PITR)."""
    conn = dbc.connect(database.connection, database.backup_user)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.log_bin")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def coordinates(database: Database, dump: Path) -> mf.BinlogPosition | None:
    """{"file", "position", "gtid"} of the dump's snapshot, from its header and BINLOG_GTID_POS."""
    found = binlog_position(dump)
    if found is None:
        log.warning("the dump records no binary log position file=%s", dump.name)
        return None
    file, position = found
    conn = dbc.connect(database.connection, database.backup_user)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, position))
            gtid = cur.fetchone()[0] or ""
    finally:
        conn.close()
    return mf.BinlogPosition(file, position, gtid)


SPACE_MARGIN = 0.25  # a database grows between two backups; a dump that dies of ENOSPC helps no one


def check_space(directory: Path, database: str) -> None:
    """Refuse before dumping when the free space is below the last backup's size plus the margin."""
    last = next(iter(complete_backups(directory, database)), None)
    if last is None:
        return
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    needed = int(last.manifest.size_bytes * (1 + SPACE_MARGIN))
    if free < needed:
        raise JobError(
            f"not enough free space in {directory}: {free} bytes free, the last backup ({last.name})"
            f" took {last.manifest.size_bytes} bytes, {needed} needed with a {SPACE_MARGIN:.0%} margin"
        )


def run_backup(
    config: JobsConfig, database: Database, now: Callable[[], datetime] = utcnow, lock_wait: float = 0.0
) -> Backup:
    """Make one complete backup of `database`; raise a JobError (and leave no backup) otherwise."""
    directory = ensure_dir(database.directory)
    with DirLock(directory, "backup", wait=lock_wait):
        check_space(directory, database.name)
        dbc.check_server(database.connection, database.backup_user)
        created = now().astimezone(UTC).replace(microsecond=0)
        dest = directory / mf.backup_name(database.name, created)
        if dest.exists() or mf.manifest_path(dest).exists():
            raise JobError(f"{dest.name} exists already: one backup per second at most")
        binlog_on = binlog_enabled(database)
        counter = _Counter(database)
        counter.start()
        counter.snapshot_taken.wait()
        try:
            result = dump_to_file(
                config.dump_command,
                database.connection,
                database.backup_user,
                database.name,
                dest,
                level=database.compress_level,
                timeout=database.dump_timeout,
                binlog=binlog_on,
            )
        finally:
            counter.join()
        if counter.error is not None:
            dest.unlink(missing_ok=True)
            raise JobError(f"counting rows of {database.name} failed: {counter.error}")
        manifest = mf.Manifest(
            database=database.name,
            file=dest.name,
            created=created,
            size_bytes=result.size_bytes,
            sha256=result.sha256,
            tables=counter.counts,
            binlog=coordinates(database, dest) if binlog_on else None,
        )
        mf.write(mf.manifest_path(dest), manifest)
    log.info("backup complete database=%s file=%s tables=%d", database.name, dest.name, len(counter.counts))
    return Backup(dest, manifest)
