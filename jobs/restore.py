"""restore: rebuild what is broken in a scratch schema, check it, swap it in atomically.

1. Under the lock: finish a swap a killed run left, expire old rollback points, drop
   scratch schemas of killed runs.
2. Scope: `--tables`, `--whole`, or by default the required tables that are missing or
   empty (the whole database when it is gone). Every other table is never touched.
3. The newest trusted backup that has those tables (or `--file`), checksum checked, is
   loaded (only those tables) into `stackmedic_restore_load_*`; with binary logs, the
   events after the backup are replayed into it up to the destructive statement
   (jobs/pitr.py). The load is checked: every table there, required ones with rows.
4. Refuses if a table it would replace was written meanwhile (checksums); then one
   RENAME TABLE swaps the tables in (jobs/swap.py); the displaced ones become a rollback
   point, kept `rollback_keep`; `stackmedic-job rollback` swaps them back.

A kill at any instant leaves the live database as it was, or fully restored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import db as dbc
from . import manifest as mf
from . import objects as ob
from . import schemas
from . import swap as sw
from .catalog import SAFETY_DIR, Backup, complete_backups
from .config import Database, JobsConfig
from .errors import JobError, LoadError, NoValidBackup, UsageError
from .known_good import restore_candidates
from .load import load_file
from .lock import DirLock
from .progress import Progress
from .safety import safety_dump
from .verify import FAILED, VerifyResult, check_file, record

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RestoreOptions:
    """What the command line asked for."""

    tables: list[str] | None = None
    whole: bool = False
    file: str | None = None
    until: datetime | None = None
    dry_run: bool = False
    lock_wait: float = 0.0


@dataclass
class RestoreReport:
    """What a restore did, or why it refused; printed as the job's one JSON line."""

    database: str
    dry_run: bool = False
    command: str = "restore"
    status: str = "running"  # ok, nothing-to-do, dry-run, refused, failed
    error: str = ""
    restored_from: str | None = None
    backup_created: datetime | None = None
    tables: list[str] = field(default_factory=list)
    replayed_events: int | None = None
    lost_window: dict[str, str] | None = None
    rollback_point: str | None = None
    safety_dump: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    restored: bool = False

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The contract of docs/design.md: keys without a value are left out."""
        out: dict[str, Any] = {"status": self.status, "command": self.command, "database": self.database}
        if self.error:
            out["error"] = self.error
        if self.restored and self.restored_from:
            out["restored_from"] = self.restored_from
        elif self.dry_run and self.restored_from:
            out["would_restore_from"] = self.restored_from
        if self.backup_created:
            out["backup_created"] = mf.iso(self.backup_created)
            age = ((now or utcnow()) - self.backup_created).total_seconds()
            out["backup_age_seconds"] = int(age)
        if self.tables:
            out["tables"] = self.tables
        for key in ("replayed_events", "lost_window", "rollback_point", "safety_dump"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def run_restore(
    config: JobsConfig,
    database: Database,
    report: RestoreReport,
    options: RestoreOptions | None = None,
    now: Callable[[], datetime] = utcnow,
) -> RestoreReport:
    """Restore what is broken in `database`; raise a JobError (live database unchanged) to refuse."""
    options = options or RestoreOptions(dry_run=report.dry_run)
    dbc.check_server(database.connection, database.restore_user)
    directory = database.directory
    if not directory.is_dir():
        raise NoValidBackup(f"no complete backup of {database.name} in {directory}")
    with DirLock(directory, "restore", wait=options.lock_wait):
        conn = dbc.connect(database.connection, database.restore_user)
        try:
            with conn.cursor() as cur:
                if not options.dry_run:
                    tidy(cur, database, now)
                return _restore(config, database, report, options, cur, now)
        finally:
            conn.close()


def tidy(cursor, database: Database, now: Callable[[], datetime] = utcnow) -> None:
    """Finish interrupted swaps, drop scratch schemas of killed runs, expire old rollback points."""
    sw.finish_interrupted(cursor, database.name)
    for schema in schemas.owned(cursor, database.name, schemas.LOAD):
        log.info("dropping the scratch copy of a killed restore schema=%s", schema.name)
        schemas.drop(cursor, schema.name)
    for point in schemas.owned(cursor, database.name, schemas.ROLLBACK):
        if (now() - point.created).total_seconds() > database.rollback_keep:
            log.info("rollback point expired schema=%s created=%s", point.name, mf.iso(point.created))
            schemas.drop(cursor, point.name)


def broken_tables(cursor, database: Database) -> list[str] | None:
    """Required tables that are missing or empty; None when the database itself is gone."""
    if not dbc.database_exists(cursor, database.name):
        return None
    present = set(dbc.base_tables(cursor, database.name))
    broken = []
    for table in database.required_tables:
        if table not in present:
            broken.append(table)
            continue
        cursor.execute(f"SELECT EXISTS(SELECT 1 FROM {sw.q(database.name, table)})")  # noqa: S608
        if not cursor.fetchone()[0]:
            broken.append(table)
    return broken


def _scope(cursor, database: Database, options: RestoreOptions) -> tuple[list[str] | None, str]:
    """(tables to restore or None for the whole database, why)."""
    if options.whole:
        return None, "asked for the whole database"
    if options.tables:
        return sorted(set(options.tables)), "asked for these tables"
    broken = broken_tables(cursor, database)
    if broken is None:
        return None, "the database is gone"
    if not database.required_tables:
        return None, "no required_tables configured: the whole database"
    return broken, "required tables missing or empty"


def candidates(database: Database, options: RestoreOptions, needed: list[str] | None) -> list[Backup]:
    """Backups to try, newest first: `--file` (a backup or a safety dump), or those holding `needed`."""
    directory = database.directory
    if options.file:
        pool = complete_backups(directory, database.name) + complete_backups(
            directory / SAFETY_DIR, database.name
        )
        name = options.file.removeprefix(f"{SAFETY_DIR}/")
        chosen = [b for b in pool if b.name == name]
        if not chosen:
            raise UsageError(f"no complete backup or safety dump named {options.file!r} for {database.name}")
        return chosen[:1]
    return complete_backups(directory, database.name)


def trusted(database: Database, options: RestoreOptions, report: RestoreReport, now) -> list[Backup]:
    """Candidates with the untrusted ones (future-dated, failed, suspicious: jobs/known_good.py) reported."""
    if options.file:
        return candidates(database, options, None)
    found = restore_candidates(database, now())
    report.skipped.extend(found.skipped)
    return found.usable


def _unusable(backup: Backup, needed: list[str] | None) -> str:
    """Why `backup` cannot serve this restore ('' when it can)."""
    if needed:
        lacking = [t for t in needed if t not in backup.manifest.tables]
        if lacking:
            return f"lacks table {', '.join(lacking)}"
    return ""


def _restore(config, database, report, options, cur, now) -> RestoreReport:
    scope, why = _scope(cur, database, options)
    if scope == []:
        report.status = "nothing-to-do"
        log.info("every required table is present with rows database=%s", database.name)
        return report
    log.info("restore scope database=%s tables=%s why=%s", database.name, scope or "all", why)
    backups = trusted(database, options, report, now)
    if not backups:
        raise NoValidBackup(f"no complete backup of {database.name} in {database.directory}")
    for backup in backups:
        reason = "" if options.file else _unusable(backup, scope)
        if not reason:
            reason = check_file(backup)
            if reason and not options.dry_run and backup.path.parent == database.directory:
                record(backup, VerifyResult(FAILED, reason), now)
        if reason:
            log.warning("skipping backup file=%s reason=%s", backup.name, reason)
            report.skipped.append({"file": backup.name, "reason": reason})
            continue
        report.restored_from = backup.name
        report.backup_created = backup.manifest.created
        if options.dry_run:
            report.status = "dry-run"
            report.tables = scope or sorted(backup.manifest.tables)
            return report
        try:
            return _from_backup(config, database, report, options, cur, backup, scope, now)
        except LoadError as exc:
            reason = str(exc)
            if not options.file and backup.path.parent == database.directory:
                record(backup, VerifyResult(FAILED, reason), now)
            log.warning("skipping backup file=%s reason=%s", backup.name, reason)
            report.skipped.append({"file": backup.name, "reason": reason})
            report.restored_from = report.backup_created = None
    what = f"none of the {len(backups)} backups of {database.name}"
    raise NoValidBackup(f"{what} can be restored{' (' + ', '.join(scope) + ')' if scope else ''}")


def _from_backup(config, database, report, options, cur, backup, scope, now) -> RestoreReport:
    live = database.name
    exists = dbc.database_exists(cur, live)
    live_tables = set(dbc.base_tables(cur, live)) if exists else set()
    incoming = sorted(scope) if scope else sorted(backup.manifest.tables)
    displaced = sorted(live_tables & set(incoming)) if scope else sorted(live_tables)
    before = checksums(cur, live, displaced)
    end = _end_of_log(database)
    if displaced and config_safety(database):
        report.safety_dump = safety_dump(config, database, displaced, now)
    load = schemas.create(cur, schemas.LOAD, live, now(), backup=backup.name)
    try:
        progress = Progress(f"restore {live}: load", backup.manifest.size_bytes)
        load_file(
            config.client_command,
            database.connection,
            database.restore_user,
            load,
            backup.path,
            timeout=database.dump_timeout,
            tables=set(incoming) if scope else None,
            progress=progress,
        )
        progress.finish()
        _replay(config, database, report, options, backup, load, incoming if scope else None, end)
        if not scope:  # the whole database: with the tables the replay created after the backup
            missing = check_load(cur, database, load, incoming, rows_required=not options.file)
            incoming = sorted(dbc.base_tables(cur, load)) if not missing else incoming
        problem = check_load(cur, database, load, incoming, rows_required=not options.file)
        if problem:
            raise LoadError(problem)
        if not exists:
            cur.execute(f"CREATE DATABASE {dbc.quote_ident(live)} CHARACTER SET utf8mb4")
        if checksums(cur, live, displaced) != before:
            raise JobError(
                f"tables of {live} were written during the restore, nothing was replaced:"
                " stop the application's writes, or restore only the broken tables"
            )
        report.tables = incoming
        try:
            report.rollback_point = swap_in(
                cur, live, load, incoming, displaced, scope is None, backup.name, now
            )
        except sw.SwapIncomplete:
            report.restored = True  # the data is in: say so, and that the rest is pending
            raise
        report.restored = True
    finally:
        _cleanup(cur, load)
    report.status = "ok"
    return report


def _cleanup(cursor, load: str) -> None:
    """Drop the scratch copy; a failure here is a leftover for the next run, not a failed restore."""
    try:
        schemas.drop(cursor, load)
    except Exception as exc:  # noqa: BLE001 - the next run's tidy() drops it
        log.warning("scratch copy left behind schema=%s error=%s", load, exc)


def _end_of_log(database: Database) -> tuple[str, int] | None:
    from . import pitr

    try:
        return pitr.end_of_log(database) if database.pitr else None
    except LoadError as exc:
        log.warning("no binary log position: %s", exc)
        return None


def config_safety(database: Database) -> bool:
    return getattr(database, "safety_dump", True)


def _replay(config, database, report, options, backup, load, tables, end) -> None:
    """Point-in-time recovery into `load` when the server keeps binary logs (jobs/pitr.py)."""
    from . import pitr

    result = pitr.recover(config, database, backup, load, tables, until=options.until, end=end)
    report.replayed_events = result.replayed_events
    report.lost_window = result.lost_window


def check_load(cursor, database: Database, load: str, incoming: list[str], rows_required: bool = True) -> str:
    """'' when every incoming table is in the load, required ones with rows (unless a person chose the file)."""
    present = set(dbc.base_tables(cursor, load))
    missing = [t for t in incoming if t not in present]
    if missing:
        return f"tables missing after the load: {', '.join(missing)}"
    for table in database.required_tables if rows_required else ():
        if table in incoming:
            cursor.execute(f"SELECT EXISTS(SELECT 1 FROM {sw.q(load, table)})")  # noqa: S608
            if not cursor.fetchone()[0]:
                return f"required table {table} has no rows after the load"
    return ""


def checksums(cursor, schema: str, tables: list[str]) -> dict[str, int | None]:
    """CHECKSUM TABLE of `tables`: a write between two calls changes it."""
    if not tables:
        return {}
    cursor.execute("CHECKSUM TABLE " + ", ".join(sw.q(schema, t) for t in tables))
    return {row[0]: row[1] for row in cursor.fetchall()}


def swap_in(cursor, live, source, incoming, displaced, whole, origin, now) -> str:
    """Swap `incoming` tables of `source` into `live`; returns the rollback point's name."""
    in_objects = ob.triggers(cursor, source, set(incoming))
    out_objects = ob.triggers(cursor, live, set(displaced))
    if whole:
        in_objects += ob.schema_objects(cursor, source)
        out_objects += ob.schema_objects(cursor, live)
    point = schemas.create(
        cursor, schemas.ROLLBACK, live, now(), state="swapping", source=source, origin=origin, whole=whole
    )
    plan = sw.Plan(live, source, point, incoming, displaced, whole, in_objects, out_objects)
    try:
        sw.swap(cursor, plan)
    except sw.SwapIncomplete:
        raise
    except JobError:
        schemas.drop(cursor, point)
        raise
    schemas.mark_done(cursor, live, point)
    return point
