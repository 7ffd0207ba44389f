"""Backup names and the manifest beside each dump (the format the exporter reads).

`<database>-<YYYYmmddTHHMMSSZ>.sql.gz` and `<same>.sql.gz.json`:
{"format": 1, "database": "petclinic", "file": "petclinic-20261124T093000Z.sql.gz",
 "created": "2026-11-24T09:30:00Z", "size_bytes": 12345, "sha256": "...",
 "tables": {"owners": 10}, "verified": null | {"at": "...Z", "ok": true, "reason": ""}}
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
        }

    def with_verification(self, verification: Verification) -> Manifest:
        return replace(self, verified=verification)

    @property
    def verified_ok(self) -> bool:
        return bool(self.verified and self.verified.ok)

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse a manifest; ManifestError names what is wrong."""
        try:
            if data["format"] != FORMAT:
                raise ManifestError(f"unsupported manifest format {data['format']!r}")
            verified = data.get("verified")
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
