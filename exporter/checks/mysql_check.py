"""MySQL/MariaDB (PyMySQL): server up, configured tables present and not empty, queries.

"Has rows" is `SELECT EXISTS(SELECT 1 FROM t)`, exact and cheap on any engine;
information_schema.TABLES.TABLE_ROWS is an estimate (0 for a full InnoDB table happens)
and is never used. Works with a read-only user (SELECT on the databases). Connect, read
and write timeouts are always set, from the deadline. Sample::

    stackmedic_mysql_up{server="stack"} 1
    stackmedic_mysql_table_present{server="stack",database="petclinic",table="owners"} 1
    stackmedic_mysql_table_has_rows{server="stack",database="petclinic",table="owners"} 1
    stackmedic_mysql_query_success{server="stack",query="owner_franklin"} 1
    stackmedic_mysql_failure_reason{server="stack",reason="auth"} 0

A failure has one reason from a fixed set, so that a wrong password of the exporter's own
user (`auth`) is not read as the server being down (`connect`, `timeout`): the alert rules
switch healing off for the latter only.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackmedic.mysql_tls import MysqlTls

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check

log = logging.getLogger(__name__)

UP = MetricSpec(
    "mysql_up", "gauge", "1 when the MySQL/MariaDB server accepted a connection and answered.", ("server",)
)
TABLE_PRESENT = MetricSpec(
    "mysql_table_present",
    "gauge",
    "1 when the table exists (and is visible to the user).",
    ("server", "database", "table"),
)
TABLE_HAS_ROWS = MetricSpec(
    "mysql_table_has_rows",
    "gauge",
    "1 when SELECT EXISTS(SELECT 1 FROM table) is true.",
    ("server", "database", "table"),
)
QUERY_SUCCESS = MetricSpec(
    "mysql_query_success", "gauge", "1 when the configured query returned a row.", ("server", "query")
)
MYSQL_REASONS = ("auth", "connect", "timeout", "tls", "query", "error")
FAILURE_REASON = MetricSpec(
    "mysql_failure_reason",
    "gauge",
    "1 for the reason the MySQL check failed, 0 for the others (all 0 when up).",
    ("server", "reason"),
)
# Server (1xxx) and client (2xxx) error codes that mean "this login is refused": access
# denied (to the server, a database, from this host), an auth plugin missing or refusing, a
# password expired or to be reset, auth needing a secure connection.
AUTH_CODES = frozenset({1044, 1045, 1130, 1251, 1524, 1698, 1820, 1862, 2059, 2061})
TLS_CODE = 2026  # "SSL connection error", "SSL is required but the server doesn't support it"
QUERY_DURATION = MetricSpec(
    "mysql_query_duration_seconds",
    "gauge",
    "Time of the table and query checks after connecting.",
    ("server",),
)


@dataclass
class MysqlServer:
    """A configured server; `password` is a stackmedic.secrets.Secret (never logged)."""

    name: str
    user: str
    password: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 3306
    socket: str | None = None
    timeout: float = 5.0
    tables: dict[str, list[str]] = field(default_factory=dict)
    queries: list[dict] = field(default_factory=list)
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True

    @classmethod
    def from_config(cls, item: dict) -> MysqlServer:
        keys: tuple[str, ...] = ("name", "user", "password", "host", "port", "socket", "timeout", "tables")
        keys += ("queries", "tls", "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_verify")
        return cls(**{k: item[k] for k in keys if k in item})

    def tls_options(self) -> dict[str, Any]:
        """TLS off, or required with a context made once (not once per connection)."""
        tls = MysqlTls(self.tls, self.tls_ca_file, self.tls_cert_file, self.tls_key_file, self.tls_verify)
        return tls.pymysql_options()


def quote(identifier: str) -> str:
    """A backquoted identifier (config already restricts the characters)."""
    return "`" + identifier.replace("`", "``") + "`"


def pymysql_connect(**kwargs: Any) -> Any:
    """Connect with PyMySQL, imported only when a MySQL check is configured."""
    import pymysql

    return pymysql.connect(**kwargs)


class MysqlCheck(Check):
    """One connection per scrape: tables, then queries."""

    kind = "mysql"
    metrics = (UP, TABLE_PRESENT, TABLE_HAS_ROWS, QUERY_SUCCESS, QUERY_DURATION, FAILURE_REASON)

    def __init__(
        self,
        server: MysqlServer,
        connect: Callable[..., Any] = pymysql_connect,
    ):
        super().__init__(server.name, server.timeout)
        self.server = server
        self.connect = connect
        self._was_up: bool | None = None
        self._tls = server.tls_options()

    @classmethod
    def from_section(cls, section: list) -> list[Check]:
        return [cls(MysqlServer.from_config(s)) for s in section]

    def _items(self) -> list[tuple[str, str]]:
        return [(db, t) for db, tables in self.server.tables.items() for t in tables]

    def run(self, out: Samples, deadline: Deadline) -> None:
        remaining = deadline.timeout()
        s = self.server
        present: set[tuple[str, str]] = set()
        has_rows: set[tuple[str, str]] = set()
        succeeded: set[str] = set()
        up, took, reason = 0, 0.0, None
        try:
            conn = self.connect(
                host=s.host,
                port=s.port,
                unix_socket=s.socket,
                user=s.user,
                password=s.password or "",
                connect_timeout=remaining,
                read_timeout=remaining,
                write_timeout=remaining,
                autocommit=True,
                **self._tls,
            )
        except Exception as exc:  # noqa: BLE001 - a server down is a 0, its message a log line
            reason = failure_reason(exc, connected=False)
            self._log_state(False, exc, reason)
        else:
            try:
                began = deadline.clock()
                with conn.cursor() as cur:
                    # the table statements, when there are any, are the proof the server answers
                    if not self._items():
                        cur.execute("SELECT 1")
                    present, has_rows = self._tables(cur)
                    up = 1
                    succeeded = self._queries(cur)
                took = deadline.clock() - began
                self._log_state(True)
            except Exception as exc:  # noqa: BLE001 - a lost connection mid-check
                reason = failure_reason(exc, connected=True)
                self._log_state(False, exc, reason)
                up = 0
            finally:
                conn.close()
        self._emit(out, up, present, has_rows, succeeded, took, reason)

    def _tables(self, cur: Any) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(present, with rows). Usually every table is there, and one statement asking
        whether each has rows says so too; only when it fails are the tables listed."""
        items = self._items()
        if not items:
            return set(), set()
        try:
            return set(items), self._rows_of(cur, items)
        except Exception as exc:
            if not _is_server_error(exc):
                raise  # the connection, not a table
        present = self._present(cur)
        return present, self._has_rows(cur, [item for item in items if item in present])

    def _present(self, cur: Any) -> set[tuple[str, str]]:
        if not any(self.server.tables.values()):
            return set()
        dbs = list(self.server.tables)
        names = sorted({t for tables in self.server.tables.values() for t in tables})
        # only the configured names: a schema's other tables would be rows to read for nothing
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"  # noqa: S608
            f" WHERE TABLE_SCHEMA IN ({', '.join(['%s'] * len(dbs))})"
            f" AND TABLE_NAME IN ({', '.join(['%s'] * len(names))})",
            dbs + names,
        )
        return {(db, t) for db, t in cur.fetchall()}

    def _has_rows(self, cur: Any, tables: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Tables with rows: all in one statement, or one by one when that fails."""
        if not tables:
            return set()
        try:
            return self._rows_of(cur, tables)
        except Exception as exc:
            if not _is_server_error(exc) or len(tables) == 1:
                raise
            # a table dropped since the listing: ask one by one, so the others still count
            found: set[tuple[str, str]] = set()
            for table in tables:
                with contextlib.suppress(Exception):
                    found |= self._has_rows(cur, [table])
            return found

    def _rows_of(self, cur: Any, tables: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The tables with rows, in one statement that fails if any of them is missing.

        One column of '0'/'1' flags rather than a column per table: the client decodes a
        column description per column, which for a dozen tables cost more than the query.
        """
        # identifiers cannot be parameters; config allows only [A-Za-z0-9_$-] and quote() escapes
        exists = ", ".join(f"EXISTS(SELECT 1 FROM {quote(db)}.{quote(t)})" for db, t in tables)  # noqa: S608
        cur.execute(f"SELECT CONCAT({exists})")
        (flags,) = cur.fetchone()
        if isinstance(flags, bytes):  # CONCAT of numbers is a binary string to the client
            flags = flags.decode("ascii")
        return {table for table, flag in zip(tables, flags, strict=True) if flag == "1"}

    def _queries(self, cur: Any) -> set[str]:
        ok = set()
        for q in self.server.queries:
            try:
                if q.get("database"):
                    cur.execute(f"USE {quote(q['database'])}")
                # a check only reads: in a read-only transaction the server refuses a write
                # (error 1792), and whatever happened is rolled back
                cur.execute("START TRANSACTION READ ONLY")
                try:
                    cur.execute(q["sql"])
                    if cur.fetchone() is not None:
                        ok.add(q["name"])
                finally:
                    cur.execute("ROLLBACK")
            except Exception as exc:
                if not _is_server_error(exc):
                    raise
                log.info("mysql query failed server=%s query=%s error=%s", self.name, q["name"], exc)
        return ok

    def _emit(
        self,
        out: Samples,
        up: int,
        present: set,
        has_rows: set,
        succeeded: set,
        took: float,
        reason: str | None = None,
    ) -> None:
        name = self.name
        out.add(UP, up, name)
        for candidate in MYSQL_REASONS:
            out.add(FAILURE_REASON, 1 if candidate == reason and not up else 0, name, candidate)
        for db, table in self._items():
            out.add(TABLE_PRESENT, 1 if (db, table) in present else 0, name, db, table)
            out.add(TABLE_HAS_ROWS, 1 if (db, table) in has_rows else 0, name, db, table)
        for q in self.server.queries:
            out.add(QUERY_SUCCESS, 1 if q["name"] in succeeded else 0, name, q["name"])
        out.add(QUERY_DURATION, took, name)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        # cut at the scrape deadline (or still running from an earlier one): the server is slow
        mysql_reason = "timeout" if reason in ("timeout", "still_running") else "error"
        self._emit(out, 0, set(), set(), set(), 0.0, mysql_reason)

    def _log_state(self, up: bool, exc: Exception | None = None, reason: str | None = None) -> None:
        # PyMySQL's messages name the user and host, never the password
        if up != self._was_up:
            if up:
                log.info("mysql server up server=%s", self.name)
            else:
                log.warning("mysql server down server=%s reason=%s error=%s", self.name, reason, exc)
        self._was_up = up


def failure_reason(exc: BaseException, connected: bool) -> str:
    """Which of MYSQL_REASONS `exc` is; `connected` when it came after the login succeeded.

    PyMySQL raises OperationalError(code, message) for nearly everything; a failed TLS
    handshake can surface as ssl.SSLError itself, and a refused or timed-out TCP connect
    keeps the OSError as `original_exception`.
    """
    original = getattr(exc, "original_exception", None)
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    if isinstance(exc, ssl.SSLError) or isinstance(original, ssl.SSLError) or code == TLS_CODE:
        return "tls"
    if isinstance(exc, TimeoutError) or isinstance(original, TimeoutError) or "timed out" in str(exc):
        return "timeout"
    if code in AUTH_CODES:
        return "auth"
    if 1000 <= code < 2000:
        # the server refused a check's statement after the login, or the connection itself
        # (too many connections, host blocked)
        return "query" if connected else "connect"
    if 2000 <= code < 3000 or isinstance(exc, OSError):
        return "connect"
    return "error"


def _is_server_error(exc: Exception) -> bool:
    """A server error (1xxx: syntax, denied, no such table) fails one statement only; a
    client error (2xxx: lost connection, timeout) means the server stopped answering."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return 1000 <= code < 2000
