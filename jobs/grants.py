"""The least privileges of the database accounts, as GRANT clauses (docs/jobs.md shows them).

No account holds anything root-equivalent: no `SET USER`, `SUPER`, `GRANT OPTION`,
`CREATE USER` or write access to the `mysql` schema. (`SET USER` lets an account create a
procedure with `DEFINER=root` and run it: it is root.) Objects with another account as
DEFINER are re-created with the loading account as definer instead (jobs/definer.py).

- backup: read everything a consistent dump needs, routines included (MariaDB before 11.3
  reads them from `mysql.proc`; without that grant mariadb-dump silently leaves them out).
- verify: create, load and drop its own scratch databases, nothing else: a tampered
  backup loaded during verify cannot reach a live database.
- restore: own the database and restore's scratch databases, and dump routines for the
  safety dump.
- binlog (point-in-time recovery): read the binary logs over the client connection.
"""

from __future__ import annotations

from .scratch import RESTORE_PREFIX, VERIFY_PREFIX, grant_pattern

ROUTINES = "SELECT ON mysql.proc"  # MariaDB < 11.3; on 11.3+: SHOW CREATE ROUTINE ON `db`.*


def _db(database: str) -> str:
    return f"`{database}`.*"


def backup_grants(database: str) -> list[str]:
    """What the backup user needs on `database`."""
    return [f"SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON {_db(database)}", ROUTINES]


def verify_grants() -> list[str]:
    """What the verify user needs: its scratch databases only (the same for every database)."""
    return [f"ALL PRIVILEGES ON `{grant_pattern(VERIFY_PREFIX)}`.*"]


def restore_grants(database: str) -> list[str]:
    """What the restore user needs for `database`."""
    return [
        f"ALL PRIVILEGES ON {_db(database)}",
        f"ALL PRIVILEGES ON `{grant_pattern(RESTORE_PREFIX)}`.*",
        ROUTINES,
    ]


def binlog_grants() -> list[str]:
    """What the point-in-time recovery account needs to read binary logs remotely."""
    return ["REPLICATION SLAVE, BINLOG MONITOR ON *.*"]
