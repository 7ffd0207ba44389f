"""TLS to MariaDB for the receiver's MySQL store and the jobs (PyMySQL and the mariadb clients),
against a real MariaDB that offers TLS with certificates of a private CA."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from stackmedic.jobs import config as jc
from stackmedic.jobs import db as dbc
from stackmedic.jobs.dump import dump_to_file
from stackmedic.jobs.errors import JobError, ServerDown
from stackmedic.receiver import config as rc
from stackmedic.receiver.store import StoreError
from stackmedic.receiver.store.mysql import MySQLStore

from harness.services import MariaDB, require_binary
from stackmedic.config import ConfigError
from stackmedic.mysql_tls import MysqlTls
from tests.security.certs import Certs, make_certs

PW = "tls-test-pw"  # noqa: S105 - a throwaway account


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("mysql-certs"))


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[MariaDB]:
    """A MariaDB offering TLS; `plain` has no TLS requirement, `secure` REQUIRE SSL, `x509` REQUIRE X509."""
    server = MariaDB(
        tmp_path_factory.mktemp("mariadb-tls"),
        binlog=True,
        tls=(certs.ca, certs.server_cert, certs.server_key),
    ).start()
    try:
        server.execute("CREATE DATABASE tlsdb", "CREATE TABLE tlsdb.t (id INT PRIMARY KEY)")
        server.execute("INSERT INTO tlsdb.t VALUES (1), (2), (3)")
        for name, require in (("plain", ""), ("secure", " REQUIRE SSL"), ("x509", " REQUIRE X509")):
            server.execute(
                f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{PW}'{require}",
                f"GRANT ALL ON tlsdb.* TO '{name}'@'127.0.0.1'",
                f"GRANT SELECT ON *.* TO '{name}'@'127.0.0.1'",  # mariadb-dump reads mysql.* for events
                f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{name}'@'127.0.0.1'",  # mariadb-binlog
            )
        yield server
    finally:
        server.stop()


@pytest.fixture
def pw(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TLS_TEST_PW", PW)
    return "TLS_TEST_PW"


def tls(certs: Certs, **kw) -> MysqlTls:
    return MysqlTls(**{"enabled": True, "ca_file": str(certs.ca), **kw})


# --- configuration: every problem, each with its key path ---


def test_receiver_store_tls_problems_are_reported_at_once_with_key_paths(tmp_path, certs):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    base = {"auth": "none", "dry_run": True}
    store = {"type": "mysql", "host": "db", "user": "u", "database": "d"}
    with pytest.raises(ConfigError) as err:
        rc.build({**base, "store": {**store, "tls_ca_file": str(certs.ca)}})
    assert err.value.problems == [("store.tls_ca_file", "needs tls: true")]
    with pytest.raises(ConfigError) as err:
        rc.build({**base, "store": {**store, "tls": True, "tls_cert_file": str(tmp_path / "nope.crt")}})
    assert sorted(err.value.problems) == [
        ("store.tls_ca_file", "required with tls_verify (the CA that signed the server's certificate)"),
        ("store.tls_cert_file", f"cannot read {tmp_path / 'nope.crt'}: No such file or directory"),
        ("store.tls_key_file", "tls_cert_file and tls_key_file go together"),
    ]
    with pytest.raises(ConfigError) as err:
        rc.build({**base, "store": {**store, "tls": True, "tls_ca_file": str(garbage)}})
    [(path, message)] = err.value.problems
    assert path == "store.tls_ca_file" and message.startswith("not a usable CA certificate file")
    with pytest.raises(ConfigError) as err:
        rc.build({**base, "store": {"type": "sqlite", "tls": True}})
    assert err.value.problems == [("store.tls", "only for the mysql store")]
    good = rc.build({**base, "store": {**store, "tls": True, "tls_ca_file": str(certs.ca)}})
    assert good.store.tls == MysqlTls(enabled=True, ca_file=str(certs.ca))
    assert rc.build({**base, "store": store}).store.tls == MysqlTls()  # off unless asked for


def test_jobs_tls_problems_carry_the_database_key_path(tmp_path, certs):
    user = {"user": "u", "password_env": "X"}
    db = {
        "backup_user": user,
        "restore_user": user,
        "verify_user": user,
        "backup_dir": str(tmp_path),
        "required_tables": ["t"],
    }
    data = {
        "databases": {
            "petclinic": {**db, "connection": {"tls": True, "tls_key_file": str(certs.client_key)}},
            "wordpress": {**db, "connection": {"tls": True, "tls_ca_file": str(certs.ca)}},
        }
    }
    with pytest.raises(ConfigError) as err:
        jc.parse(data)
    assert sorted(err.value.problems) == [
        ("databases.petclinic.connection.tls_ca_file", "required with tls_verify (the CA that signed the server's certificate)"),
        ("databases.petclinic.connection.tls_cert_file", "tls_cert_file and tls_key_file go together"),
    ]  # fmt: skip
    data["databases"]["petclinic"]["connection"] = {
        "tls": True,
        "tls_ca_file": str(certs.ca),
        "tls_cert_file": str(certs.client_key),  # the key where the certificate belongs
        "tls_key_file": str(certs.client_key),
    }
    with pytest.raises(ConfigError) as err:
        jc.parse(data)
    [(path, message)] = err.value.problems
    assert path == "databases.petclinic.connection.tls_cert_file"
    assert message.startswith("not usable with tls_key_file")


def test_client_option_file_lines():
    assert MysqlTls().client_option_lines() == ["skip-ssl"]
    on = MysqlTls(enabled=True, ca_file="/ca.crt", cert_file="/c.crt", key_file='/k "1".key')
    assert on.client_option_lines() == [
        "ssl",
        'ssl-ca="/ca.crt"',
        'ssl-cert="/c.crt"',
        'ssl-key="/k \\"1\\".key"',
        "ssl-verify-server-cert",
    ]
    assert MysqlTls(enabled=True, verify=False).client_option_lines() == [
        "ssl",
        "skip-ssl-verify-server-cert",
    ]


# --- the receiver's store against the real server ---


def store_config(server: MariaDB, pw_env: str, tls_: MysqlTls, user: str = "secure") -> rc.StoreConfig:
    section = {
        "type": "mysql",
        "host": server.host,
        "port": server.port,
        "user": user,
        "password_env": pw_env,
        "database": "tlsdb",
    }
    config = rc.build({"auth": "none", "dry_run": True, "store": section})
    return replace(config.store, tls=tls_)


def cipher(tx) -> str:
    return tx.rows("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0]["Value"]


@pytest.mark.services
def test_receiver_store_over_tls_with_the_right_ca(tls_mariadb, certs, pw):
    store = MySQLStore(store_config(tls_mariadb, pw, tls(certs)))
    try:
        store.create_schema()
        assert store.atomic(cipher)  # a REQUIRE SSL account got in, over TLS
    finally:
        store.close()


@pytest.mark.services
def test_receiver_store_refuses_a_server_certificate_of_another_ca(tls_mariadb, certs, pw):
    rogue = certs.ca.parent / "rogue-ca.crt"
    store = MySQLStore(store_config(tls_mariadb, pw, tls(certs, ca_file=str(rogue))))
    with pytest.raises(StoreError) as err:
        store.ping()
    message = str(err.value)
    assert "the server's certificate was refused: self-signed certificate in certificate chain" in message
    assert f"store.tls_ca_file {rogue}" in message
    assert PW not in message


@pytest.mark.services
def test_receiver_store_without_tls_cannot_use_a_require_ssl_account(tls_mariadb, certs, pw):
    store = MySQLStore(store_config(tls_mariadb, pw, MysqlTls()))
    with pytest.raises(StoreError) as err:
        store.ping()
    assert "Access denied for user 'secure'" in str(err.value)
    plain = MySQLStore(store_config(tls_mariadb, pw, MysqlTls(), user="plain"))
    try:
        assert plain.atomic(cipher) == ""  # TLS only when configured
    finally:
        plain.close()


# --- the jobs: PyMySQL and the mariadb clients ---


def connection(server: MariaDB, tls_: MysqlTls) -> jc.Connection:
    return jc.Connection(host=server.host, port=server.port, tls=tls_)


def session_cipher(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()[1]


@pytest.mark.services
def test_jobs_connect_over_tls_and_name_a_refused_certificate(tls_mariadb, certs, pw):
    secure = jc.User("secure", password_env=pw)
    conn = dbc.connect(connection(tls_mariadb, tls(certs)), secure)
    try:
        assert session_cipher(conn)
    finally:
        conn.close()
    rogue = tls(certs, ca_file=str(certs.ca.parent / "rogue-ca.crt"))
    with pytest.raises(JobError) as err:
        dbc.connect(connection(tls_mariadb, rogue), secure)
    assert not isinstance(err.value, ServerDown)  # the server answered: it is not down
    assert str(err.value) == (
        f"cannot connect to 127.0.0.1:{tls_mariadb.port} as secure: the server's certificate was refused:"
        " self-signed certificate in certificate chain"
    )
    with pytest.raises(JobError) as err:
        dbc.connect(connection(tls_mariadb, MysqlTls()), secure)
    assert str(err.value) == (
        f"access denied for secure on 127.0.0.1:{tls_mariadb.port} (or the account requires TLS: set tls: true)"
    )


@pytest.mark.services
def test_jobs_client_certificate_for_a_require_x509_account(tls_mariadb, certs, pw):
    x509 = jc.User("x509", password_env=pw)
    with pytest.raises(JobError, match="access denied for x509"):
        dbc.connect(connection(tls_mariadb, tls(certs)), x509)  # TLS but no client certificate
    with_cert = tls(certs, cert_file=str(certs.client_cert), key_file=str(certs.client_key))
    conn = dbc.connect(connection(tls_mariadb, with_cert), x509)
    try:
        assert session_cipher(conn)
    finally:
        conn.close()


def run_client(conn: jc.Connection, user: jc.User, sql: str) -> subprocess.CompletedProcess:
    with dbc.options_fd(conn, user) as (fd, arg):
        return subprocess.run(
            [require_binary("mariadb"), arg, "--batch", "--skip-column-names", "-e", sql],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.mark.services
def test_mariadb_client_uses_tls_verifies_the_server_and_sends_the_client_certificate(tls_mariadb, certs, pw):
    status = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"
    secure, x509 = jc.User("secure", password_env=pw), jc.User("x509", password_env=pw)
    good = run_client(connection(tls_mariadb, tls(certs)), secure, status)
    assert good.returncode == 0, good.stderr
    assert good.stdout.split("\t")[1].strip()  # a cipher: the session is encrypted
    rogue = run_client(
        connection(tls_mariadb, tls(certs, ca_file=str(certs.ca.parent / "rogue-ca.crt"))), secure, status
    )
    assert rogue.returncode != 0 and "ERROR 2026 (HY000): TLS/SSL error:" in rogue.stderr
    plain = run_client(connection(tls_mariadb, MysqlTls()), secure, status)
    assert plain.returncode != 0 and "Access denied for user 'secure'" in plain.stderr
    with_cert = tls(certs, cert_file=str(certs.client_cert), key_file=str(certs.client_key))
    x = run_client(connection(tls_mariadb, with_cert), x509, status)
    assert x.returncode == 0, x.stderr


@pytest.mark.services
def test_a_dump_over_tls_by_a_require_ssl_account(tls_mariadb, certs, pw, tmp_path: Path):
    secure = jc.User("secure", password_env=pw)
    dest = tmp_path / "tlsdb.sql.gz"
    dump_to_file("mariadb-dump", connection(tls_mariadb, tls(certs)), secure, "tlsdb", dest)
    text = gzip.decompress(dest.read_bytes()).decode()
    assert "INSERT INTO `t` VALUES" in text and "(1),\n(2),\n(3);" in text
    with pytest.raises(JobError, match="TLS/SSL error: self-signed certificate in certificate chain"):
        rogue = tls(certs, ca_file=str(certs.ca.parent / "rogue-ca.crt"))
        dump_to_file("mariadb-dump", connection(tls_mariadb, rogue), secure, "tlsdb", tmp_path / "x.sql.gz")


@pytest.mark.services
def test_receiver_start_up_names_the_tls_failure(tls_mariadb, certs, pw, tmp_path, capsys):
    from stackmedic.receiver.cli import main

    rogue = certs.ca.parent / "rogue-ca.crt"
    config = tmp_path / "receiver.yml"
    config.write_text(
        "auth: none\ndry_run: true\nstore:\n  type: mysql\n"
        f"  host: {tls_mariadb.host}\n  port: {tls_mariadb.port}\n  user: secure\n"
        f"  password_env: {pw}\n  database: tlsdb\n  tls: true\n  tls_ca_file: {rogue}\n"
    )
    assert main(["--config.file", str(config), "--web.listen-address", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stackmedic-receiver: store failed: the server's certificate was refused")


@pytest.mark.services
def test_mariadb_binlog_reads_the_binary_log_over_tls(tls_mariadb, certs, pw):
    """Point-in-time recovery's reader gets the same option file as the other clients."""
    secure = jc.User("secure", password_env=pw)
    first = tls_mariadb.execute("SHOW BINARY LOGS")[0][0]

    def read(tls_: MysqlTls) -> subprocess.CompletedProcess:
        with dbc.options_fd(connection(tls_mariadb, tls_), secure) as (fd, arg):
            return subprocess.run(
                [require_binary("mariadb-binlog"), arg, "--read-from-remote-server", first],
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )

    good = read(tls(certs))
    assert good.returncode == 0, good.stderr
    assert "CREATE TABLE t" in good.stdout  # the fixture's own statement, read over TLS
    rogue = read(tls(certs, ca_file=str(certs.ca.parent / "rogue-ca.crt")))
    assert rogue.returncode != 0 and "TLS/SSL error" in rogue.stderr
    plain = read(MysqlTls())  # a REQUIRE SSL account, without TLS
    assert plain.returncode != 0 and "Access denied for user 'secure'" in plain.stderr


# --- the exporter: the same files, and a client certificate ---


@pytest.mark.services
def test_the_exporter_logs_in_with_a_client_certificate_and_names_a_refused_server(tls_mariadb, certs):
    from stackmedic.exporter.checks.mysql_check import MysqlCheck, MysqlServer

    from tests.exporter.helpers import scrape

    def up(**kw) -> tuple[float | None, float | None]:
        server = MysqlServer(
            name="s", host=tls_mariadb.host, port=tls_mariadb.port, user="x509", password=PW, tls=True, **kw
        )
        reg = scrape([MysqlCheck(server)])
        return (
            reg.get_sample_value("stackmedic_mysql_up", {"server": "s"}),
            reg.get_sample_value("stackmedic_mysql_failure_reason", {"server": "s", "reason": "tls"}),
        )

    client = {"tls_cert_file": str(certs.client_cert), "tls_key_file": str(certs.client_key)}
    assert up(tls_ca_file=str(certs.ca), **client) == (1, 0)
    assert up(tls_ca_file=str(certs.ca))[0] == 0  # REQUIRE X509 without the client certificate
    assert up(tls_ca_file=str(certs.ca.parent / "rogue-ca.crt"), **client) == (0, 1)


def test_exporter_tls_problems_carry_the_server_key_path(certs, monkeypatch):
    from stackmedic.exporter.config import parse

    monkeypatch.setenv("X_PW", "pw")
    base = {"name": "s", "user": "u", "password_env": "X_PW"}
    with pytest.raises(ConfigError) as err:
        parse(
            {
                "mysql": [
                    {**base, "tls_ca_file": str(certs.ca)},
                    {**base, "name": "t", "tls": True, "tls_cert_file": str(certs.client_cert)},
                ]
            }
        )
    assert sorted(err.value.problems) == [
        ("mysql[0].tls_ca_file", "needs tls: true"),
        ("mysql[1].tls_key_file", "tls_cert_file and tls_key_file go together"),
    ]
    # without a CA file the exporter (PyMySQL alone) verifies against the system's CA store
    assert parse({"mysql": [{**base, "tls": True}]})["mysql"][0]["tls"] is True
