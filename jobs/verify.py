"""verify: checksum, header, then a load into a scratch database with the verify account.

The verify account may create and drop scratch databases only (jobs/grants.py): whatever
a tampered backup contains, its load cannot reach a live database. The scratch database
(jobs/scratch.py) is dropped afterwards whatever happens, and a killed verify's is dropped
by the next one. The result, and whether the backup deserves trust (known_good.suspicion),
is recorded in the manifest by an atomic rewrite.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import db as dbc
from . import manifest as mf
from .catalog import Backup
from .config import Database, JobsConfig
from .errors import LoadError
from .known_good import suspicion
from .load import load_file
from .scratch import verify_scratch_name

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HEADER_BYTES = 4096
FAILED = "failed"
_HEADER_DB = re.compile(rb"^-- Host: .*?\sDatabase: (\S*)\s*$", re.M)


@dataclass
class VerifyResult:
    """ok (trusted), suspicious (loads, but lost tables or rows) or failed; with the reason."""

    status: str
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Trusted: restore may use it."""
        return self.status == mf.TRUSTED


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


def check_header(backup: Backup, database: str) -> str:
    """'' when the dump's own header says it is of `database` (`-- Host: ...  Database: NAME`)."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(backup.path, "rb") as f:
            head = decomp.decompress(f.read(HEADER_BYTES), HEADER_BYTES)
    except (OSError, zlib.error) as exc:
        return f"cannot read the dump's header: {exc}"
    found = _HEADER_DB.search(head)
    if found is None:
        return f"the dump's header names no database (expected Database: {database})"
    named = found.group(1).decode("utf-8", "replace")
    if named != database:
        return f"the dump is of database {named}, not {database} (its header says Database: {named})"
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


def load_counts(config: JobsConfig, database: Database, backup: Backup) -> dict[str, int]:
    """Rows per table of `backup` loaded into a fresh scratch database (dropped again)."""
    scratch = verify_scratch_name(database.name)
    conn = dbc.connect(database.connection, database.verify_user)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {dbc.quote_ident(scratch)} CHARACTER SET utf8mb4")
            try:
                load_file(
                    config.client_command,
                    database.connection,
                    database.verify_user,
                    scratch,
                    backup.path,
                    timeout=database.dump_timeout,
                )
                return dbc.table_counts(cur, scratch)
            except LoadError as exc:
                raise LoadError(str(exc).replace(scratch, "scratch database")) from None
            finally:
                cur.execute(f"DROP DATABASE IF EXISTS {dbc.quote_ident(scratch)}")
    finally:
        conn.close()


def verify_backup(
    config: JobsConfig, database: Database, backup: Backup, reference: Backup | None = None
) -> VerifyResult:
    """Check one backup against `reference`, the backup trusted before it (known_good.reference_for).

    ServerDown propagates (the backup is not at fault then).
    """
    problem = check_file(backup) or check_header(backup, database.name)
    if problem:
        return VerifyResult(FAILED, problem)
    try:
        counts = load_counts(config, database, backup)
    except LoadError as exc:
        return VerifyResult(FAILED, str(exc))
    problem = check_tables(counts, database, backup)
    if problem:
        return VerifyResult(FAILED, problem, counts)
    drift = {t: (n, counts.get(t)) for t, n in backup.manifest.tables.items() if counts.get(t) != n}
    if drift:
        # Rows written between the two snapshots of a backup; worth a line, not a failure.
        log.warning("row counts differ from the manifest file=%s tables=%s", backup.name, drift)
    doubt = suspicion(counts, reference, database.trust.max_row_drop)
    if doubt:
        log.warning("suspicious backup file=%s reason=%r", backup.name, doubt)
        return VerifyResult(mf.SUSPICIOUS, doubt, counts)
    return VerifyResult(mf.TRUSTED, "", counts)


def record(
    backup: Backup, result: VerifyResult, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Backup:
    """Write the result into the backup's manifest (atomic rewrite)."""
    loaded = result.status != FAILED
    updated = backup.manifest.with_verification(
        mf.Verification(now().replace(microsecond=0), loaded, "" if loaded else result.reason),
        status=result.status if loaded else mf.TRUSTED,
        status_reason=result.reason if loaded else "",
    )
    mf.write(backup.manifest_path, updated)
    return Backup(backup.path, updated)
