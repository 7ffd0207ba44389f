"""prune: keep the last N backups and one a day for D days; never the newest verified one.

`plan()` is a pure function of (backups, now), so every edge case is tested with the
clock given to it. `run_prune()` applies a plan under the lock that backup and restore
hold, so nothing is deleted while they run.

A clock cannot fool it: when `now` is further than `max_clock_gap` past the newest backup
and the plan by the clock deletes more than the plan at the newest backup's time would,
the run deletes nothing and says why (`clock_refusal`): one run with the clock 30 days
ahead deleted 66 of 78 backups. A complete dump without a manifest is kept and reported
(`orphans`), never deleted silently. Safety dumps are kept by age (`keep_safety_for`) as
well as by number, and one newer than the newest backup is never deleted: it may hold the
only copy of rows written since.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import manifest as mf
from .catalog import SAFETY_DIR, complete_backups, leftovers
from .config import Database, Retention
from .fsutil import TMP_PREFIX, fsync_dir
from .known_good import span
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


def plan_safety(
    dumps: Sequence[Candidate],
    keep: int,
    now: datetime | None = None,
    keep_for: float = 0.0,
    newest_backup: datetime | None = None,
) -> list[str]:
    """Safety dumps to delete: not among the newest `keep`, older than `keep_for` seconds, and
    not newer than `newest_backup` (such a dump may hold the only copy of newer rows)."""
    ordered = sorted(dumps, key=lambda b: (b.created, b.name), reverse=True)
    out = []
    for b in ordered[max(1, keep) :]:
        if now is not None and (now - b.created).total_seconds() < keep_for:
            continue
        if newest_backup is None or b.created > newest_backup:
            continue
        out.append(b.name)
    return out


def clock_refusal(backups: Sequence[Candidate], now: datetime, retention: Retention) -> str:
    """'' when `now` may be trusted to delete by; else why this run deletes nothing."""
    present = [b for b in backups if b.created <= now]
    if not present:
        return ""
    newest = max(present, key=lambda b: (b.created, b.name))
    gap = (now - newest.created).total_seconds()
    if gap <= retention.max_clock_gap:
        return ""
    by_clock = plan(backups, now, retention.keep_last, retention.keep_daily_days)
    by_newest = plan(backups, newest.created, retention.keep_last, retention.keep_daily_days)
    if set(by_clock.delete) <= set(by_newest.delete):
        return ""
    return (
        f"the clock ({mf.iso(now)}) is {span(gap)} past the newest backup ({newest.name}),"
        f" more than max_clock_gap {span(retention.max_clock_gap)}: by the clock prune would delete"
        f" {len(by_clock.delete)} of {len(backups)} backups, at the newest backup's time"
        f" {len(by_newest.delete)}; nothing deleted (check the clock, or take a backup first)"
    )


@dataclass
class PruneReport:
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    refused: str = ""


def _remove_backup(directory: Path, name: str) -> None:
    # The manifest first: from that moment on it is no longer a backup for anyone.
    mf.manifest_path(directory / name).unlink(missing_ok=True)
    (directory / name).unlink(missing_ok=True)


def _candidates(directory: Path, database: str) -> list[Candidate]:
    return [
        Candidate(b.name, b.manifest.created, b.manifest.trusted)
        for b in complete_backups(directory, database)
    ]


def _split_leftovers(directory: Path, database: str) -> tuple[list[Path], list[Path]]:
    """(files of killed jobs to delete, complete dumps without a manifest to keep and report).

    Under the lock a named dump without its manifest is whole: backup renames it from its
    `.tmp-` name only after mariadb-dump and gzip succeeded. `restore --file` can use it.
    """
    junk: list[Path] = []
    orphans: list[Path] = []
    for path in leftovers(directory, database):
        is_dump = mf.parse_backup_name(path.name) is not None and not path.name.startswith(TMP_PREFIX)
        (orphans if is_dump else junk).append(path)
    return junk, orphans


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
        at = now()
        candidates = _candidates(directory, database.name)
        p = plan(candidates, at, r.keep_last, r.keep_daily_days)
        report.kept = sorted(p.keep, reverse=True)
        safety = directory / SAFETY_DIR
        junk, orphans = _split_leftovers(directory, database.name)
        if safety.is_dir():
            more_junk, more_orphans = _split_leftovers(safety, database.name)
            junk, orphans = junk + more_junk, orphans + more_orphans
        report.leftovers = [str(path.relative_to(directory)) for path in junk]
        report.orphans = [str(path.relative_to(directory)) for path in orphans]
        for path in orphans:
            log.warning("kept a complete dump without manifest file=%s", path.relative_to(directory))
        report.refused = clock_refusal(candidates, at, r)
        if report.refused:
            log.error("prune refused database=%s reason=%r", database.name, report.refused)
            return report
        newest = max((c.created for c in candidates if c.created <= at), default=None)
        safety_delete = (
            plan_safety(_candidates(safety, database.name), r.keep_safety, at, r.keep_safety_for, newest)
            if safety.is_dir()
            else []
        )
        report.deleted = list(p.delete) + [f"{SAFETY_DIR}/{name}" for name in safety_delete]
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
