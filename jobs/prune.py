"""prune: keep the last N backups and one a day for D days; never the newest verified one.

`plan()` is a pure function of (backups, now), so every edge case is tested with the
clock given to it. `run_prune()` applies a plan under the lock that backup and restore
hold, so nothing is deleted while they run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import manifest as mf
from .catalog import SAFETY_DIR, complete_backups, leftovers
from .config import Database
from .fsutil import fsync_dir
from .lock import DirLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """What retention needs to know of a backup."""

    name: str
    created: datetime
    verified_ok: bool = False


@dataclass
class Plan:
    keep: dict[str, list[str]] = field(default_factory=dict)  # name -> reasons
    delete: list[str] = field(default_factory=list)


def plan(backups: Sequence[Candidate], now: datetime, keep_last: int, keep_daily_days: int) -> Plan:
    """Which backups to keep (and why) and which to delete.

    - the newest `keep_last` (at least 1);
    - the newest backup of each of the last `keep_daily_days` UTC days, today included;
    - the newest backup whose verification succeeded, however old;
    - anything dated after `now` (a clock that went backwards is no reason to delete).
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    result = Plan()
    ordered = sorted(backups, key=lambda b: (b.created, b.name), reverse=True)

    def keep(b: Candidate, reason: str) -> None:
        result.keep.setdefault(b.name, []).append(reason)

    for b in ordered[:keep_last]:
        keep(b, "last")
    first_day = now.astimezone(UTC).date() - timedelta(days=keep_daily_days - 1)
    seen_days = set()
    for b in ordered:
        day = b.created.astimezone(UTC).date()
        if b.created > now:
            keep(b, "future")
        elif keep_daily_days > 0 and day >= first_day and day not in seen_days:
            seen_days.add(day)
            keep(b, "daily")
    newest_verified = next((b for b in ordered if b.verified_ok), None)
    if newest_verified is not None:
        keep(newest_verified, "newest-verified")
    result.delete = [b.name for b in ordered if b.name not in result.keep]
    return result


def plan_safety(names: Sequence[Candidate], keep: int) -> list[str]:
    """Safety dumps to delete: all but the newest `keep`."""
    ordered = sorted(names, key=lambda b: (b.created, b.name), reverse=True)
    return [b.name for b in ordered[max(1, keep) :]]


@dataclass
class PruneReport:
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def _remove_backup(directory: Path, name: str) -> None:
    # The manifest first: from that moment on it is no longer a backup for anyone.
    mf.manifest_path(directory / name).unlink(missing_ok=True)
    (directory / name).unlink(missing_ok=True)


def _candidates(directory: Path, database: str) -> list[Candidate]:
    return [
        Candidate(b.name, b.manifest.created, b.manifest.verified_ok)
        for b in complete_backups(directory, database)
    ]


def run_prune(
    database: Database,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    dry_run: bool = False,
    lock_wait: float = 0.0,
) -> PruneReport:
    """Apply retention to one database's backups and safety dumps; Locked while another job runs."""
    directory = database.directory
    report = PruneReport()
    if not directory.is_dir():
        return report
    with DirLock(directory, "prune", wait=lock_wait):
        r = database.retention
        p = plan(_candidates(directory, database.name), now(), r.keep_last, r.keep_daily_days)
        report.kept = sorted(p.keep, reverse=True)
        report.deleted = list(p.delete)
        safety = directory / SAFETY_DIR
        safety_delete = (
            plan_safety(_candidates(safety, database.name), r.keep_safety) if safety.is_dir() else []
        )
        junk = leftovers(directory, database.name) + (
            leftovers(safety, database.name) if safety.is_dir() else []
        )
        report.leftovers = [str(path.relative_to(directory)) for path in junk]
        report.deleted += [f"{SAFETY_DIR}/{name}" for name in safety_delete]
        if dry_run:
            return report
        for name in p.delete:
            _remove_backup(directory, name)
            log.info("deleted backup file=%s", name)
        for name in safety_delete:
            _remove_backup(safety, name)
            log.info("deleted safety dump file=%s", name)
        for path in junk:
            # Under the lock no job is writing, so these are the remains of killed ones.
            path.unlink(missing_ok=True)
            log.info("deleted leftover file=%s", path.name)
        fsync_dir(directory)
        if safety.is_dir():
            fsync_dir(safety)
    return report
