"""The shared store for several replicas: MySQL/MariaDB through PyMySQL (InnoDB, READ COMMITTED).

The same SQL as SQLite; deduplication relies on the unique key of `incidents`, and the
breaker row is locked (SELECT ... FOR UPDATE) while a decision for its target is made.
Columns compare byte-wise (utf8mb4_bin): fingerprints and label values are case-sensitive.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pymysql.constants

from stackmedic.mysql_tls import tls_failure

from ..config import StoreConfig
from . import columns
from .connections import SqlStore

TABLE = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
DDL = [
    """CREATE TABLE IF NOT EXISTS incidents (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    rule VARCHAR(64) NOT NULL, fingerprint VARCHAR(128) NOT NULL, starts_at VARCHAR(40) NOT NULL,
    target VARCHAR(256) NOT NULL, alertname VARCHAR(256), starts_ts DOUBLE NOT NULL,
    opened_at DOUBLE NOT NULL, action_id BIGINT, resolved_at DOUBLE, ends_ts DOUBLE,
    UNIQUE KEY incident_key (rule, fingerprint, starts_at),
    KEY incidents_open (rule, target, resolved_at, action_id), KEY incidents_action (action_id))""",
    """CREATE TABLE IF NOT EXISTS actions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at DOUBLE NOT NULL, decision VARCHAR(32) NOT NULL, reason TEXT, status VARCHAR(16),
    alertname VARCHAR(256), fingerprint VARCHAR(128), starts_at VARCHAR(40), rule VARCHAR(64),
    target VARCHAR(256), job VARCHAR(128), params TEXT, incident_id BIGINT,
    token VARCHAR(64), state VARCHAR(16), attempts INT NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE, owner VARCHAR(64), lease_until DOUBLE, dispatched_at DOUBLE,
    queue_id BIGINT, build_number BIGINT, build_url TEXT, result VARCHAR(16), finished_at DOUBLE,
    error TEXT, updated_at DOUBLE, ineffective INT, trial INT NOT NULL DEFAULT 0, acted_at DOUBLE,
    UNIQUE KEY action_token (token), KEY actions_state (state, target),
    KEY actions_acted (rule, target, acted_at), KEY actions_created (created_at))""",
    """CREATE TABLE IF NOT EXISTS breakers (
    bkey VARCHAR(330) NOT NULL PRIMARY KEY, rule VARCHAR(64) NOT NULL, target VARCHAR(256) NOT NULL,
    state VARCHAR(16) NOT NULL, opened_at DOUBLE, reason TEXT, ineffective INT NOT NULL DEFAULT 0,
    reset_at DOUBLE, trial_action_id BIGINT, updated_at DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS pauses (
    target VARCHAR(256) NOT NULL PRIMARY KEY, expires_at DOUBLE NOT NULL, reason TEXT,
    created_at DOUBLE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS replicas (
    name VARCHAR(64) NOT NULL PRIMARY KEY, instance VARCHAR(64) NOT NULL,
    heartbeat_at DOUBLE NOT NULL, started_at DOUBLE NOT NULL)""",
]
DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205


class MySQLStore(SqlStore):
    """MySQL or MariaDB; several receivers may share one database."""

    for_update = " FOR UPDATE"

    def __init__(self, config: StoreConfig):
        super().__init__()
        self.config = config
        self._tls = config.tls.pymysql_options()  # one context for every connection

    def connect(self) -> Any:
        c = self.config
        conn = pymysql.connect(
            host=c.host or "localhost",
            port=c.port,
            unix_socket=c.socket,
            user=c.user,
            password=c.password or "",
            database=c.database,
            charset="utf8mb4",
            # rowcount = rows matched, not rows changed: ownership checks rely on it
            client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
            autocommit=False,
            # a frozen or unreachable server fails a statement within `timeout`: the webhook
            # answers 503 at once and Alertmanager sends again, instead of timing out itself
            connect_timeout=c.timeout,
            read_timeout=c.timeout,
            write_timeout=c.timeout,
            **self._tls,
        )
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def begin(self, cur: Any) -> None:
        """Nothing to send: autocommit is off, so the first statement opens the transaction and
        commit() or rollback() ends it. A BEGIN was one more round trip to the server per webhook."""

    def create_schema(self) -> None:
        def create(tx: Any) -> None:
            for statement in DDL:
                tx.execute(statement + TABLE)
            columns.add_missing(tx, _columns)
            # ALTER TABLE, not CREATE INDEX: that needs the INDEX privilege, which the account lacks
            columns.add_missing_indexes(tx, _indexes, "ALTER TABLE {table} ADD INDEX {name} ({keys})")

        self.atomic(create)

    def server_time(self) -> float | None:
        """The database server's clock: the one clock of every replica."""
        return float(self.atomic(lambda tx: tx.scalar("SELECT UNIX_TIMESTAMP(NOW(6))")))

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def on_conflict_ignore(self, column: str) -> str:
        # not INSERT IGNORE: that would also turn real errors (truncation) into warnings
        return f" ON DUPLICATE KEY UPDATE {column}={column}"

    def on_conflict_update(self, key: str, column: str) -> str:
        return f" ON DUPLICATE KEY UPDATE {column}=?"

    def errors(self) -> tuple[type[BaseException], ...]:
        return (pymysql.err.MySQLError,)

    def describe(self, exc: BaseException) -> str:
        tls = tls_failure(exc)
        if tls is None:
            return str(exc)
        c = self.config
        return f"{tls} (MySQL store {c.socket or f'{c.host}:{c.port}'}, store.tls_ca_file {c.tls.ca_file})"

    def is_transient(self, exc: BaseException) -> bool:
        return bool(exc.args) and exc.args[0] in (DEADLOCK, LOCK_WAIT_TIMEOUT)


def _columns(tx: Any, table: str) -> list[str]:
    rows = tx.rows(
        "SELECT column_name AS name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = ?",
        (table,),
    )
    return [row["name"] for row in rows]


def _indexes(tx: Any, table: str) -> list[str]:
    rows = tx.rows(
        "SELECT DISTINCT index_name AS name FROM information_schema.statistics"
        " WHERE table_schema = DATABASE() AND table_name = ?",
        (table,),
    )
    return [row["name"] for row in rows]
