"""The default store: one SQLite file in WAL mode; write transactions are serialised."""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from . import columns
from .connections import SqlStore

DDL = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule VARCHAR(64) NOT NULL, fingerprint VARCHAR(128) NOT NULL, starts_at VARCHAR(40) NOT NULL,
    target VARCHAR(256) NOT NULL, alertname VARCHAR(256), starts_ts DOUBLE NOT NULL,
    opened_at DOUBLE NOT NULL, action_id INTEGER, resolved_at DOUBLE, ends_ts DOUBLE,
    UNIQUE (rule, fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at DOUBLE NOT NULL, decision VARCHAR(32) NOT NULL, reason TEXT, status VARCHAR(16),
    alertname VARCHAR(256), fingerprint VARCHAR(128), starts_at VARCHAR(40), rule VARCHAR(64),
    target VARCHAR(256), job VARCHAR(128), params TEXT, incident_id INTEGER,
    token VARCHAR(64) UNIQUE, state VARCHAR(16), attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE, owner VARCHAR(64), lease_until DOUBLE, dispatched_at DOUBLE,
    queue_id INTEGER, build_number INTEGER, build_url TEXT, result VARCHAR(16), finished_at DOUBLE,
    error TEXT, updated_at DOUBLE, ineffective INTEGER, trial INTEGER NOT NULL DEFAULT 0, acted_at DOUBLE
);
CREATE INDEX IF NOT EXISTS actions_state ON actions (state, target);
CREATE INDEX IF NOT EXISTS actions_acted ON actions (rule, target, acted_at);
CREATE INDEX IF NOT EXISTS actions_created ON actions (created_at);
CREATE TABLE IF NOT EXISTS breakers (
    bkey VARCHAR(330) PRIMARY KEY, rule VARCHAR(64) NOT NULL, target VARCHAR(256) NOT NULL,
    state VARCHAR(16) NOT NULL, opened_at DOUBLE, reason TEXT, ineffective INTEGER NOT NULL DEFAULT 0,
    reset_at DOUBLE, trial_action_id INTEGER, updated_at DOUBLE
);
CREATE TABLE IF NOT EXISTS pauses (
    target VARCHAR(256) PRIMARY KEY, expires_at DOUBLE NOT NULL, reason TEXT, created_at DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    name VARCHAR(64) PRIMARY KEY, instance VARCHAR(64) NOT NULL,
    heartbeat_at DOUBLE NOT NULL, started_at DOUBLE NOT NULL
);
"""


class SQLiteStore(SqlStore):
    """SQLite in WAL mode; `synchronous=full` makes every acknowledged alert survive power loss."""

    def __init__(self, path: str, synchronous: str = "full", busy_timeout: float = 10.0):
        super().__init__()
        self.path = path
        self.synchronous = synchronous.upper()
        self.busy_timeout = busy_timeout
        self._writer = threading.Lock()
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return conn

    def create_schema(self) -> None:
        conn = self._conn()
        conn.executescript(DDL)
        self.atomic(lambda tx: columns.add_missing(tx, _columns))
        self.atomic(lambda tx: columns.add_missing_indexes(tx, _indexes))

    def serialized(self) -> threading.Lock:
        # SQLite has one writer at a time and makes the others wait in a sleeping busy
        # handler (1, 2, 5 ... 100 ms); waiting on a lock wakes a thread as soon as it is free
        return self._writer

    def begin(self, cur: sqlite3.Cursor) -> None:
        # take the write lock up front: no upgrade deadlocks, decisions fully serialised
        cur.execute("BEGIN IMMEDIATE")

    def on_conflict_ignore(self, column: str) -> str:
        return " ON CONFLICT DO NOTHING"

    def on_conflict_update(self, key: str, column: str) -> str:
        return f" ON CONFLICT ({key}) DO UPDATE SET {column}=?"

    def errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _columns(tx: Any, table: str) -> list[str]:
    return [row["name"] for row in tx.rows(f"PRAGMA table_info({table})")]


def _indexes(tx: Any, table: str) -> list[str]:
    return [row["name"] for row in tx.rows(f"PRAGMA index_list({table})")]
