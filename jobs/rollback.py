"""rollback: swap back the tables a restore displaced (its rollback point), in one RENAME.

The tables the restore brought in become a rollback point themselves, so a rollback can
be rolled back too. Triggers, and for a whole-database restore views, routines and
events, come back from the definitions the rollback point recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from . import db as dbc
from . import objects as ob
from . import schemas
from . import swap as sw
from .config import Database
from .errors import NoValidBackup
from .fsutil import ensure_dir
from .lock import DirLock
from .restore import RestoreReport, tidy

log = logging.getLogger(__name__)


def run_rollback(
    database: Database,
    report: RestoreReport,
    point_name: str | None = None,
    lock_wait: float = 0.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RestoreReport:
    """Swap the newest (or the named) rollback point of `database` back in."""
    dbc.check_server(database.connection, database.restore_user)
    with DirLock(ensure_dir(database.directory), "rollback", wait=lock_wait):
        conn = dbc.connect(database.connection, database.restore_user)
        try:
            with conn.cursor() as cur:
                tidy(cur, database, now)
                points = [
                    p
                    for p in schemas.owned(cur, database.name, schemas.ROLLBACK)
                    if p.info.get("state") == "done"
                ]
                if point_name:
                    points = [p for p in points if p.name == point_name]
                if not points:
                    what = f"named {point_name!r}" if point_name else "at all"
                    raise NoValidBackup(f"no rollback point of {database.name} {what}")
                point = points[0]
                journal = sw.read_journal(cur, point.name)
                if journal is None:
                    raise NoValidBackup(f"rollback point {point.name} has no record of its swap")
                plan, _ins, outs = journal
                tables = sorted(t for t in sw._tables(cur, point.name) if t != sw.JOURNAL)
                live_tables = set(sw._tables(cur, database.name))
                displaced = sorted(live_tables) if plan.whole else sorted(live_tables & set(plan.incoming))
                out_objects = ob.triggers(cur, database.name, set(displaced))
                if plan.whole:
                    out_objects += ob.schema_objects(cur, database.name)
                new_point = schemas.create(
                    cur,
                    schemas.ROLLBACK,
                    database.name,
                    now(),
                    state="swapping",
                    source=point.name,
                    whole=plan.whole,
                )
                back = sw.Plan(
                    database.name, point.name, new_point, tables, displaced, plan.whole, outs, out_objects
                )
                sw.swap(cur, back)
                schemas.mark_done(cur, database.name, new_point)
                schemas.drop(cur, point.name)
        finally:
            conn.close()
    report.status = "ok"
    report.restored = True
    report.restored_from = point.name
    report.tables = tables
    report.rollback_point = new_point
    log.info("rolled back database=%s point=%s", database.name, point.name)
    return report
