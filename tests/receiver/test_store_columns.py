"""A store written by the first release gains issue 11's columns at start-up and keeps its rows."""

from __future__ import annotations

import sqlite3

from stackmedic.receiver.store import columns
from stackmedic.receiver.store.sqlite import DDL, SQLiteStore


def test_an_old_sqlite_store_gains_the_new_columns_and_keeps_its_audit(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(DDL)  # the tables as first released
    old.execute("INSERT INTO actions (created_at, decision, reason) VALUES (1.0, 'triggered', 'kept')")
    old.commit()
    old.close()

    store = SQLiteStore(str(path))
    store.create_schema()
    store.create_schema()  # idempotent
    have = store.atomic(
        lambda tx: {
            table: {r["name"] for r in tx.rows(f"PRAGMA table_info({table})")}
            for table in ("incidents", "actions", "breakers", "pauses")
        }
    )
    for table, column, _ in columns.ADDED:
        assert column in have[table], f"{table}.{column}"
    [row] = store.atomic(lambda tx: tx.list_actions(10))
    assert (row.reason, row.author, row.description) == ("kept", None, None)
    store.close()
