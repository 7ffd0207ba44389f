"""Backups on disk, read from the manifests the backup job writes (docs/design.md).

`<directory>/<db>/<db>-<YYYYmmddTHHMMSSZ>.sql.gz` with its manifest beside it
(`.sql.gz.json`). A backup is complete only when its manifest exists and names a dump
that exists; `.tmp-*` files are work in progress. Manifests are cached by (mtime, size),
so a scrape reads only new or re-verified ones. Sample::

    stackmedic_backups_complete{database="petclinic"} 14
    stackmedic_backup_newest_timestamp_seconds{database="petclinic"} 1.7e+09
    stackmedic_backup_newest_verified_timestamp_seconds{database="petclinic"} 1.7e+09
    stackmedic_backup_newest_size_bytes{database="petclinic"} 12345
    stackmedic_backup_newest_verify_status{database="petclinic",status="ok"} 1
    stackmedic_backups_future_dated{database="petclinic"} 0

The newest backup's own verification is reported (ok, failed, suspicious, unverified; none
when there is no backup yet): a corrupt newest backup is seen when it is made, not when a
restore needs it. A backup dated more than `future_skew` after the exporter's clock is
left out of every other series and counted in `backups_future_dated`: stamped 400 days
ahead by a clock jump, it would otherwise be "the newest" and keep StackBackupStale quiet
for 400 days (restore and verify ignore it too). "Newest verified" means verified and not
suspicious (the jobs' `trusted`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".sql.gz.json"

NEWEST = MetricSpec(
    "backup_newest_timestamp_seconds",
    "gauge",
    "Creation time of the newest complete backup, 0 when none.",
    ("database",),
)
NEWEST_VERIFIED = MetricSpec(
    "backup_newest_verified_timestamp_seconds",
    "gauge",
    "Creation time of the newest backup verified OK, 0 when none verified.",
    ("database",),
)
COMPLETE = MetricSpec("backups_complete", "gauge", "Complete backups (those with a manifest).", ("database",))
NEWEST_SIZE = MetricSpec(
    "backup_newest_size_bytes", "gauge", "Size of the newest complete backup, 0 when none.", ("database",)
)

FUTURE_DATED = MetricSpec(
    "backups_future_dated",
    "gauge",
    "Complete backups dated further in the future than the allowed clock skew (ignored by the other series).",
    ("database",),
)
FUTURE_SKEW = 300.0  # the jobs' default trust.future_skew

VERIFY_STATUSES = ("ok", "failed", "suspicious", "unverified", "none")
VERIFY_STATUS = MetricSpec(
    "backup_newest_verify_status",
    "gauge",
    "1 for the verification status of the newest complete backup (none: no backup), 0 for the others.",
    ("database", "status"),
)


@dataclass(frozen=True)
class Backup:
    """What the exporter needs of one manifest."""

    created: float
    size: int
    verified_ok: bool
    verify_status: str = "unverified"


def verify_status(data: dict) -> str:
    """ok, failed, suspicious or unverified, as the jobs' Manifest.verify_status says it."""
    verified = data.get("verified")
    if not verified:
        return "unverified"
    if verified.get("ok") is not True:
        return "failed"
    return "suspicious" if data.get("status") == "suspicious" else "ok"


def parse_time(text: str) -> float:
    """'2026-11-24T09:30:00Z' -> seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_manifest(path: Path, database: str) -> Backup:
    """A Backup from its manifest; ValueError/KeyError/OSError when it is not a valid one."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != 1 or data.get("database") != database:
        raise ValueError("not a format 1 manifest of this database")
    if data.get("file") != path.name[: -len(".json")]:
        raise ValueError("manifest names another file")
    verified = data.get("verified") or {}
    return Backup(
        parse_time(data["created"]), int(data["size_bytes"]), verified.get("ok") is True, verify_status(data)
    )


class BackupsCheck(Check):
    """Count, newest, newest verified and newest size of each database's backups."""

    kind = "backups"
    metrics = (NEWEST, NEWEST_VERIFIED, COMPLETE, NEWEST_SIZE, VERIFY_STATUS, FUTURE_DATED)

    def __init__(
        self,
        directory: str,
        databases: Sequence[str] | None = None,
        timeout: float = 5.0,
        future_skew: float = FUTURE_SKEW,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__("backups", timeout)
        self.future_skew = future_skew
        self.clock = clock
        self.directory = Path(directory)
        self.databases = list(databases) if databases is not None else None
        self._cache: dict[str, tuple[tuple[int, int], Backup | None]] = {}
        self._known: list[str] = list(self.databases or [])

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        return [
            cls(section["directory"], section.get("databases"), section["timeout"], section["future_skew"])
        ]

    def _database_names(self) -> list[str]:
        if self.databases is not None:
            return self.databases
        # not configured: each folder is a database; once seen, a database stays reported
        try:
            found = sorted(
                e.name for e in os.scandir(self.directory) if e.is_dir() and not e.name.startswith(".")
            )
        except OSError:
            found = []
        self._known = sorted(set(self._known) | set(found))
        return self._known

    def run(self, out: Samples, deadline: Deadline) -> None:
        live: set[str] = set()
        horizon = self.clock() + self.future_skew
        for db in self._database_names():
            found = self._backups(db, live)
            backups = [b for b in found if b.created <= horizon]
            newest = max(backups, key=lambda b: b.created, default=None)
            verified = [b.created for b in backups if b.verify_status == "ok"]
            out.add(FUTURE_DATED, len(found) - len(backups), db)
            out.add(COMPLETE, len(backups), db)
            out.add(NEWEST, newest.created if newest else 0, db)
            out.add(NEWEST_VERIFIED, max(verified, default=0), db)
            out.add(NEWEST_SIZE, newest.size if newest else 0, db)
            status = newest.verify_status if newest else "none"
            for candidate in VERIFY_STATUSES:
                out.add(VERIFY_STATUS, 1 if candidate == status else 0, db, candidate)
        self._cache = {k: v for k, v in self._cache.items() if k in live}

    def _backups(self, db: str, live: set[str]) -> list[Backup]:
        # plain strings, not Path objects: this runs for every manifest at every scrape
        folder = f"{self.directory}/{db}"
        try:
            with os.scandir(folder) as found_entries:
                entries = {e.name: e for e in found_entries if not e.name.startswith(".tmp-")}
        except OSError:
            return []
        found = []
        prefix = f"{db}-"
        cache = self._cache
        for name, entry in entries.items():
            if not (name.startswith(prefix) and name.endswith(MANIFEST_SUFFIX)) or name[:-5] not in entries:
                continue  # not a manifest, or its dump is gone: not a backup
            key = f"{folder}/{name}"
            live.add(key)
            try:
                st = entry.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            cached = cache.get(key)
            if cached is None or cached[0] != stamp:
                try:
                    backup: Backup | None = read_manifest(Path(key), db)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("invalid backup manifest path=%s error=%s", key, exc)
                    backup = None
                cached = cache[key] = (stamp, backup)
            if cached[1] is not None:
                found.append(cached[1])
        return found

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        for db in self.databases if self.databases is not None else self._known:
            out.add(COMPLETE, 0, db)
            out.add(FUTURE_DATED, 0, db)
            out.add(NEWEST, 0, db)
            out.add(NEWEST_VERIFIED, 0, db)
            out.add(NEWEST_SIZE, 0, db)
            for candidate in VERIFY_STATUSES:  # unknown while the check fails: none of them
                out.add(VERIFY_STATUS, 0, db, candidate)
