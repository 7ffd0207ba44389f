"""MySQL check against a real MariaDB: tables present/absent/empty, read-only user, queries,
a wrong password, and a server that is stopped."""

from __future__ import annotations

import logging
import ssl

import pymysql
import pytest
from stackmedic.exporter.checks.mysql_check import MysqlCheck, MysqlServer, failure_reason
from stackmedic.exporter.deadline import Deadline
from stackmedic.exporter.metrics import Samples

from tests.exporter.helpers import scrape

DB = "sm_exporter_petclinic"
RO_USER, RO_PASSWORD = "sm_exporter_ro", "ro-pw-7d1e"


@pytest.fixture(scope="module")
def petclinic(mariadb):
    """A small Petclinic database: owners with rows, pets empty; a read-only user."""
    mariadb.execute(
        f"DROP DATABASE IF EXISTS {DB}",
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.owners (id INT PRIMARY KEY, last_name VARCHAR(30)) ENGINE=InnoDB",
        f"INSERT INTO {DB}.owners VALUES (1, 'Franklin'), (2, 'Davis')",
        f"CREATE TABLE {DB}.pets (id INT PRIMARY KEY) ENGINE=InnoDB",
    )
    mariadb.create_user(RO_USER, RO_PASSWORD, [f"SELECT ON {DB}.*"])
    yield mariadb
    mariadb.execute(f"DROP DATABASE IF EXISTS {DB}", f"DROP USER IF EXISTS '{RO_USER}'@'127.0.0.1'")


def server(db, **kw) -> MysqlServer:
    kw.setdefault("user", RO_USER)
    kw.setdefault("password", RO_PASSWORD)
    kw.setdefault("tables", {DB: ["owners", "pets", "visits"]})
    return MysqlServer(name="stack", host=db.host, port=db.port, **kw)


def table(reg, metric: str, name: str) -> float | None:
    return reg.get_sample_value(
        f"stackmedic_mysql_{metric}", {"server": "stack", "database": DB, "table": name}
    )


def test_tables_present_absent_and_empty_with_a_read_only_user(petclinic):
    reg = scrape([MysqlCheck(server(petclinic))])
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 1
    assert (table(reg, "table_present", "owners"), table(reg, "table_has_rows", "owners")) == (1, 1)
    assert (table(reg, "table_present", "pets"), table(reg, "table_has_rows", "pets")) == (1, 0)
    assert (table(reg, "table_present", "visits"), table(reg, "table_has_rows", "visits")) == (0, 0)
    assert reg.get_sample_value("stackmedic_mysql_query_duration_seconds", {"server": "stack"}) > 0
    assert reg.get_sample_value("stackmedic_check_success", {"check": "mysql/stack"}) == 1


def test_emptied_and_dropped_tables_are_seen(petclinic):
    petclinic.execute(f"CREATE TABLE {DB}.vets (id INT PRIMARY KEY)", f"INSERT INTO {DB}.vets VALUES (1)")
    check = MysqlCheck(server(petclinic, tables={DB: ["vets"]}))
    assert table(scrape([check]), "table_has_rows", "vets") == 1
    petclinic.execute(f"DELETE FROM {DB}.vets")
    assert table(scrape([check]), "table_has_rows", "vets") == 0
    petclinic.execute(f"DROP TABLE {DB}.vets")
    reg = scrape([check])
    assert (table(reg, "table_present", "vets"), table(reg, "table_has_rows", "vets")) == (0, 0)


def test_queries_must_return_a_row(petclinic):
    queries = [
        {"name": "franklin", "database": DB, "sql": "SELECT 1 FROM owners WHERE last_name = 'Franklin'"},
        {"name": "nobody", "database": DB, "sql": "SELECT 1 FROM owners WHERE last_name = 'Nobody'"},
        {"name": "broken", "sql": "SELEKT nonsense"},
        {"name": "denied", "sql": "SELECT 1 FROM mysql.user LIMIT 1"},
    ]
    reg = scrape([MysqlCheck(server(petclinic, queries=queries))])

    def q(name):
        return reg.get_sample_value("stackmedic_mysql_query_success", {"server": "stack", "query": name})

    assert (q("franklin"), q("nobody"), q("broken"), q("denied")) == (1, 0, 0, 0)
    # a failing query is not the server failing
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 1


def test_wrong_password_is_down_and_never_logged(petclinic, caplog):
    caplog.set_level(logging.DEBUG)
    queries = [{"name": "franklin", "database": DB, "sql": "SELECT 1 FROM owners"}]
    reg = scrape([MysqlCheck(server(petclinic, password="not-the-pw-5c2a", queries=queries))])
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 0
    assert table(reg, "table_present", "owners") == 0
    assert (
        reg.get_sample_value("stackmedic_mysql_query_success", {"server": "stack", "query": "franklin"}) == 0
    )
    assert reg.get_sample_value("stackmedic_check_success", {"check": "mysql/stack"}) == 1
    assert "mysql server down server=stack reason=auth" in caplog.text
    assert "Access denied" in caplog.text
    assert "not-the-pw-5c2a" not in caplog.text
    # A login refused is told apart from a server down: the rules do not stop healing for it.
    assert reasons(reg) == {"auth": 1, "connect": 0, "timeout": 0, "tls": 0, "query": 0, "error": 0}


def reasons(reg) -> dict[str, float | None]:
    return {
        r: reg.get_sample_value("stackmedic_mysql_failure_reason", {"server": "stack", "reason": r})
        for r in ("auth", "connect", "timeout", "tls", "query", "error")
    }


def test_up_has_every_reason_at_zero(petclinic):
    reg = scrape([MysqlCheck(server(petclinic))])
    assert reasons(reg) == dict.fromkeys(("auth", "connect", "timeout", "tls", "query", "error"), 0)


def test_a_user_without_access_is_auth(petclinic):
    reg = scrape([MysqlCheck(server(petclinic, user="sm_no_such_user", password="x"))])
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 0
    assert [r for r, v in reasons(reg).items() if v] == ["auth"]


def test_over_the_unix_socket(petclinic):
    reg = scrape(
        [
            MysqlCheck(
                server(petclinic, socket=petclinic.socket, user="root", password=petclinic.root_password)
            )
        ]
    )
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 1
    assert table(reg, "table_has_rows", "owners") == 1


def test_stopped_server_is_down_with_every_item_at_zero(mariadb_factory):
    private = mariadb_factory()
    private.execute("CREATE DATABASE app", "CREATE TABLE app.t (id INT)", "INSERT INTO app.t VALUES (1)")
    srv = MysqlServer(
        name="stack",
        host=private.host,
        port=private.port,
        user="root",
        password=private.root_password,
        timeout=3,
        tables={"app": ["t"]},
    )
    check = MysqlCheck(srv)
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 1
    assert (
        reg.get_sample_value(
            "stackmedic_mysql_table_has_rows", {"server": "stack", "database": "app", "table": "t"}
        )
        == 1
    )
    private.stop()
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 0
    assert [r for r, v in reasons(reg).items() if v] == ["connect"]
    labels = {"server": "stack", "database": "app", "table": "t"}
    assert reg.get_sample_value("stackmedic_mysql_table_present", labels) == 0
    assert reg.get_sample_value("stackmedic_mysql_table_has_rows", labels) == 0
    assert reg.get_sample_value("stackmedic_check_success", {"check": "mysql/stack"}) == 1


def test_hung_server_times_out(hung_server):
    srv = MysqlServer(
        name="stack", host="127.0.0.1", port=hung_server.port, user="u", timeout=0.3, tables={DB: ["owners"]}
    )
    reg = scrape([MysqlCheck(srv)])
    assert (
        reg.get_sample_value("stackmedic_check_failure_reason", {"check": "mysql/stack", "reason": "timeout"})
        == 1
    )
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 0
    assert table(reg, "table_present", "owners") == 0
    assert [r for r, v in reasons(reg).items() if v] == ["timeout"]


def test_connect_always_has_timeouts():
    seen = {}

    def connect(**kwargs):
        seen.update(kwargs)
        raise OSError("no")

    check = MysqlCheck(MysqlServer(name="s", user="u", timeout=4), connect=connect)
    check.run(check.samples(), Deadline.after(2))
    for key in ("connect_timeout", "read_timeout", "write_timeout"):
        assert 0 < seen[key] <= 2


class DroppingCursor:
    """A cursor whose server lost table `gone` between the listing and the row check."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self._row: tuple = ()

    def execute(self, sql: str, args=None) -> None:
        self.statements.append(sql)
        if "`gone`" in sql:
            raise RuntimeError(1146, "Table 'app.gone' doesn't exist")
        self._row = ("1" * sql.count("EXISTS"),)

    def fetchone(self) -> tuple:
        return self._row


def test_rows_checked_in_one_statement_and_one_by_one_after_a_drop():
    check = MysqlCheck(MysqlServer(name="s", user="u", tables={"app": ["a", "b"]}))
    cur = DroppingCursor()
    assert check._has_rows(cur, [("app", "a"), ("app", "b")]) == {("app", "a"), ("app", "b")}
    assert len(cur.statements) == 1
    cur = DroppingCursor()
    assert check._has_rows(cur, [("app", "a"), ("app", "gone"), ("app", "b")]) == {("app", "a"), ("app", "b")}
    assert len(cur.statements) == 4  # the batch, then each table alone


class ListingCursor(DroppingCursor):
    """Also answers the information_schema listing, which names every table but `gone`."""

    def execute(self, sql: str, args=None) -> None:
        if "information_schema" in sql:
            self.statements.append(sql)
            self._rows = [(db, t) for db, t in (("app", "a"), ("app", "b"))]
            return
        super().execute(sql, args)

    def fetchall(self) -> list:
        return self._rows


def test_one_statement_for_the_tables_while_all_are_there():
    check = MysqlCheck(MysqlServer(name="s", user="u", tables={"app": ["a", "b"]}))
    cur = ListingCursor()
    assert check._tables(cur) == ({("app", "a"), ("app", "b")}, {("app", "a"), ("app", "b")})
    assert len(cur.statements) == 1
    # one missing: the listing says which, and the others are asked again
    check = MysqlCheck(MysqlServer(name="s", user="u", tables={"app": ["a", "gone", "b"]}))
    cur = ListingCursor()
    assert check._tables(cur) == ({("app", "a"), ("app", "b")}, {("app", "a"), ("app", "b")})
    assert len(cur.statements) == 3 and "information_schema" in cur.statements[1]


def test_tls_required_against_a_server_without_tls_is_down(petclinic):
    check = MysqlCheck(server(petclinic, tls=True, tls_verify=False))
    assert "ssl" in check._tls  # one context, made once
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_mysql_up", {"server": "stack"}) == 0
    assert [r for r, v in reasons(reg).items() if v] == ["tls"]


@pytest.mark.parametrize(
    ("exc", "connected", "reason"),
    [
        (
            pymysql.err.OperationalError(1045, "Access denied for user 'u'@'h' (using password: YES)"),
            False,
            "auth",
        ),
        (pymysql.err.OperationalError(1130, "Host 'h' is not allowed to connect"), False, "auth"),
        (pymysql.err.OperationalError(1040, "Too many connections"), False, "connect"),
        (
            pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'h' ([Errno 111] ...)"),
            False,
            "connect",
        ),
        (
            pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'h' (timed out)"),
            False,
            "timeout",
        ),
        (
            pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query (timed out)"),
            True,
            "timeout",
        ),
        (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), True, "connect"),
        (pymysql.err.OperationalError(2026, "SSL connection error: certificate verify failed"), False, "tls"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), False, "tls"),
        (pymysql.err.OperationalError(1142, "SELECT command denied to user"), True, "query"),
        (ConnectionRefusedError(111, "Connection refused"), False, "connect"),
        (ValueError("something else"), True, "error"),
    ],
)
def test_failure_reasons(exc: Exception, connected: bool, reason: str):
    assert failure_reason(exc, connected) == reason


def test_a_check_cut_at_the_deadline_reads_timeout(petclinic):
    check = MysqlCheck(server(petclinic))
    out = Samples(check.metrics)
    check.blank(out, "timeout", 1.0)
    assert out.value("mysql_failure_reason", "stack", "timeout") == 1
    assert out.value("mysql_failure_reason", "stack", "connect") == 0
    assert out.value("mysql_up", "stack") == 0


def test_tls_off_by_default_is_explicit(petclinic):
    # PyMySQL would otherwise try TLS and build a CA store on every connection
    assert MysqlCheck(server(petclinic))._tls == {"ssl_disabled": True}


def test_queries_run_read_only_and_are_rolled_back(petclinic):
    """Issue 13 defect 11: a configured INSERT or DELETE must change nothing, at any scrape."""
    petclinic.create_user("sm_exporter_rw", "rw-pw-91ac", [f"SELECT, INSERT, DELETE ON {DB}.*"])
    queries = [
        {"name": "delete", "database": DB, "sql": "DELETE FROM owners"},
        {"name": "insert", "database": DB, "sql": "INSERT INTO owners VALUES (99, 'Mallory')"},
        {"name": "select", "database": DB, "sql": "SELECT 1 FROM owners WHERE id = 1"},
    ]
    check = MysqlCheck(server(petclinic, user="sm_exporter_rw", password="rw-pw-91ac", queries=queries))
    for _ in range(2):
        reg = scrape([check])
    q = {
        n: reg.get_sample_value("stackmedic_mysql_query_success", {"server": "stack", "query": n})
        for n in ("delete", "insert", "select")
    }
    assert q == {"delete": 0, "insert": 0, "select": 1}
    assert petclinic.execute(f"SELECT id FROM {DB}.owners ORDER BY id") == [(1,), (2,)]
    petclinic.execute("DROP USER IF EXISTS 'sm_exporter_rw'@'127.0.0.1'")
