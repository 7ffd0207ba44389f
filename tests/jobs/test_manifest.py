"""Backup names, the manifest format of docs/design.md, and what counts as a complete backup."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stackmedic.jobs import manifest as mf
from stackmedic.jobs.catalog import complete_backups, leftovers

WHEN = datetime(2026, 11, 24, 9, 30, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def make_backup(
    directory: Path, database: str, when: datetime, verified: mf.Verification | None = None
) -> Path:
    dump = directory / mf.backup_name(database, when)
    dump.write_bytes(b"not really gzip")
    manifest = mf.Manifest(database, dump.name, when, 15, "0" * 64, {"owners": 10}, verified)
    mf.write(mf.manifest_path(dump), manifest)
    return dump


def test_names_carry_database_and_utc_time():
    assert mf.backup_name("petclinic", WHEN) == "petclinic-20261124T093000Z.sql.gz"
    assert mf.parse_backup_name("petclinic-20261124T093000Z.sql.gz") == ("petclinic", WHEN)
    assert mf.parse_backup_name("wp-blog-20261124T093000Z.sql.gz") == ("wp-blog", WHEN)


@pytest.mark.parametrize(
    "name",
    [
        ".tmp-petclinic-20261124T093000Z.sql.gz",
        "petclinic-20261124T093000Z.sql.gz.json",
        "petclinic-20261124T093000Z.sql",
        "petclinic-20261324T093000Z.sql.gz",  # month 13
        "../petclinic-20261124T093000Z.sql.gz",
        "petclinic.sql.gz",
    ],
)
def test_other_names_are_not_backups(name: str):
    assert mf.parse_backup_name(name) is None


def test_manifest_matches_the_format_in_design_md(tmp_path: Path):
    dump = make_backup(tmp_path, "petclinic", WHEN, mf.Verification(WHEN, True, ""))
    written = json.loads(mf.manifest_path(dump).read_text())
    design = (REPO / "docs" / "design.md").read_text()
    example = re.search(r'```json\n(\{"format".*?)\n```', design, re.S).group(1)
    keys = list(dict.fromkeys(re.findall(r'"(\w+)":', example)))  # in order, once each
    nested = ("owners", "pets", "at", "ok", "reason", "position", "gtid")
    assert list(written) == [k for k in keys if k not in nested]
    assert written["created"] == "2026-11-24T09:30:00Z"
    assert written["verified"] == {"at": "2026-11-24T09:30:00Z", "ok": True, "reason": ""}
    assert mf.read(mf.manifest_path(dump)) == mf.Manifest.from_json(written)


def test_a_manifest_without_its_fields_is_an_error(tmp_path: Path):
    path = tmp_path / "x.sql.gz.json"
    path.write_text('{"format": 1, "database": "petclinic"}')
    with pytest.raises(mf.ManifestError, match="invalid manifest: KeyError\\('file'\\)"):
        mf.read(path)
    path.write_text('{"format": 2}')
    with pytest.raises(mf.ManifestError, match="unsupported manifest format 2"):
        mf.read(path)


def test_complete_backups_newest_first_and_leftovers_apart(tmp_path: Path):
    older = make_backup(tmp_path, "petclinic", WHEN)
    newer = make_backup(tmp_path, "petclinic", WHEN.replace(hour=11))
    make_backup(tmp_path, "wordpress", WHEN)  # another database in the same folder
    tmp_dump = tmp_path / ".tmp-petclinic-20261124T133000Z.sql.gz"
    tmp_dump.write_bytes(b"half")
    orphan_dump = tmp_path / "petclinic-20261124T153000Z.sql.gz"  # killed before its manifest
    orphan_dump.write_bytes(b"whole")
    orphan_manifest = tmp_path / "petclinic-20261123T093000Z.sql.gz.json"  # its dump deleted
    orphan_manifest.write_text("{}")
    assert [b.path for b in complete_backups(tmp_path, "petclinic")] == [newer, older]
    assert leftovers(tmp_path, "petclinic") == sorted([tmp_dump, orphan_dump, orphan_manifest])


def test_a_manifest_that_names_another_file_or_cannot_be_read_is_no_backup(tmp_path: Path, caplog):
    dump = make_backup(tmp_path, "petclinic", WHEN)
    other = make_backup(tmp_path, "petclinic", WHEN.replace(hour=10))
    mf.manifest_path(other).write_text(mf.manifest_path(dump).read_text())  # copied manifest
    broken = make_backup(tmp_path, "petclinic", WHEN.replace(hour=11))
    mf.manifest_path(broken).write_text('{"format": 1, "database": ')
    assert [b.path for b in complete_backups(tmp_path, "petclinic")] == [dump]
    # damage is for a person to look at: not removed as a leftover
    assert leftovers(tmp_path, "petclinic") == []
    assert "unreadable manifest" in caplog.text


def test_manifest_rewrite_is_atomic_and_leaves_no_tmp(tmp_path: Path):
    dump = make_backup(tmp_path, "petclinic", WHEN)
    backup = complete_backups(tmp_path, "petclinic")[0]
    mf.write(
        backup.manifest_path,
        backup.manifest.with_verification(mf.Verification(WHEN, False, "checksum mismatch")),
    )
    assert mf.read(mf.manifest_path(dump)).verified == mf.Verification(WHEN, False, "checksum mismatch")
    assert sorted(p.name for p in tmp_path.iterdir()) == [dump.name, dump.name + ".json"]


def test_a_manifest_from_before_trust_status_reads_as_trusted_when_verified(tmp_path: Path):
    dump = make_backup(tmp_path, "petclinic", WHEN, mf.Verification(WHEN, True, ""))
    path = mf.manifest_path(dump)
    data = json.loads(path.read_text())
    for key in ("status", "status_reason", "binlog"):
        del data[key]
    path.write_text(json.dumps(data))
    old = mf.read(path)
    assert (old.trusted, old.verify_status, old.binlog) == (True, "ok", None)
    data["verified"] = None
    path.write_text(json.dumps(data))
    assert (mf.read(path).trusted, mf.read(path).verify_status) == (False, "unverified")
    data["status"] = "maybe"
    path.write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match="invalid manifest: unknown status 'maybe'"):
        mf.read(path)
