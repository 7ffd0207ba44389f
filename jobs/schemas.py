"""The schemas restore owns: the scratch copy it builds (`load`) and rollback points (`rb`).

Both are named `stackmedic_restore_<kind>_<hex>` (one grant prefix for the restore
account) and carry a JSON schema COMMENT saying which database they belong to and when
they were made, so that a later run can finish, clean up or expire them without any
state outside the server. Verify's scratch databases (`stackmedic_scratch_*`) are a
different prefix: cleaning those can never drop a rollback point.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from . import db as dbc
from . import manifest as mf
from .errors import JobError
from .scratch import RESTORE_PREFIX

log = logging.getLogger(__name__)

PREFIX = RESTORE_PREFIX  # granted to the restore account only (jobs/grants.py)
LOAD = "load"
ROLLBACK = "rb"
# A table inside a rollback point holding the definitions of what the swap moves
# (triggers, views, routines, events): 'out' ones for a rollback, 'in' ones to finish a swap.
OBJECTS_TABLE = "__stackmedic_objects"


@dataclass(frozen=True)
class OwnedSchema:
    """One schema restore made: its name and what its comment says."""

    name: str
    database: str
    kind: str
    created: datetime
    info: dict

    @property
    def age_seconds(self) -> float:
        return (datetime.now(UTC) - self.created).total_seconds()


def new_name(kind: str) -> str:
    """stackmedic_restore_load_3f2a... (well under MariaDB's 64 characters)."""
    return f"{PREFIX}{kind}_{uuid.uuid4().hex[:16]}"


def create(cursor, kind: str, database: str, created: datetime, **info: object) -> str:
    """Create an owned schema for `database`, utf8mb4 like the dump's tables; returns its name."""
    name = new_name(kind)
    comment = json.dumps({"database": database, "kind": kind, "created": mf.iso(created), **info})
    cursor.execute(f"CREATE DATABASE {dbc.quote_ident(name)} CHARACTER SET utf8mb4 COMMENT %s", (comment,))
    return name


def set_info(cursor, schema: OwnedSchema, **info: object) -> None:
    """Rewrite the schema's comment with `info` merged in."""
    data: dict[str, object] = {
        "database": schema.database,
        "kind": schema.kind,
        "created": mf.iso(schema.created),
    }
    data.update(schema.info)
    data.update(info)
    cursor.execute(f"ALTER DATABASE {dbc.quote_ident(schema.name)} COMMENT %s", (json.dumps(data),))


def owned(cursor, database: str, kind: str | None = None) -> list[OwnedSchema]:
    """Schemas restore made for `database` (of `kind`), newest first."""
    cursor.execute(
        "SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
        (PREFIX.replace("_", "\\_") + "%",),
    )
    found = []
    for name, comment in cursor.fetchall():
        try:
            data = json.loads(comment or "")
            created = mf.parse_iso(data.pop("created"))
            owner, what = data.pop("database"), data.pop("kind")
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("schema with an unreadable comment left alone schema=%s", name)
            continue
        if owner == database and (kind is None or what == kind):
            found.append(OwnedSchema(name, owner, what, created, data))
    found.sort(key=lambda s: (s.created, s.name), reverse=True)
    return found


def drop(cursor, name: str) -> None:
    """Drop an owned schema (never anything else: the prefix is checked)."""
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to drop {name}: not a schema restore made")
    cursor.execute("SET SESSION foreign_key_checks = 0")
    cursor.execute(f"DROP DATABASE IF EXISTS {dbc.quote_ident(name)}")
    cursor.execute("SET SESSION foreign_key_checks = 1")


def find(cursor, database: str, name: str) -> OwnedSchema | None:
    """The owned schema `name` of `database`, or None."""
    return next((s for s in owned(cursor, database) if s.name == name), None)


def mark_done(cursor, database: str, name: str) -> None:
    """Record on the owned schema `name` that its swap finished; JobError if it vanished meanwhile."""
    schema = find(cursor, database, name)
    if schema is None:
        raise JobError(f"schema {name} of {database} vanished before it could be marked done")
    set_info(cursor, schema, state="done")
