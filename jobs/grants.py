"""The least privileges of the two database accounts, as GRANT clauses (docs/jobs.md shows them).

backup: read everything a consistent dump needs, including routines (MariaDB before 11.3
reads them from mysql.proc; without that grant mariadb-dump silently leaves them out).
restore: own the database and the scratch databases of verify; SET USER to re-create views,
routines, triggers and events whose DEFINER is another account.
"""

from __future__ import annotations

from .verify import SCRATCH_PREFIX


def _db(database: str) -> str:
    return f"`{database}`.*"


def backup_grants(database: str) -> list[str]:
    """What the backup user needs on `database`."""
    return [
        f"SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON {_db(database)}",
        "SELECT ON mysql.proc",
    ]


def restore_grants(database: str) -> list[str]:
    """What the restore (and verify) user needs for `database`."""
    scratch = SCRATCH_PREFIX.replace("_", "\\_") + "%"
    return [
        f"ALL PRIVILEGES ON {_db(database)}",
        f"ALL PRIVILEGES ON `{scratch}`.*",
        "SELECT ON mysql.proc",
        "SET USER ON *.*",
    ]
