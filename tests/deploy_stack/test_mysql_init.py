"""deploy/compose/mysql-initdb/10-stackmedic.sh, run as the MariaDB image runs it (sourced,
with `docker_process_sql` as root) against a real private MariaDB: each account can do
its job and nothing more."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pymysql
import pytest
from stackmedic.jobs.grants import backup_grants, binlog_grants, restore_grants, verify_grants

from harness.services import MariaDB, require_binary
from tests.deploy_stack.conftest import REPO, generate_secrets

SCRIPT = REPO / "deploy" / "compose" / "mysql-initdb" / "10-stackmedic.sh"


@pytest.fixture
def initialised(mariadb_factory: Callable[[], MariaDB], tmp_path: Path) -> tuple[MariaDB, dict[str, str]]:
    """A fresh server after the init script, and the secrets it read."""
    client = require_binary("mariadb")
    server = mariadb_factory()
    secrets = tmp_path / "secrets"
    generate_secrets(secrets)
    # the image mounts each secret as /run/secrets/<name>; the script reads STACKMEDIC_SECRETS_DIR
    plain = tmp_path / "run-secrets"
    plain.mkdir()
    for f in secrets.glob("*.txt"):
        (plain / f.stem).write_text(f.read_text())
    shim = (
        f'docker_process_sql() {{ "{client}" --protocol=tcp -h127.0.0.1 -P{server.port} '
        f'-uroot -p"$ROOT_PW" --batch; }}\n'
        f'STACKMEDIC_SECRETS_DIR="{plain}"\n'
        f'. "{SCRIPT}"\n'
    )
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", shim],
        env={"PATH": "/usr/bin:/bin", "ROOT_PW": server.root_password},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return server, {f.name: f.read_text() for f in plain.iterdir()}


def connect(server: MariaDB, user: str, password: str, db: str | None = None):
    return server.connect(db, user=user, password=password)


def denied(server: MariaDB, user: str, password: str, sql: str, db: str | None = None) -> bool:
    conn = connect(server, user, password, db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except pymysql.err.OperationalError as exc:
        return exc.args[0] in (1044, 1045, 1142, 1143, 1227, 1370)
    except pymysql.err.ProgrammingError as exc:
        return exc.args[0] in (1044, 1142)
    finally:
        conn.close()
    return False


def test_the_applications_own_their_database_only(initialised):
    server, secrets = initialised
    conn = connect(server, "petclinic", secrets["petclinic_db_password"], "petclinic")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE owners (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO owners VALUES (1)")
    conn.close()
    assert denied(server, "petclinic", secrets["petclinic_db_password"], "SELECT * FROM wordpress.wp_posts")
    assert denied(server, "wordpress", secrets["wordpress_db_password"], "SELECT * FROM petclinic.owners")
    conn = connect(server, "wordpress", secrets["wordpress_db_password"], "wordpress")
    conn.cursor().execute("CREATE TABLE wp_posts (id INT)")
    conn.close()


def test_the_exporter_account_reads_and_never_writes(initialised):
    server, secrets = initialised
    server.execute("CREATE TABLE petclinic.owners (id INT)", "INSERT INTO petclinic.owners VALUES (1)")
    pw = secrets["mysql_exporter_password"]
    conn = connect(server, "stackmedic_exporter", pw)
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS(SELECT 1 FROM petclinic.owners)")
        assert cur.fetchone() == (1,)
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'petclinic'")
        assert cur.fetchall() == (("owners",),)
        cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
    conn.close()
    assert denied(server, "stackmedic_exporter", pw, "INSERT INTO petclinic.owners VALUES (2)")
    assert denied(server, "stackmedic_exporter", pw, "SELECT * FROM mysql.user")
    assert denied(server, "stackmedic_exporter", pw, "DROP TABLE petclinic.owners")


def test_the_backup_account_can_dump_and_not_change_anything(initialised, tmp_path: Path):
    server, secrets = initialised
    dump = require_binary("mariadb-dump")
    server.execute("CREATE TABLE petclinic.owners (id INT)", "INSERT INTO petclinic.owners VALUES (7)")
    pw = secrets["mysql_backup_password"]
    run = subprocess.run(
        [dump, "--protocol=tcp", "-h127.0.0.1", f"-P{server.port}", "-ustackmedic_backup",
         "--single-transaction", "--routines", "--triggers", "--events", "petclinic"],
        env={"MYSQL_PWD": pw, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "INSERT INTO `owners` VALUES" in run.stdout
    assert denied(server, "stackmedic_backup", pw, "DELETE FROM petclinic.owners")
    assert denied(server, "stackmedic_backup", pw, "CREATE DATABASE elsewhere")


def test_the_restore_account_reaches_the_apps_and_the_scratch_databases_only(initialised):
    server, secrets = initialised
    pw = secrets["mysql_restore_password"]
    conn = connect(server, "stackmedic_restore", pw)
    with conn.cursor() as cur:
        # what jobs/restore.py does
        cur.execute("DROP DATABASE IF EXISTS petclinic")
        cur.execute("CREATE DATABASE petclinic CHARACTER SET utf8mb4")
        cur.execute("CREATE TABLE petclinic.owners (id INT)")
        cur.execute("CREATE DATABASE stackmedic_restore_load_0123456789ab CHARACTER SET utf8mb4")
        cur.execute("CREATE TABLE stackmedic_restore_load_0123456789ab.t (id INT)")
        cur.execute("DROP DATABASE stackmedic_restore_load_0123456789ab")
    conn.close()
    assert denied(server, "stackmedic_restore", pw, "CREATE DATABASE stackmedicXrestore_x")
    assert denied(server, "stackmedic_restore", pw, "CREATE DATABASE stackmedic_verify_x")
    assert denied(server, "stackmedic_restore", pw, "CREATE DATABASE other")
    assert denied(server, "stackmedic_restore", pw, "SELECT * FROM mysql.user")
    # SET USER would let it define a procedure as root and run it: root-equivalent
    assert denied(
        server,
        "stackmedic_restore",
        pw,
        "CREATE DEFINER=`root`@`localhost` PROCEDURE p() SQL SECURITY DEFINER SELECT 1",
        "petclinic",
    )


def test_the_verify_account_reaches_its_scratch_databases_only(initialised):
    server, secrets = initialised
    server.execute("CREATE TABLE petclinic.owners (id INT)", "INSERT INTO petclinic.owners VALUES (1)")
    pw = secrets["mysql_verify_password"]
    conn = connect(server, "stackmedic_verify", pw)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE stackmedic_verify_0123abcd_0123456789ab CHARACTER SET utf8mb4")
        cur.execute("CREATE TABLE stackmedic_verify_0123abcd_0123456789ab.t (id INT)")
        cur.execute("DROP DATABASE stackmedic_verify_0123abcd_0123456789ab")
    conn.close()
    for sql in (
        "DROP TABLE petclinic.owners",
        "SELECT * FROM petclinic.owners",
        "DROP DATABASE wordpress",
        "CREATE DATABASE stackmedic_restore_load_0123456789ab",
        "SELECT * FROM mysql.proc",
    ):
        assert denied(server, "stackmedic_verify", pw, sql), sql
    assert server.execute("SELECT COUNT(*) FROM petclinic.owners") == [(1,)]


def test_the_binlog_account_reads_binary_log_metadata_and_no_data(initialised):
    server, secrets = initialised
    pw = secrets["mysql_binlog_password"]
    conn = connect(server, "stackmedic_binlog", pw)
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")  # BINLOG MONITOR; REPLICATION SLAVE lets it stream the logs
    conn.close()
    assert denied(server, "stackmedic_binlog", pw, "SELECT * FROM petclinic.owners")
    assert denied(server, "stackmedic_binlog", pw, "CREATE DATABASE x")


def _grants(server: MariaDB, user: str) -> list[str]:
    rows = server.execute(f"SHOW GRANTS FOR '{user}'@'%'")
    out = []
    for (line,) in rows:
        line = line.replace(f"`{user}`@`%`", "ACCOUNT")
        out.append(re.sub(r" IDENTIFIED BY PASSWORD '[^']*'", "", line))
    return sorted(out)


def test_the_accounts_hold_exactly_what_jobs_grants_py_documents(initialised):
    server, _ = initialised
    databases = ("petclinic", "wordpress")
    expected = {
        "stackmedic_backup": [g for db in databases for g in backup_grants(db)],
        "stackmedic_restore": [g for db in databases for g in restore_grants(db)],
        "stackmedic_verify": verify_grants(),
        "stackmedic_binlog": binlog_grants(),
    }
    for account, grants in expected.items():
        twin = f"twin_{account}"
        server.execute(f"CREATE USER '{twin}'@'%'", *(f"GRANT {g} TO '{twin}'@'%'" for g in set(grants)))
        assert _grants(server, account) == _grants(server, twin), account
    everything = "\n".join(line for account in expected for line in _grants(server, account))
    for forbidden in ("SET USER", "SUPER", "ALL PRIVILEGES ON *.*", "GRANT OPTION", "`mysql`.*"):
        assert forbidden not in everything
    assert "PROCESS" not in "\n".join(_grants(server, "stackmedic_exporter"))


def test_procedures_survive_a_backup_made_with_the_backup_account(initialised):
    server, secrets = initialised
    dump = require_binary("mariadb-dump")
    server.execute("CREATE PROCEDURE petclinic.visits_of() SELECT 1")
    run = subprocess.run(
        [dump, "--protocol=tcp", "-h127.0.0.1", f"-P{server.port}", "-ustackmedic_backup",
         "--single-transaction", "--no-tablespaces", "--routines", "petclinic"],
        env={"MYSQL_PWD": secrets["mysql_backup_password"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "PROCEDURE `visits_of`" in run.stdout


def test_a_quote_in_a_password_cannot_break_out_of_the_sql(mariadb_factory, tmp_path: Path):
    client = require_binary("mariadb")
    server = mariadb_factory()
    plain = tmp_path / "s"
    plain.mkdir()
    generate_secrets(tmp_path / "gen")
    for f in (tmp_path / "gen").glob("*.txt"):
        (plain / f.stem).write_text(f.read_text())
    tricky = "x'; DROP DATABASE mysql; -- \\"
    (plain / "petclinic_db_password").write_text(tricky)
    shim = (
        f'docker_process_sql() {{ "{client}" --protocol=tcp -h127.0.0.1 -P{server.port} '
        f'-uroot -p"$ROOT_PW" --batch; }}\nSTACKMEDIC_SECRETS_DIR="{plain}"\n. "{SCRIPT}"\n'
    )
    run = subprocess.run(
        ["bash", "-c", shim],
        env={"PATH": "/usr/bin:/bin", "ROOT_PW": server.root_password},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    connect(server, "petclinic", tricky, "petclinic").close()
    assert server.execute("SHOW DATABASES LIKE 'mysql'") == [("mysql",)]
