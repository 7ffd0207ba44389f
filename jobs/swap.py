"""Swap checked tables into the live database with one atomic RENAME TABLE, keeping the old.

    RENAME TABLE live.t TO live.<tmp>, load.t TO live.t, ...      -- one statement: the swap

Before it, nothing in the live database has changed; after it, every replaced table is
the new one. The displaced tables keep their triggers through the rename (same schema),
those are then dropped, the incoming triggers (and, for a whole database, views,
routines and events) created, and the displaced tables moved to the rollback point.
Foreign keys follow a renamed parent into another schema, so the live tables' foreign
keys that now point into a restore schema are pointed back at the live table.

Every step after the RENAME is recorded first in the rollback point's objects table
(`journal`), so that a run killed between the rename and the last step is finished by
the next run (`finish_interrupted`): the live database is then fully restored, never half.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pymysql

from . import db as dbc
from . import objects as ob
from . import schemas
from .errors import JobError

log = logging.getLogger(__name__)

JOURNAL = schemas.OBJECTS_TABLE


class SwapIncomplete(JobError):
    """The RENAME happened; a step after it failed and is left for the next run."""


@dataclass
class Plan:
    """What one swap moves: `incoming` tables of `source` into `live`, `displaced` live tables out."""

    live: str
    source: str
    rollback: str
    incoming: list[str]
    displaced: list[str]
    whole: bool
    in_objects: list[ob.DbObject] = field(default_factory=list)
    out_objects: list[ob.DbObject] = field(default_factory=list)

    def tmp_name(self, table: str) -> str:
        """The displaced table's name in the live schema between the swap and its move out."""
        return f"__sm_old_{self.displaced.index(table)}_{self.rollback[-8:]}"


def q(schema: str, table: str) -> str:
    return f"{dbc.quote_ident(schema)}.{dbc.quote_ident(table)}"


def _journal(cursor, plan: Plan) -> None:
    j = q(plan.rollback, JOURNAL)
    cursor.execute(
        f"CREATE TABLE {j} (seq INT AUTO_INCREMENT PRIMARY KEY, direction VARCHAR(8), kind VARCHAR(16),"
        " name VARCHAR(192), tbl VARCHAR(192), sql_mode VARCHAR(512), definition LONGTEXT) CHARSET utf8mb4"
    )
    rows = [("in", o.kind, o.name, o.table, o.sql_mode, o.definition) for o in plan.in_objects]
    rows += [("out", o.kind, o.name, o.table, o.sql_mode, o.definition) for o in plan.out_objects]
    rows += [("table", "table", t, plan.tmp_name(t), "", "") for t in plan.displaced]
    rows += [("plan", "plan", "", "", "", json.dumps(_plan_json(plan)))]
    if rows:
        cursor.executemany(
            f"INSERT INTO {j} (direction, kind, name, tbl, sql_mode, definition) VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608 - quoted identifiers
            rows,
        )


def _plan_json(plan: Plan) -> dict:
    return {
        "live": plan.live,
        "source": plan.source,
        "incoming": plan.incoming,
        "displaced": plan.displaced,
        "whole": plan.whole,
    }


def read_journal(cursor, rollback: str) -> tuple[Plan, list[ob.DbObject], list[ob.DbObject]] | None:
    """The plan and objects a rollback point recorded, or None when it has no journal."""
    try:
        cursor.execute(
            f"SELECT direction, kind, name, tbl, sql_mode, definition FROM {q(rollback, JOURNAL)} ORDER BY seq"  # noqa: S608
        )
    except pymysql.err.ProgrammingError:
        return None
    rows = cursor.fetchall()
    plan_rows = [r for r in rows if r[0] == "plan"]
    if not plan_rows:
        return None
    data = json.loads(plan_rows[0][5])
    plan = Plan(data["live"], data["source"], rollback, data["incoming"], data["displaced"], data["whole"])
    ins = [ob.DbObject(r[1], r[2], r[5], r[4], r[3]) for r in rows if r[0] == "in"]
    outs = [ob.DbObject(r[1], r[2], r[5], r[4], r[3]) for r in rows if r[0] == "out"]
    plan.in_objects, plan.out_objects = ins, outs
    return plan, ins, outs


def swap(cursor, plan: Plan, before_rename=None) -> None:
    """Carry out `plan`; raises JobError (nothing changed) when the RENAME is refused."""
    cursor.execute("SET SESSION foreign_key_checks = 0")
    _journal(cursor, plan)
    # Incoming tables must have no triggers to cross schemas; their definitions are journaled.
    for obj in plan.in_objects:
        if obj.kind == "trigger" and plan.source != plan.live:
            ob.drop(cursor, plan.source, obj)
    pairs = [f"{q(plan.live, t)} TO {q(plan.live, plan.tmp_name(t))}" for t in plan.displaced]
    pairs += [f"{q(plan.source, t)} TO {q(plan.live, t)}" for t in plan.incoming]
    if before_rename:
        before_rename()
    try:
        cursor.execute("RENAME TABLE " + ", ".join(pairs))
    except pymysql.err.MySQLError as exc:
        raise JobError(f"the server refused the swap, nothing was replaced: {exc.args[-1]}") from None
    log.info("swapped database=%s tables=%s", plan.live, ",".join(plan.incoming))
    try:
        complete(cursor, plan)
    except pymysql.err.MySQLError as exc:
        raise SwapIncomplete(
            f"the tables were swapped in, but re-creating triggers or moving the old tables failed"
            f" (the next restore or rollback finishes it): {exc.args[-1]}"
        ) from None


def complete(cursor, plan: Plan) -> None:
    """Everything after the RENAME; safe to run again (each step checks before it acts)."""
    cursor.execute("SET SESSION foreign_key_checks = 0")
    live_tables = set(_tables(cursor, plan.live))
    for obj in plan.out_objects:
        if obj.kind == "trigger":
            tmp = plan.tmp_name(obj.table) if obj.table in plan.displaced else obj.table
            cursor.execute(
                "SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND TRIGGER_NAME = %s"
                " AND EVENT_OBJECT_TABLE = %s",
                (plan.live, obj.name, tmp),
            )
            if cursor.fetchone():
                ob.drop(cursor, plan.live, obj)
        elif plan.whole:
            ob.drop(cursor, plan.live, obj)
    for obj in plan.in_objects:
        obj = obj.in_schema(plan.source, plan.live)
        if obj.kind == "trigger" and obj.table not in live_tables:
            continue
        if not ob.exists(cursor, plan.live, obj) or obj.kind == "view":
            ob.create(cursor, plan.live, obj)
    moves = [
        f"{q(plan.live, plan.tmp_name(t))} TO {q(plan.rollback, t)}"
        for t in plan.displaced
        if plan.tmp_name(t) in live_tables
    ]
    if moves:
        cursor.execute("RENAME TABLE " + ", ".join(moves))
    repoint_foreign_keys(cursor, plan.live)
    cursor.execute("SET SESSION foreign_key_checks = 1")


def _tables(cursor, schema: str) -> list[str]:
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
        (schema,),
    )
    return [r[0] for r in cursor.fetchall()]


def repoint_foreign_keys(cursor, live: str) -> list[str]:
    """Point foreign keys of `live` that reference a restore schema back at `live`'s table of that name."""
    cursor.execute(
        "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, UPDATE_RULE,"
        " DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = %s AND UNIQUE_CONSTRAINT_SCHEMA LIKE %s",
        (live, schemas.PREFIX.replace("_", "\\_") + "%"),
    )
    fixed = []
    for name, table, parent, _schema, on_update, on_delete in cursor.fetchall():
        cursor.execute(
            "SELECT COLUMN_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
            " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = %s ORDER BY ORDINAL_POSITION",
            (live, table, name),
        )
        cols = cursor.fetchall()
        child = ", ".join(dbc.quote_ident(c[0]) for c in cols)
        ref = ", ".join(dbc.quote_ident(c[1]) for c in cols)
        cursor.execute(f"ALTER TABLE {q(live, table)} DROP FOREIGN KEY {dbc.quote_ident(name)}")
        cursor.execute(
            f"ALTER TABLE {q(live, table)} ADD CONSTRAINT {dbc.quote_ident(name)} FOREIGN KEY ({child})"
            f" REFERENCES {q(live, parent)} ({ref}) ON DELETE {on_delete} ON UPDATE {on_update}"
        )
        fixed.append(f"{table}.{name}")
    if fixed:
        log.info("foreign keys pointed back at the live tables database=%s keys=%s", live, ",".join(fixed))
    return fixed


def finish_interrupted(cursor, database: str) -> list[str]:
    """Finish (or undo) swaps of `database` that a killed run left; returns what was done."""
    done = []
    for point in schemas.owned(cursor, database, schemas.ROLLBACK):
        if point.info.get("state") != "swapping":
            continue
        journal = read_journal(cursor, point.name)
        source = point.info.get("source", "")
        if journal is None:
            schemas.drop(cursor, point.name)  # killed before the journal: the swap never began
            done.append(f"dropped {point.name}")
            continue
        plan = journal[0]
        left = set(_tables(cursor, plan.source)) & set(plan.incoming)
        if left:
            # The RENAME never ran: the live database is as it was; forget the attempt.
            schemas.drop(cursor, point.name)
            done.append(f"undone {point.name}")
        else:
            complete(cursor, plan)
            schemas.set_info(cursor, point, state="done")
            done.append(f"finished {point.name}")
        if source.startswith(schemas.PREFIX + schemas.LOAD):
            schemas.drop(cursor, source)
    if done:
        log.warning("interrupted swap found database=%s actions=%s", database, "; ".join(done))
    return done
