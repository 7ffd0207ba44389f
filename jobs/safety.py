"""The safety dump: the tables a restore is about to displace, dumped to `safety/` first.

Not a backup (restore never picks one by itself, the exporter does not count them), but
`restore --file safety/NAME` restores one. Only base tables are named on the dump's
command line, so a view that refers to the dropped table cannot make it fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from . import manifest as mf
from .catalog import SAFETY_DIR
from .config import Database, JobsConfig
from .dump import dump_to_file
from .errors import JobError
from .fsutil import ensure_dir

log = logging.getLogger(__name__)


def unique_created(directory, database: str, created: datetime) -> datetime:
    """`created`, or the next second whose name is free: two safety dumps never share a name.

    Names keep the backup format (one per second); we hold the lock, so no one else takes
    the second we pick.
    """
    while (directory / mf.backup_name(database, created)).exists() or mf.manifest_path(
        directory / mf.backup_name(database, created)
    ).exists():
        created += timedelta(seconds=1)
    return created


def safety_dump(
    config: JobsConfig, database: Database, tables: list[str], now: Callable[[], datetime]
) -> str:
    """Dump `tables` of the live database to `safety/`; returns 'safety/<name>'."""
    directory = ensure_dir(database.directory / SAFETY_DIR)
    created = unique_created(directory, database.name, now().astimezone(UTC).replace(microsecond=0))
    dest = directory / mf.backup_name(database.name, created)
    try:
        result = dump_to_file(
            config.dump_command,
            database.connection,
            database.restore_user,
            database.name,
            dest,
            level=database.compress_level,
            timeout=database.dump_timeout,
            tables=tables,
        )
    except JobError as exc:
        raise JobError(f"safety dump failed, nothing was replaced: {exc}") from None
    mf.write(
        mf.manifest_path(dest),
        mf.Manifest(
            database.name, dest.name, created, result.size_bytes, result.sha256, dict.fromkeys(tables, 0)
        ),
    )
    return f"{SAFETY_DIR}/{dest.name}"
