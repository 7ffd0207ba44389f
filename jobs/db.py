"""Connections to the database server, and client option files that never touch the disk.

Passwords reach `mariadb-dump` and `mariadb` through `--defaults-extra-file=/dev/fd/N`, a
pipe inherited by the child: not on its command line (visible in `ps`), not in its
environment, and not in a file a SIGKILL would leave behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pymysql

from stackmedic.mysql_tls import tls_failure

from .config import Connection, User
from .errors import JobError, ServerDown

# Client errors that mean "nobody answers": can't connect over socket / TCP, server gone away,
# lost connection during the handshake.
SERVER_DOWN_ERRORS = {2002, 2003, 2006, 2013}
ACCESS_DENIED = 1045


def quote_ident(name: str) -> str:
    """A MariaDB identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def connect(
    conn: Connection, user: User, database: str | None = None, client_flag: int = 0
) -> pymysql.connections.Connection:
    """A PyMySQL connection (autocommit); ServerDown when the server does not answer."""
    kwargs: dict = {
        "client_flag": client_flag,
        "user": user.user,
        "password": user.password() or "",
        "database": database,
        "autocommit": True,
        "connect_timeout": conn.connect_timeout,
        "charset": "utf8mb4",
    }
    if conn.socket:
        kwargs["unix_socket"] = conn.socket
    else:
        kwargs["host"], kwargs["port"] = conn.host, conn.port
    kwargs.update(conn.tls.pymysql_options())
    try:
        return pymysql.connect(**kwargs)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        tls = tls_failure(exc)
        if tls is not None:  # not "down": the server answered, and we refused it or it refused us
            raise JobError(f"cannot connect to {conn.describe()} as {user.user}: {tls}") from None
        if code in SERVER_DOWN_ERRORS:
            raise ServerDown(f"database server {conn.describe()} is down ({exc.args[-1]})") from None
        if code == ACCESS_DENIED:
            hint = "" if conn.tls.enabled else " (or the account requires TLS: set tls: true)"
            raise JobError(f"access denied for {user.user} on {conn.describe()}{hint}") from None
        raise JobError(f"cannot connect to {conn.describe()} as {user.user}: {exc.args[-1]}") from None


def check_server(conn: Connection, user: User) -> None:
    """Raise ServerDown unless the server answers a query."""
    c = connect(conn, user)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        c.close()


def database_exists(cursor, database: str) -> bool:
    cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
    return cursor.fetchone() is not None


def base_tables(cursor, database: str) -> list[str]:
    """Names of the base tables (not views) of `database`, sorted."""
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'"
        " ORDER BY TABLE_NAME",
        (database,),
    )
    return [row[0] for row in cursor.fetchall()]


def table_counts(cursor, database: str) -> dict[str, int]:
    """Exact COUNT(*) of every base table of `database`."""
    counts = {}
    for table in base_tables(cursor, database):
        cursor.execute(f"SELECT COUNT(*) FROM {quote_ident(database)}.{quote_ident(table)}")  # noqa: S608
        counts[table] = int(cursor.fetchone()[0])
    return counts


def _option_value(value: str) -> str:
    # Option files take "..." with backslash escapes; quoting keeps '#' and spaces literal.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def client_options(conn: Connection, user: User) -> bytes:
    """The [client] section for `conn` and `user`, password included."""
    lines = ["[client]", f"user={_option_value(user.user)}"]
    password = user.password()
    if password is not None:
        lines.append(f"password={_option_value(password)}")
    if conn.socket:
        lines += ["protocol=SOCKET", f"socket={_option_value(conn.socket)}"]
    else:
        lines += ["protocol=TCP", f"host={_option_value(conn.host)}", f"port={conn.port}"]
    lines += conn.tls.client_option_lines()
    return ("\n".join(lines) + "\n").encode("utf-8")


@contextlib.contextmanager
def options_fd(conn: Connection, user: User) -> Iterator[tuple[int, str]]:
    """(fd, '--defaults-extra-file=/dev/fd/N') for one child; pass the fd with pass_fds."""
    data = client_options(conn, user)
    read_fd, write_fd = os.pipe()
    try:
        # A few hundred bytes: far below the pipe buffer, so this never blocks.
        os.write(write_fd, data)
        os.close(write_fd)
        write_fd = -1
        yield read_fd, f"--defaults-extra-file=/dev/fd/{read_fd}"
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
