"""restore: the newest backup that verifies replaces the database, after a safety dump.

Refusals, each with its own exit status: server down (3), no backup verifies (4), the
lock is held (5). The outcome is a `RestoreReport` that the command prints as one JSON
line: what was restored, what was skipped and why, where the safety dump is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import db as dbc
from . import manifest as mf
from .catalog import SAFETY_DIR, complete_backups
from .config import Database, JobsConfig
from .dump import dump_to_file
from .errors import JobError, NoValidBackup
from .fsutil import ensure_dir
from .load import load_file
from .lock import DirLock
from .verify import VerifyResult, record, verify_backup

log = logging.getLogger(__name__)
_WORD = re.compile(r"[A-Za-z0-9_]+")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RestoreReport:
    """What a restore did, or would do, or why it refused; printed as one JSON line."""

    database: str
    dry_run: bool = False
    status: str = "running"  # ok, dry-run, refused, failed
    restored_from: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    safety_dump: str | None = None
    reason: str = ""
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "job": "restore",
            "database": self.database,
            "status": self.status,
            "exit_code": self.exit_code,
            "restored_from": self.restored_from,
            "skipped": self.skipped,
            "safety_dump": self.safety_dump,
            "dry_run": self.dry_run,
            "reason": self.reason,
        }


def run_restore(
    config: JobsConfig,
    database: Database,
    report: RestoreReport,
    lock_wait: float = 0.0,
    now: Callable[[], datetime] = utcnow,
) -> RestoreReport:
    """Restore `database` from its newest backup that verifies; raise a JobError to refuse."""
    dbc.check_server(database.connection, database.restore_user)
    directory = ensure_dir(database.directory)
    with DirLock(directory, "restore", wait=lock_wait):
        backups = complete_backups(directory, database.name)
        if not backups:
            raise NoValidBackup(f"no complete backup of {database.name} in {directory}")
        chosen = None
        for backup in backups:
            result = verify_backup(config, database, backup)
            if not report.dry_run:
                record(backup, result, now)
            if result.ok:
                chosen = (backup, result)
                break
            log.warning("skipping backup file=%s reason=%s", backup.name, result.reason)
            report.skipped.append({"file": backup.name, "reason": result.reason})
        if chosen is None:
            raise NoValidBackup(f"none of the {len(backups)} backups of {database.name} verifies")
        backup, result = chosen
        report.restored_from = backup.name
        if report.dry_run:
            report.status = "dry-run"
            return report
        report.safety_dump = safety_dump(config, database, now)
        replace_database(config, database, backup.path)
        check_restored(database, result)
    report.status = "ok"
    return report


def safety_dump(config: JobsConfig, database: Database, now: Callable[[], datetime]) -> str | None:
    """Dump the current state to `safety/` before anything is overwritten; None if the database is gone.

    Safety dumps are not backups (restore never picks them, the exporter does not count
    them): the current state may be the damaged one.
    """
    conn = dbc.connect(database.connection, database.restore_user)
    try:
        with conn.cursor() as cur:
            if not dbc.database_exists(cur, database.name):
                log.warning("no safety dump: database absent database=%s", database.name)
                return None
    finally:
        conn.close()
    directory = ensure_dir(database.directory / SAFETY_DIR)
    created = now().astimezone(UTC).replace(microsecond=0)
    dest = directory / mf.backup_name(database.name, created)
    try:
        result = dump_to_file(
            config.dump_command,
            database.connection,
            database.restore_user,
            database.name,
            dest,
            level=database.compress_level,
            timeout=database.dump_timeout,
        )
    except JobError as exc:
        raise JobError(f"safety dump failed, nothing was overwritten: {exc}") from None
    mf.write(
        mf.manifest_path(dest),
        mf.Manifest(database.name, dest.name, created, result.size_bytes, result.sha256, {}),
    )
    return f"{SAFETY_DIR}/{dest.name}"


def replace_database(config: JobsConfig, database: Database, path) -> None:
    """Drop and re-create the database (same character set and collation), then load the dump."""
    name = dbc.quote_ident(database.name)
    conn = dbc.connect(database.connection, database.restore_user)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
                " WHERE SCHEMA_NAME = %s",
                (database.name,),
            )
            row = cur.fetchone()
            charset, collation = row if row else ("utf8mb4", None)
            if not (_WORD.fullmatch(charset or "") and _WORD.fullmatch(collation or "x")):
                raise JobError(f"unexpected character set {charset!r} / collation {collation!r}")
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
            collate = f" COLLATE {collation}" if collation else ""
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET {charset}{collate}")
    finally:
        conn.close()
    load_file(
        config.client_command,
        database.connection,
        database.restore_user,
        database.name,
        path,
        timeout=database.dump_timeout,
    )


def check_restored(database: Database, verified: VerifyResult) -> None:
    """The restored tables hold exactly the rows the verify load counted."""
    conn = dbc.connect(database.connection, database.restore_user)
    try:
        with conn.cursor() as cur:
            counts = dbc.table_counts(cur, database.name)
    finally:
        conn.close()
    if counts != verified.counts:
        diff = sorted(
            t for t in set(counts) | set(verified.counts) if counts.get(t) != verified.counts.get(t)
        )
        raise JobError(f"restored {database.name} differs from the verified load in: {', '.join(diff)}")
