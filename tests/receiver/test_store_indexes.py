"""The incidents' indexes: a store made before them gains them, and the intake's lookups use them.

Without them, each firing notification read every incident of its rule under the breaker's row
lock (newest_open_action), so a webhook cost more the more incidents the store held.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from stackmedic.receiver.config import StoreConfig
from stackmedic.receiver.store import columns
from stackmedic.receiver.store.mysql import MySQLStore
from stackmedic.receiver.store.sqlite import DDL, SQLiteStore
from stackmedic.receiver.store.transaction import Tx

from harness.services import MariaDB
from stackmedic.secrets import Secret


def _incidents(tx: Tx, rows: list[tuple[str, str, int | None, float | None]]) -> None:
    for i, (target, fingerprint, action_id, resolved_at) in enumerate(rows):
        tx.execute(
            "INSERT INTO incidents (rule, fingerprint, starts_at, target, starts_ts, opened_at, action_id,"
            " resolved_at) VALUES ('restart', ?, ?, ?, 0, 0, ?, ?)",
            (fingerprint, f"t{i}", target, action_id, resolved_at),
        )


def _newest(store: Any) -> list[int | None]:
    _ = store.atomic(
        lambda tx: _incidents(
            tx,
            [
                ("db", "a", 5, None),
                ("db", "a", 9, None),  # the asker's own fingerprint: not another incident
                ("db", "b", None, None),  # no action yet
                ("db", "c", 7, None),
                ("db", "d", 8, 1.0),  # resolved
                ("web", "e", 11, None),  # another target
            ],
        )
    )
    return [
        store.atomic(lambda tx, f=fingerprint: tx.newest_open_action("restart", "db", f))
        for fingerprint in ("a", "c", "z")
    ] + [store.atomic(lambda tx: tx.newest_open_action("restart", "none", "a"))]


def test_an_old_sqlite_store_gains_the_indexes_and_the_lookup_uses_one(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(DDL)  # the tables as first released, without the indexes
    old.close()
    store = SQLiteStore(str(path))
    store.create_schema()
    store.create_schema()  # idempotent
    names = store.atomic(lambda tx: {r["name"] for r in tx.rows("PRAGMA index_list(incidents)")})
    assert {name for _, name, _ in columns.INDEXES} <= names
    plan = store.atomic(
        lambda tx: " ".join(
            str(r["detail"])
            for r in tx.rows(
                "EXPLAIN QUERY PLAN SELECT action_id FROM incidents WHERE rule=? AND target=?"
                " AND resolved_at IS NULL AND action_id IS NOT NULL AND fingerprint<>?"
                " ORDER BY action_id DESC LIMIT 1",
                ("restart", "db", "a"),
            )
        )
    )
    assert "incidents_open" in plan and "TEMP B-TREE" not in plan, plan
    assert _newest(store) == [7, 9, 9, None]
    store.close()


@pytest.mark.services
def test_an_old_mysql_store_gains_the_indexes_and_the_lookup_uses_one(mariadb: MariaDB):
    database = "receiver_indexes"
    mariadb.execute(f"DROP DATABASE IF EXISTS {database}")
    mariadb.execute(f"CREATE DATABASE {database}")
    try:
        mariadb.execute(  # incidents as first released
            "CREATE TABLE incidents (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " rule VARCHAR(64) NOT NULL, fingerprint VARCHAR(128) NOT NULL, starts_at VARCHAR(40) NOT NULL,"
            " target VARCHAR(256) NOT NULL, alertname VARCHAR(256), starts_ts DOUBLE NOT NULL,"
            " opened_at DOUBLE NOT NULL, action_id BIGINT, resolved_at DOUBLE, ends_ts DOUBLE,"
            " UNIQUE KEY incident_key (rule, fingerprint, starts_at))"
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            db=database,
        )
        config = StoreConfig(
            type="mysql",
            host=mariadb.host,
            port=mariadb.port,
            user="root",
            password=Secret(mariadb.root_password),
            database=database,
        )
        store = MySQLStore(config)
        store.create_schema()
        store.create_schema()  # idempotent
        names = {row[2] for row in mariadb.execute("SHOW INDEX FROM incidents", db=database)}
        assert {name for _, name, _ in columns.INDEXES} <= names
        assert _newest(store) == [7, 9, 9, None]
        many = [(f"svc-{i % 20}", f"f{i}", i, None) for i in range(400)]
        store.atomic(lambda tx: _incidents(tx, many))
        mariadb.execute("ANALYZE TABLE incidents", db=database)
        [plan] = mariadb.execute(
            "EXPLAIN SELECT action_id FROM incidents WHERE rule='restart' AND target='svc-3'"
            " AND resolved_at IS NULL AND action_id IS NOT NULL AND fingerprint<>'f3'"
            " ORDER BY action_id DESC LIMIT 1",
            db=database,
        )
        assert plan[5] == "incidents_open", plan  # key
        store.close()
    finally:
        mariadb.execute(f"DROP DATABASE IF EXISTS {database}")
