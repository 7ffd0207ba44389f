"""Which files in a database's backup directory are backups, and which are leftovers.

A backup is complete only when its dump and its manifest both exist and agree. Anything
else (a `.tmp-` file, a dump without manifest, a manifest without dump) is a leftover of a
job that was killed, and is never offered to verify, restore or the exporter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import manifest as mf
from .fsutil import TMP_PREFIX

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
SAFETY_DIR = "safety"


@dataclass(frozen=True)
class Backup:
    """A complete backup: its dump, its manifest file and what the manifest says."""

    path: Path
    manifest: mf.Manifest

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest_path(self) -> Path:
        return mf.manifest_path(self.path)


def complete_backups(directory: Path, database: str) -> list[Backup]:
    """Complete backups of `database` in `directory`, newest first."""
    found: list[Backup] = []
    if not directory.is_dir():
        return found
    for dump in directory.iterdir():
        parsed = mf.parse_backup_name(dump.name)
        if parsed is None or parsed[0] != database or not dump.is_file():
            continue
        mpath = mf.manifest_path(dump)
        if not mpath.is_file():
            continue
        try:
            manifest = mf.read(mpath)
        except mf.ManifestError as exc:
            log.warning("skipping backup with unreadable manifest file=%s error=%s", dump.name, exc)
            continue
        if manifest.file != dump.name or manifest.database != database:
            log.warning("skipping backup whose manifest names another file file=%s", dump.name)
            continue
        found.append(Backup(dump, manifest))
    found.sort(key=lambda b: (b.manifest.created, b.name), reverse=True)
    return found


def leftovers(directory: Path, database: str) -> list[Path]:
    """Files of killed jobs: `.tmp-*`, a dump without manifest, a manifest without dump.

    A dump whose manifest exists but cannot be read is left alone: that is damage for a
    person to look at, not the remains of an interrupted job.
    """
    if not directory.is_dir():
        return []
    out = []
    for path in directory.iterdir():
        if not path.is_file():
            continue
        name = path.name
        if name.startswith(TMP_PREFIX):
            out.append(path)
            continue
        parsed = mf.parse_backup_name(name)
        if parsed and parsed[0] == database and not mf.manifest_path(path).exists():
            out.append(path)
            continue
        dump_name = name.removesuffix(mf.MANIFEST_SUFFIX)
        parsed = mf.parse_backup_name(dump_name) if dump_name != name else None
        if parsed and parsed[0] == database and not (directory / dump_name).exists():
            out.append(path)
    return sorted(out)
