"""What is known good: the backups restore may use, and the image each service last ran with.

Backups (the API restore and verify read, docs/jobs.md "Trust"): a backup is trusted only
when verify loaded it, it held its required tables, and it did not lose a table or a large
share of a table's rows against the backup trusted before it (`status: ok`). A backup
dated further in the future than the configured skew is ignored everywhere (a clock that
jumped would otherwise make it "the newest" for a year).

Images: `<state_dir>/known-good.json`,
{"petclinic": {"image_id": "sha256:...", "image": "local/petclinic:latest", "at": "...Z"}}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .catalog import Backup, complete_backups
from .config import Database
from .fsutil import atomic_write_bytes, ensure_dir

FILE_NAME = "known-good.json"


def utcnow() -> datetime:
    return datetime.now(UTC)


def span(seconds: float) -> str:
    """3d 4h, 2h 5m, 40s: a duration for messages."""
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def future_dated_reason(backup: Backup, now: datetime, skew: float) -> str:
    """'' unless `backup` is dated more than `skew` seconds after `now`; else why it is ignored."""
    ahead = (backup.manifest.created - now).total_seconds()
    if ahead <= skew:
        return ""
    return (
        f"dated {span(ahead)} in the future ({backup.manifest.to_json()['created']}),"
        f" beyond the allowed clock skew of {span(skew)}: ignored"
    )


def split_future(backups: Sequence[Backup], now: datetime, skew: float) -> tuple[list[Backup], list[Backup]]:
    """(backups dated no later than now + skew, future-dated ones), order kept."""
    present: list[Backup] = []
    future: list[Backup] = []
    for b in backups:
        (future if future_dated_reason(b, now, skew) else present).append(b)
    return present, future


def reference_for(backups: Sequence[Backup], backup: Backup) -> Backup | None:
    """The newest trusted backup made before `backup`: what its row counts are compared with."""
    older = [b for b in backups if b.manifest.created < backup.manifest.created and b.manifest.trusted]
    return max(older, key=lambda b: (b.manifest.created, b.name), default=None)


def suspicion(counts: dict[str, int], reference: Backup | None, max_row_drop: float) -> str:
    """'' when `counts` (a loaded backup's rows per table) deserve trust against `reference`.

    Else the reason: each table of the reference that is missing, and each that lost more
    than `max_row_drop` of its rows.
    """
    if reference is None:
        return ""
    problems = []
    for table, before in sorted(reference.manifest.tables.items()):
        if table not in counts:
            problems.append(f"table {table} missing")
        elif before and counts[table] < before * (1 - max_row_drop):
            drop = 100 * (before - counts[table]) / before
            problems.append(f"{table} {before} -> {counts[table]} rows (-{drop:.1f}%)")
    if not problems:
        return ""
    return f"against {reference.name}: " + "; ".join(problems)


def skip_reason(backup: Backup, now: datetime, skew: float) -> str:
    """'' when restore may try `backup` (trusted or not yet verified); else why it must not."""
    reason = future_dated_reason(backup, now, skew)
    if reason:
        return reason
    m = backup.manifest
    if m.verify_status == "failed":
        return f"failed verification: {m.verified.reason if m.verified else 'unknown'}"
    if m.verify_status == "suspicious":
        return f"suspicious: {m.status_reason}"
    return ""


@dataclass(frozen=True)
class Candidates:
    """Backups restore may try, newest first, and those it must skip, each with its reason."""

    usable: list[Backup]
    skipped: list[dict[str, str]]


def restore_candidates(database: Database, now: datetime | None = None) -> Candidates:
    """The backups of `database` restore may try (newest first) and the skipped ones with reasons.

    An unverified backup is usable: restore verifies it first (and then asks `suspicion`).
    """
    now = now or utcnow()
    usable, skipped = [], []
    for b in complete_backups(database.directory, database.name):
        reason = skip_reason(b, now, database.trust.future_skew)
        if reason:
            skipped.append({"file": b.name, "reason": reason})
        else:
            usable.append(b)
    return Candidates(usable, skipped)


class KnownGood:
    """Read and record known-good image ids, one small JSON file per state directory."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / FILE_NAME

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a damaged state file only loses the rollback target, never the service
        return data if isinstance(data, dict) else {}

    def get(self, service: str) -> str | None:
        """The known-good image id of `service`, or None."""
        entry = self._load().get(service)
        return entry.get("image_id") if isinstance(entry, dict) else None

    def record(self, service: str, image_id: str, image: str | None) -> None:
        """Remember `image_id` as good for `service`."""
        data = self._load()
        data[service] = {
            "image_id": image_id,
            "image": image,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        ensure_dir(self.path.parent)
        atomic_write_bytes(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
