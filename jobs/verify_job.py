"""The verify job: which backups to check, against what, and what to report.

Under the database's lock it first drops the scratch databases a killed verify left, then
checks the chosen backups oldest first, each against the backup trusted before it, so that
with `--all` one run settles a whole chain. Backups dated in the future beyond the skew
are never verified (nor picked as "the newest"): they are reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import db as dbc
from .catalog import Backup, complete_backups
from .config import Database, JobsConfig
from .errors import NoValidBackup, UsageError
from .known_good import future_dated_reason, reference_for, split_future, utcnow
from .lock import DirLock
from .manifest import SUSPICIOUS, TRUSTED
from .scratch import drop_verify_leftovers
from .verify import FAILED, VerifyResult, record, verify_backup

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """The verify job's one JSON line."""

    database: str
    backups: list[dict[str, str]] = field(default_factory=list)
    future_dated: list[dict[str, str]] = field(default_factory=list)
    scratch_dropped: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def status(self) -> str:
        states = {b["status"] for b in self.backups}
        return FAILED if FAILED in states else "suspicious" if "suspicious" in states else "ok"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": "verify", "database": self.database, "status": self.status}
        if self.error:
            out["error"] = self.error
        out["backups"] = self.backups
        for key in ("future_dated", "scratch_dropped"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def drop_leftovers(database: Database) -> list[str]:
    """Drop the scratch databases of `database` a killed verify left (with the verify account)."""
    conn = dbc.connect(database.connection, database.verify_user)
    try:
        with conn.cursor() as cur:
            return drop_verify_leftovers(cur, database.name)
    finally:
        conn.close()


def _choose(
    backups: list[Backup], present: list[Backup], file: str | None, every: bool, now, skew
) -> list[Backup]:
    if file:
        # The name is matched against the catalogue: it never becomes a path by itself.
        named = [b for b in backups if b.name == file]
        if not named:
            raise UsageError(f"no complete backup named {file!r}")
        reason = future_dated_reason(named[0], now, skew)
        if reason:
            raise NoValidBackup(f"{file} is {reason}")
        return named
    return list(reversed(present)) if every else present[:1]


def run_verify(
    config: JobsConfig,
    database: Database,
    file: str | None = None,
    every: bool = False,
    lock_wait: float = 0.0,
    now: Callable[[], datetime] = utcnow,
    accept: bool = False,
) -> VerifyReport:
    """Verify the newest backup (or `file`, or every one); the report says how each fared."""
    report = VerifyReport(database.name)
    if not database.directory.is_dir():
        raise NoValidBackup(f"no backup directory for {database.name}: {database.directory}")
    with DirLock(database.directory, "verify", lock_wait):
        report.scratch_dropped = drop_leftovers(database)
        backups = complete_backups(database.directory, database.name)
        at = now()
        skew = database.trust.future_skew
        present, future = split_future(backups, at, skew)
        report.future_dated = [{"file": b.name, "reason": future_dated_reason(b, at, skew)} for b in future]
        for b in future:
            log.warning("ignoring future-dated backup file=%s", b.name)
        chosen = _choose(backups, present, file, every, at, skew)
        if not chosen:
            ignored = f" ({len(future)} dated in the future ignored)" if future else ""
            raise NoValidBackup(f"no complete backup of {database.name} in {database.directory}{ignored}")
        current = {b.name: b for b in present}
        for backup in chosen:
            reference = reference_for(list(current.values()), backup)
            result = verify_backup(config, database, backup, reference)
            if accept and result.status == SUSPICIOUS:
                log.warning("suspicious backup accepted file=%s reason=%r", backup.name, result.reason)
                result = VerifyResult(TRUSTED, f"accepted by a person: {result.reason}", result.counts)
            current[backup.name] = record(backup, result, now)
            report.backups.append({"file": backup.name, "status": result.status, "reason": result.reason})
    bad = [b for b in report.backups if b["status"] != TRUSTED]
    if len(bad) == 1 and len(report.backups) == 1:
        report.error = f"{bad[0]['file']} {bad[0]['status']}: {bad[0]['reason']}"
    elif bad:
        report.error = (
            f"{len(bad)} of {len(report.backups)} backups of {database.name} failed or are suspicious"
        )
    return report
