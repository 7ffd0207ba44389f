"""The accounts of jobs/grants.py on the real MariaDB: each can do its job and nothing more.

Issue 10 defect 15: the documented `SET USER ON *.*` let the restore account make itself
`ALL ON *.*`. Doing the jobs with these accounts is what the other tests of this folder do
(make_stack creates them from jobs/grants.py); here is what each one must not do.
"""

from __future__ import annotations

import subprocess
import uuid

import pymysql
import pytest
from stackmedic.jobs.grants import backup_grants, binlog_grants, restore_grants, verify_grants

from harness.services import MariaDB, require_binary

pytestmark = pytest.mark.services
DENIED = (1044, 1045, 1142, 1143, 1227, 1370)


def refused(server: MariaDB, user: str, sql: str, db: str | None = None) -> bool:
    conn = server.connect(db, user=user, password="pw")
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except (pymysql.err.OperationalError, pymysql.err.ProgrammingError) as exc:
        return exc.args[0] in DENIED
    finally:
        conn.close()
    return False


@pytest.fixture
def accounts(mariadb: MariaDB):
    tag = uuid.uuid4().hex[:6]
    db, other = f"g_{tag}", f"o_{tag}"
    mariadb.execute(
        f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.owners (id INT PRIMARY KEY)",
        f"CREATE DATABASE {other}",
        f"CREATE TABLE {other}.t (id INT PRIMARY KEY)",
    )
    users = {
        "backup": (f"gb_{tag}", backup_grants(db)),
        "restore": (f"gr_{tag}", restore_grants(db)),
        "verify": (f"gv_{tag}", verify_grants()),
        "binlog": (f"gl_{tag}", binlog_grants()),
    }
    for name, grants in users.values():
        mariadb.create_user(name, "pw", grants)
    yield db, other, {role: name for role, (name, _) in users.items()}
    mariadb.execute(f"DROP DATABASE {db}", f"DROP DATABASE {other}")
    for name, _ in users.values():
        mariadb.execute(f"DROP USER '{name}'@'127.0.0.1'", f"DROP USER '{name}'@'localhost'")


def test_no_grant_is_root_equivalent():
    everything = backup_grants("petclinic") + restore_grants("petclinic") + verify_grants() + binlog_grants()
    for grant in everything:
        for forbidden in (
            "SET USER",
            "SUPER",
            "BINLOG REPLAY",
            "GRANT OPTION",
            "CREATE USER",
            "ALL PRIVILEGES ON *.*",
        ):
            assert forbidden not in grant, grant
    global_grants = [g for g in everything if g.endswith("ON *.*")]
    assert global_grants == ["REPLICATION SLAVE, BINLOG MONITOR ON *.*"]


def test_the_restore_account_cannot_make_itself_root(mariadb: MariaDB, accounts):
    db, other, users = accounts
    restore = users["restore"]
    # with SET USER this procedure would run as root and GRANT ALL to the restore account
    assert refused(
        mariadb,
        restore,
        f"CREATE DEFINER=`root`@`localhost` PROCEDURE {db}.p() SQL SECURITY DEFINER"
        f" GRANT ALL ON *.* TO '{restore}'@'127.0.0.1'",
    )
    for sql in (
        f"DROP TABLE {other}.t",
        f"CREATE DATABASE stackmedic_verify_{uuid.uuid4().hex[:8]}",
        "SELECT * FROM mysql.global_priv",
        f"GRANT SELECT ON {db}.* TO '{users['verify']}'@'127.0.0.1'",
    ):
        assert refused(mariadb, restore, sql), sql


def test_the_backup_account_reads_and_changes_nothing(mariadb: MariaDB, accounts):
    db, other, users = accounts
    mariadb.execute(f"CREATE PROCEDURE {db}.visits_of() SELECT 1")
    dump = subprocess.run(
        [require_binary("mariadb-dump"), "--protocol=tcp", "-h127.0.0.1", f"-P{mariadb.port}",
         f"-u{users['backup']}", "--single-transaction", "--no-tablespaces", "--routines", db],
        env={"MYSQL_PWD": "pw", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dump.returncode == 0, dump.stderr
    assert "PROCEDURE `visits_of`" in dump.stdout  # routines survive a backup (SELECT ON mysql.proc)
    for sql in (
        f"DELETE FROM {db}.owners",
        f"SELECT * FROM {other}.t",
        "CREATE DATABASE x",
        f"DROP TABLE {db}.owners",
    ):
        assert refused(mariadb, users["backup"], sql), sql


def test_the_binlog_account_reads_binary_logs_and_no_data(mariadb: MariaDB, accounts):
    db, _, users = accounts
    conn = mariadb.connect(user=users["binlog"], password="pw")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            assert cur.fetchall()
    finally:
        conn.close()
    for sql in (f"SELECT * FROM {db}.owners", f"INSERT INTO {db}.owners VALUES (1)"):
        assert refused(mariadb, users["binlog"], sql), sql
