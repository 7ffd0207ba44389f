"""verify: checksum, then load into a scratch database and check the required tables.

The scratch database has a unique name (`stackmedic_scratch_<random>`) and is dropped
afterwards whatever happens. The result is recorded in the manifest by an atomic rewrite.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import db as dbc
from . import manifest as mf
from .catalog import Backup
from .config import Database, JobsConfig
from .errors import LoadError
from .load import load_file

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "stackmedic_scratch_"
CHUNK = 1 << 20


@dataclass
class VerifyResult:
    ok: bool
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def scratch_name() -> str:
    """A database name no one else uses: the fixed prefix the restore user is granted on."""
    return SCRATCH_PREFIX + uuid.uuid4().hex[:16]


def check_file(backup: Backup) -> str:
    """'' when size and SHA-256 match the manifest, else what does not."""
    sha = hashlib.sha256()
    size = 0
    try:
        with open(backup.path, "rb") as f:
            while chunk := f.read(CHUNK):
                sha.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if size != backup.manifest.size_bytes:
        return f"size {size} differs from the manifest's {backup.manifest.size_bytes}"
    if sha.hexdigest() != backup.manifest.sha256:
        return "checksum mismatch"
    return ""


def check_tables(counts: dict[str, int], database: Database, backup: Backup) -> str:
    """'' when every required table (and every table of the manifest) came back, required ones with rows."""
    for table in database.required_tables:
        if table not in counts:
            return f"required table {table} is missing"
        if counts[table] == 0:
            return f"required table {table} has no rows"
    missing = sorted(set(backup.manifest.tables) - set(counts))
    if missing:
        return f"tables of the manifest missing after the load: {', '.join(missing)}"
    return ""


def verify_backup(config: JobsConfig, database: Database, backup: Backup) -> VerifyResult:
    """Check one backup; ServerDown propagates (the backup is not at fault then)."""
    problem = check_file(backup)
    if problem:
        return VerifyResult(False, problem)
    scratch = scratch_name()
    conn = dbc.connect(database.connection, database.restore_user)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {dbc.quote_ident(scratch)} CHARACTER SET utf8mb4")
            try:
                load_file(
                    config.client_command,
                    database.connection,
                    database.restore_user,
                    scratch,
                    backup.path,
                    timeout=database.dump_timeout,
                )
                counts = dbc.table_counts(cur, scratch)
            except LoadError as exc:
                return VerifyResult(False, str(exc).replace(scratch, "scratch database"))
            finally:
                cur.execute(f"DROP DATABASE IF EXISTS {dbc.quote_ident(scratch)}")
    finally:
        conn.close()
    problem = check_tables(counts, database, backup)
    if problem:
        return VerifyResult(False, problem, counts)
    drift = {t: (n, counts.get(t)) for t, n in backup.manifest.tables.items() if counts.get(t) != n}
    if drift:
        # Rows written between the two snapshots of a backup; worth a line, not a failure.
        log.warning("row counts differ from the manifest file=%s tables=%s", backup.name, drift)
    return VerifyResult(True, "", counts)


def record(
    backup: Backup, result: VerifyResult, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Backup:
    """Write the result into the backup's manifest (atomic rewrite)."""
    updated = backup.manifest.with_verification(
        mf.Verification(now().replace(microsecond=0), result.ok, result.reason)
    )
    mf.write(backup.manifest_path, updated)
    return Backup(backup.path, updated)
