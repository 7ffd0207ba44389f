"""Backup names and the manifest beside each dump (the format the exporter reads).

`<database>-<YYYYmmddTHHMMSSZ>.sql.gz` and `<same>.sql.gz.json`:
{"format": 1, "database": "petclinic", "file": "petclinic-20261124T093000Z.sql.gz",
 "created": "2026-11-24T09:30:00Z", "size_bytes": 12345, "sha256": "...",
 "tables": {"owners": 10}, "verified": null | {"at": "...Z", "ok": true, "reason": ""},
 "status": null | "ok" | "suspicious", "status_reason": "",
 "binlog": null | {"file": "binlog.000003", "position": 1234, "gtid": "0-1-42"}}

`verified` says whether the dump loads and holds the required tables; `status` whether it
deserves trust compared with the backup trusted before it (docs/jobs.md "Trust"). Both are
written by verify; a manifest of an older version (without `status` and `binlog`) still reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .fsutil import atomic_write_bytes

FORMAT = 1
SUFFIX = ".sql.gz"
MANIFEST_SUFFIX = ".json"
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME_RE = re.compile(r"^(?P<db>[a-z][a-z0-9_-]{0,62})-(?P<stamp>\d{8}T\d{6}Z)\.sql\.gz$")


class ManifestError(Exception):
    """A manifest that cannot be read or does not describe its dump."""


def backup_name(database: str, created: datetime) -> str:
    """petclinic, 2026-11-24 09:30 UTC -> petclinic-20261124T093000Z.sql.gz."""
    return f"{database}-{created.astimezone(UTC).strftime(_STAMP)}{SUFFIX}"


def parse_backup_name(filename: str) -> tuple[str, datetime] | None:
    """The database and UTC time a dump's name says, or None for any other name."""
    m = _NAME_RE.fullmatch(filename)
    if not m:
        return None
    try:
        when = datetime.strptime(m.group("stamp"), _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return m.group("db"), when


def manifest_path(dump: Path) -> Path:
    """The manifest beside a dump."""
    return dump.with_name(dump.name + MANIFEST_SUFFIX)


def iso(when: datetime) -> str:
    """UTC time as 2026-11-24T09:30:00Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Inverse of iso()."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Verification:
    at: datetime
    ok: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "ok": self.ok, "reason": self.reason}


TRUSTED = "ok"
SUSPICIOUS = "suspicious"
STATUSES = (TRUSTED, SUSPICIOUS)


@dataclass(frozen=True)
class BinlogPosition:
    """Binary log coordinates at the dump's snapshot (where point-in-time replay starts)."""

    file: str
    position: int
    gtid: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "position": self.position, "gtid": self.gtid}

    @classmethod
    def from_json(cls, data: Any) -> BinlogPosition:
        return cls(str(data["file"]), int(data["position"]), str(data.get("gtid") or ""))


@dataclass(frozen=True)
class Manifest:
    """What a backup contains, as recorded when it was made (and when it was last verified)."""

    database: str
    file: str
    created: datetime
    size_bytes: int
    sha256: str
    tables: dict[str, int] = field(default_factory=dict)
    verified: Verification | None = None
    status: str | None = None  # None until verify judged it; else one of STATUSES
    status_reason: str = ""
    binlog: BinlogPosition | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "database": self.database,
            "file": self.file,
            "created": iso(self.created),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "tables": dict(self.tables),
            "verified": self.verified.to_json() if self.verified else None,
            "status": self.status,
            "status_reason": self.status_reason,
            "binlog": self.binlog.to_json() if self.binlog else None,
        }

    def with_verification(
        self, verification: Verification, status: str = TRUSTED, status_reason: str = ""
    ) -> Manifest:
        """This manifest with verify's result: a failed verification has no trust status."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return replace(
            self,
            verified=verification,
            status=status if verification.ok else None,
            status_reason=status_reason if verification.ok else "",
        )

    @property
    def verified_ok(self) -> bool:
        """The dump loaded and held its required tables (it may still be suspicious)."""
        return bool(self.verified and self.verified.ok)

    @property
    def trusted(self) -> bool:
        """Verified and not suspicious: what restore may use and the next verify compares with."""
        return self.verified_ok and self.status == TRUSTED

    @property
    def verify_status(self) -> str:
        """ok, failed, suspicious or unverified (the exporter's stackmedic_backup_newest_verify_status)."""
        if self.verified is None:
            return "unverified"
        if not self.verified.ok:
            return "failed"
        return SUSPICIOUS if self.status == SUSPICIOUS else TRUSTED

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse a manifest; ManifestError names what is wrong."""
        try:
            if data["format"] != FORMAT:
                raise ManifestError(f"unsupported manifest format {data['format']!r}")
            verified = data.get("verified")
            status = data.get("status")
            if status is not None and status not in STATUSES:
                raise ManifestError(f"invalid manifest: unknown status {status!r}")
            binlog = data.get("binlog")
            return cls(
                database=str(data["database"]),
                file=str(data["file"]),
                created=parse_iso(data["created"]),
                size_bytes=int(data["size_bytes"]),
                sha256=str(data["sha256"]),
                tables={str(k): int(v) for k, v in data["tables"].items()},
                verified=(
                    Verification(
                        parse_iso(verified["at"]), bool(verified["ok"]), str(verified.get("reason", ""))
                    )
                    if verified
                    else None
                ),
                # Written before verify judged trust (no "status" key): verified means trusted.
                status=TRUSTED if "status" not in data and verified and verified["ok"] else status,
                status_reason=str(data.get("status_reason") or ""),
                binlog=BinlogPosition.from_json(binlog) if binlog else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"invalid manifest: {exc!r}") from None


def read(path: Path) -> Manifest:
    """Read the manifest at `path`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read {path.name}: {exc}") from None
    return Manifest.from_json(data)


def write(path: Path, manifest: Manifest) -> None:
    """Write (or atomically rewrite) the manifest at `path`."""
    text = json.dumps(manifest.to_json(), indent=1, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
