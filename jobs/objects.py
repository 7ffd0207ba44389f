"""Triggers, views, routines and events: read their definitions, drop and re-create them.

A swap moves tables between schemas with RENAME TABLE, which these objects cannot
follow (MariaDB refuses to move a table with triggers to another schema, and views,
routines and events are not tables). So the swap carries their definitions, as
`SHOW CREATE` gives them, and re-creates them in the live database.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import db as dbc
from .definer import rewrite

KINDS = ("trigger", "view", "procedure", "function", "event")


@dataclass(frozen=True)
class DbObject:
    """One object's definition; `table` is the table of a trigger."""

    kind: str
    name: str
    definition: str
    sql_mode: str = ""
    table: str = ""

    def in_schema(self, source: str, target: str) -> DbObject:
        """The definition with `source`'s qualifier replaced by `target`'s."""
        text = self.definition.replace(f"{dbc.quote_ident(source)}.", f"{dbc.quote_ident(target)}.")
        return DbObject(self.kind, self.name, text, self.sql_mode, self.table)


def triggers(cursor, schema: str, tables: set[str] | None = None) -> list[DbObject]:
    """The triggers of `schema` (on `tables` only, when given), in creation order."""
    cursor.execute(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s"
        " ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
        (schema,),
    )
    found = []
    for name, table in cursor.fetchall():
        if tables is not None and table not in tables:
            continue
        cursor.execute(f"SHOW CREATE TRIGGER {dbc.quote_ident(schema)}.{dbc.quote_ident(name)}")
        row = cursor.fetchone()
        found.append(DbObject("trigger", name, row[2], row[1], table))
    return found


def schema_objects(cursor, schema: str) -> list[DbObject]:
    """Views, routines and events of `schema` (what a whole-database swap carries besides triggers)."""
    q = dbc.quote_ident(schema)
    found = []
    cursor.execute("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (schema,))
    for (name,) in cursor.fetchall():
        cursor.execute(f"SHOW CREATE VIEW {q}.{dbc.quote_ident(name)}")
        found.append(DbObject("view", name, cursor.fetchone()[1]))
    cursor.execute(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
        (schema,),
    )
    for name, kind in cursor.fetchall():
        cursor.execute(f"SHOW CREATE {kind} {q}.{dbc.quote_ident(name)}")
        row = cursor.fetchone()
        found.append(DbObject(kind.lower(), name, row[2], row[1]))
    cursor.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (schema,))
    for (name,) in cursor.fetchall():
        cursor.execute(f"SHOW CREATE EVENT {q}.{dbc.quote_ident(name)}")
        row = cursor.fetchone()
        found.append(DbObject("event", name, row[3], row[1]))
    return found


def drop(cursor, schema: str, obj: DbObject) -> None:
    """DROP ... IF EXISTS the object in `schema`."""
    cursor.execute(f"DROP {obj.kind.upper()} IF EXISTS {dbc.quote_ident(schema)}.{dbc.quote_ident(obj.name)}")


def exists(cursor, schema: str, obj: DbObject) -> bool:
    """Whether an object of that kind and name is in `schema`."""
    queries = {
        "trigger": "SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND TRIGGER_NAME = %s",
        "view": "SELECT 1 FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        "event": "SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s AND EVENT_NAME = %s",
    }
    sql = queries.get(
        obj.kind,
        "SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s AND ROUTINE_NAME = %s"
        " AND ROUTINE_TYPE = %s",
    )
    args = (schema, obj.name) if obj.kind in queries else (schema, obj.name, obj.kind.upper())
    cursor.execute(sql, args)
    return cursor.fetchone() is not None


def create(cursor, schema: str, obj: DbObject) -> None:
    """Create the object in `schema` (the cursor's connection switches to it), with its sql_mode."""
    cursor.execute(f"USE {dbc.quote_ident(schema)}")
    # As the restore account, like every load (jobs/definer.py): another DEFINER needs SET USER.
    obj = DbObject(obj.kind, obj.name, rewrite(obj.definition.encode()).decode(), obj.sql_mode, obj.table)
    cursor.execute("SET @stackmedic_mode = @@SESSION.sql_mode")
    if obj.sql_mode or obj.kind != "view":
        cursor.execute("SET SESSION sql_mode = %s", (obj.sql_mode,))
    try:
        if obj.kind == "view":
            cursor.execute(obj.definition.replace("CREATE ", "CREATE OR REPLACE ", 1))
        else:
            cursor.execute(obj.definition)
    finally:
        cursor.execute("SET SESSION sql_mode = @stackmedic_mode")
