"""Backups read from manifests in the format of docs/design.md."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from stackmedic.exporter.checks.backups import BackupsCheck

from tests.exporter.helpers import scrape


def write_backup(
    folder,
    db: str,
    stamp: str,
    size: int = 100,
    verified: dict | None = None,
    manifest=True,
    status: str | None = None,
):
    """A dump and (unless manifest=False) its manifest, as the backup job leaves them."""
    d = folder / db
    d.mkdir(parents=True, exist_ok=True)
    name = f"{db}-{stamp}.sql.gz"
    (d / name).write_bytes(b"\x1f\x8b" + b"x" * size)
    created = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if manifest:
        doc = {
            "format": 1,
            "database": db,
            "file": name,
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size_bytes": size,
            "sha256": "0" * 64,
            "tables": {"owners": 10},
            "verified": verified,
        }
        if status is not None:
            doc["status"] = status
        (d / f"{name}.json").write_text(json.dumps(doc))
    return created.timestamp()


def values(reg, db: str) -> tuple:
    return tuple(
        reg.get_sample_value(f"stackmedic_{m}", {"database": db})
        for m in (
            "backups_complete",
            "backup_newest_timestamp_seconds",
            "backup_newest_verified_timestamp_seconds",
            "backup_newest_size_bytes",
        )
    )


def test_newest_count_size_and_verified(tmp_path):
    ok = {"at": "2026-11-24T10:00:00Z", "ok": True, "reason": ""}
    bad = {"at": "2026-11-24T10:00:00Z", "ok": False, "reason": "gunzip failed"}
    t1 = write_backup(tmp_path, "petclinic", "20261122T093000Z", size=10, verified=ok)
    write_backup(tmp_path, "petclinic", "20261123T093000Z", size=20, verified=bad)
    t3 = write_backup(tmp_path, "petclinic", "20261124T093000Z", size=30)
    reg = scrape([BackupsCheck(str(tmp_path), ["petclinic", "wordpress"])])
    assert values(reg, "petclinic") == (3, t3, t1, 30)
    # configured, nothing there: still reported
    assert values(reg, "wordpress") == (0, 0, 0, 0)


def statuses(reg, db: str) -> list[str]:
    """The statuses of stackmedic_backup_newest_verify_status at 1 (exactly one when known)."""
    return [
        s
        for s in ("ok", "failed", "suspicious", "unverified", "none")
        if reg.get_sample_value("stackmedic_backup_newest_verify_status", {"database": db, "status": s}) == 1
    ]


def test_the_newest_backup_s_verification_is_reported(tmp_path):
    ok = {"at": "2026-11-24T10:00:00Z", "ok": True, "reason": ""}
    bad = {"at": "2026-11-24T10:00:00Z", "ok": False, "reason": "gunzip failed"}
    write_backup(tmp_path, "petclinic", "20261122T093000Z", verified=ok, status="ok")
    write_backup(tmp_path, "petclinic", "20261123T093000Z", verified=bad)  # the newest: failed
    write_backup(tmp_path, "wordpress", "20261123T093000Z", verified=ok, status="suspicious")
    write_backup(tmp_path, "shop", "20261123T093000Z", verified=ok)  # before verify judged trust
    write_backup(tmp_path, "blog", "20261123T093000Z")
    check = BackupsCheck(str(tmp_path), ["petclinic", "wordpress", "shop", "blog", "new"])
    reg = scrape([check])
    assert {db: statuses(reg, db) for db in ("petclinic", "wordpress", "shop", "blog", "new")} == {
        "petclinic": ["failed"],
        "wordpress": ["suspicious"],
        "shop": ["ok"],
        "blog": ["unverified"],
        "new": ["none"],  # a fresh install: no backup yet
    }
    # a newer, good backup: the failed one no longer matters
    write_backup(tmp_path, "petclinic", "20261124T093000Z", verified=ok, status="ok")
    assert statuses(scrape([check]), "petclinic") == ["ok"]


def test_incomplete_and_temporary_files_are_not_backups(tmp_path):
    t1 = write_backup(tmp_path, "petclinic", "20261122T093000Z", size=10)
    write_backup(
        tmp_path, "petclinic", "20261124T093000Z", size=99, manifest=False
    )  # dump written, manifest not yet
    d = tmp_path / "petclinic"
    (d / ".tmp-petclinic-20261125T093000Z.sql.gz").write_bytes(b"x")
    (d / ".tmp-petclinic-20261125T093000Z.sql.gz.json").write_text("{}")
    (d / "petclinic-20261126T093000Z.sql.gz.json").write_text("{not json")  # broken, and no dump
    reg = scrape([BackupsCheck(str(tmp_path), ["petclinic"])])
    assert values(reg, "petclinic") == (1, t1, 0, 10)


def test_invalid_manifest_is_skipped(tmp_path):
    t1 = write_backup(tmp_path, "petclinic", "20261122T093000Z", size=10)
    write_backup(tmp_path, "petclinic", "20261124T093000Z", size=10)
    (tmp_path / "petclinic" / "petclinic-20261124T093000Z.sql.gz.json").write_text("{not json")
    reg = scrape([BackupsCheck(str(tmp_path), ["petclinic"])])
    assert values(reg, "petclinic") == (1, t1, 0, 10)


def test_verification_written_later_is_seen(tmp_path):
    write_backup(tmp_path, "petclinic", "20261122T093000Z", size=10)
    check = BackupsCheck(str(tmp_path), ["petclinic"])
    assert values(scrape([check]), "petclinic")[2] == 0
    path = tmp_path / "petclinic" / "petclinic-20261122T093000Z.sql.gz.json"
    doc = json.loads(path.read_text())
    doc["verified"] = {"at": "2026-11-22T10:00:00Z", "ok": True, "reason": ""}
    path.write_text(json.dumps(doc) + "\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert values(scrape([check]), "petclinic")[2] > 0


def test_databases_discovered_when_not_configured(tmp_path):
    write_backup(tmp_path, "wordpress", "20261122T093000Z")
    (tmp_path / ".tmp-junk").mkdir()
    reg = scrape([BackupsCheck(str(tmp_path))])
    assert values(reg, "wordpress")[0] == 1
    assert reg.get_sample_value("stackmedic_backups_complete", {"database": ".tmp-junk"}) is None


def test_missing_directory_is_zeros(tmp_path):
    reg = scrape([BackupsCheck(str(tmp_path / "none"), ["petclinic"])])
    assert values(reg, "petclinic") == (0, 0, 0, 0)
    assert reg.get_sample_value("stackmedic_check_success", {"check": "backups"}) == 1


def test_a_backup_dated_in_the_future_is_ignored_and_counted(tmp_path):
    # Issue 10 defect 4: one backup stamped 400 days ahead won the freshness metrics.
    ok = {"at": "2026-11-24T10:00:00Z", "ok": True, "reason": ""}
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
    t1 = write_backup(tmp_path, "petclinic", "20261124T093000Z", size=10, verified=ok, status="ok")
    write_backup(tmp_path, "petclinic", "20271229T093000Z", size=99, verified=ok, status="ok")
    write_backup(tmp_path, "petclinic", "20261124T120400Z", size=20)  # 4 minutes ahead: within the skew
    check = BackupsCheck(str(tmp_path), ["petclinic", "wordpress"], clock=lambda: now)
    reg = scrape([check])
    t2 = datetime(2026, 11, 24, 12, 4, tzinfo=UTC).timestamp()
    assert values(reg, "petclinic") == (2, t2, t1, 20)
    assert reg.get_sample_value("stackmedic_backups_future_dated", {"database": "petclinic"}) == 1
    assert reg.get_sample_value("stackmedic_backups_future_dated", {"database": "wordpress"}) == 0
    assert statuses(reg, "petclinic") == ["unverified"]


def test_a_suspicious_backup_is_not_the_newest_verified(tmp_path):
    ok = {"at": "2026-11-24T10:00:00Z", "ok": True, "reason": ""}
    t1 = write_backup(tmp_path, "petclinic", "20261123T093000Z", verified=ok, status="ok")
    write_backup(tmp_path, "petclinic", "20261124T093000Z", verified=ok, status="suspicious")
    reg = scrape([BackupsCheck(str(tmp_path), ["petclinic"])])
    assert values(reg, "petclinic")[2] == t1
    assert statuses(reg, "petclinic") == ["suspicious"]
