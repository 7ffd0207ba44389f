"""Fixtures for the job programs: a Petclinic-like database on the real MariaDB, users with
exactly the documented grants, a configuration file, and ways to run `stackmedic-job`."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from stackmedic.jobs import config as jc
from stackmedic.jobs.cli import main
from stackmedic.jobs.grants import backup_grants, restore_grants, verify_grants

from harness.services import MariaDB

REPO = Path(__file__).resolve().parents[2]

PETCLINIC_SCHEMA = [
    """CREATE TABLE vets (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(30),
       last_name VARCHAR(30), INDEX (last_name)) ENGINE=InnoDB""",
    """CREATE TABLE specialties (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80),
       INDEX (name)) ENGINE=InnoDB""",
    """CREATE TABLE vet_specialties (vet_id INT UNSIGNED NOT NULL, specialty_id INT UNSIGNED NOT NULL,
       FOREIGN KEY (vet_id) REFERENCES vets(id), FOREIGN KEY (specialty_id) REFERENCES specialties(id),
       UNIQUE (vet_id, specialty_id)) ENGINE=InnoDB""",
    "CREATE TABLE types (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80)) ENGINE=InnoDB",
    """CREATE TABLE owners (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(30),
       last_name VARCHAR(30), address VARCHAR(255), city VARCHAR(80), telephone VARCHAR(20),
       INDEX (last_name)) ENGINE=InnoDB""",
    """CREATE TABLE pets (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30), birth_date DATE,
       type_id INT UNSIGNED NOT NULL, owner_id INT UNSIGNED, INDEX (name),
       FOREIGN KEY (owner_id) REFERENCES owners(id), FOREIGN KEY (type_id) REFERENCES types(id)) ENGINE=InnoDB""",
    """CREATE TABLE visits (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, pet_id INT UNSIGNED,
       visit_date DATE, description VARCHAR(255), FOREIGN KEY (pet_id) REFERENCES pets(id)) ENGINE=InnoDB""",
    """CREATE VIEW owner_pet_counts AS SELECT o.id, o.last_name, COUNT(p.id) AS pets
       FROM owners o LEFT JOIN pets p ON p.owner_id = o.id GROUP BY o.id, o.last_name""",
    """CREATE TRIGGER visits_default_description BEFORE INSERT ON visits FOR EACH ROW
       SET NEW.description = COALESCE(NEW.description, 'check-up')""",
    """CREATE PROCEDURE visits_of(IN owner INT UNSIGNED)
       SELECT v.* FROM visits v JOIN pets p ON p.id = v.pet_id WHERE p.owner_id = owner""",
    "CREATE EVENT tidy_visits ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM visits WHERE visit_date < '1900-01-01'",
]
REQUIRED = ["owners", "pets", "types", "vets", "visits", "specialties", "vet_specialties"]
FIRST = [
    "George",
    "Betty",
    "Eduardo",
    "Harold",
    "Peter",
    "Jean",
    "Jeff",
    "Maria",
    "David",
    "Carlos",
    "Zoë",
    "O'Brien",
]
LAST = [
    "Franklin",
    "Davis",
    "Rodriquez",
    "McTavish",
    "Escobito",
    "Müller",
    'Back\\slash "Q"',
    "Coleman",
    "Black",
]


def fill_petclinic(
    mariadb: MariaDB, db: str, owners: int = 2000, pets: int = 3000, visits: int = 6000
) -> None:
    """The Petclinic schema with thousands of rows, odd characters and NULLs included."""
    rnd = random.Random(42)
    conn = mariadb.connect(db)
    try:
        with conn.cursor() as cur:
            for statement in PETCLINIC_SCHEMA:
                cur.execute(statement)
            cur.executemany(
                "INSERT INTO types (name) VALUES (%s)",
                [(t,) for t in ("cat", "dog", "lizard", "snake", "bird", "hamster 🐹")],
            )
            cur.executemany(
                "INSERT INTO specialties (name) VALUES (%s)",
                [(s,) for s in ("radiology", "surgery", "dentistry")],
            )
            cur.executemany(
                "INSERT INTO vets (first_name, last_name) VALUES (%s, %s)",
                [(rnd.choice(FIRST), rnd.choice(LAST)) for _ in range(50)],
            )
            cur.executemany(
                "INSERT IGNORE INTO vet_specialties VALUES (%s, %s)",
                [(rnd.randint(1, 50), rnd.randint(1, 3)) for _ in range(60)],
            )
            cur.executemany(
                "INSERT INTO owners (first_name, last_name, address, city, telephone) VALUES (%s, %s, %s, %s, %s)",
                [
                    (
                        rnd.choice(FIRST),
                        rnd.choice(LAST),
                        f"{i} Main St.\n",
                        rnd.choice(["Madison", None]),
                        f"608555{i:04d}",
                    )
                    for i in range(owners)
                ],
            )
            cur.executemany(
                "INSERT INTO pets (name, birth_date, type_id, owner_id) VALUES (%s, %s, %s, %s)",
                [
                    (
                        f"pet{i}",
                        f"20{rnd.randint(10, 25)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}",
                        rnd.randint(1, 6),
                        rnd.randint(1, owners),
                    )
                    for i in range(pets)
                ],
            )
            cur.executemany(
                "INSERT INTO visits (pet_id, visit_date, description) VALUES (%s, %s, %s)",
                [
                    (
                        rnd.randint(1, pets),
                        "2026-01-0" + str(rnd.randint(1, 9)),
                        rnd.choice(["rabies shot", None, "spayed\ttab"]),
                    )
                    for _ in range(visits)
                ],
            )
    finally:
        conn.close()


def snapshot(mariadb: MariaDB, db: str) -> dict[str, object]:
    """Every table's rows (hashed, order-independent) and the names of views, routines, triggers, events."""
    conn = mariadb.connect(db)
    out: dict[str, object] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,)
            )
            tables = sorted(cur.fetchall())
            out["objects"] = tables
            for name, kind in tables:
                if kind != "BASE TABLE":
                    continue
                cur.execute(f"SELECT * FROM `{name}`")
                rows = sorted(repr(r) for r in cur.fetchall())
                out[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
            cur.execute(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s", (db,)
            )
            out["routines"] = sorted(r[0] for r in cur.fetchall())
            cur.execute(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db,)
            )
            out["triggers"] = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (db,))
            out["events"] = sorted(r[0] for r in cur.fetchall())
    finally:
        conn.close()
    return out


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class JobStack:
    """One database on a real server, its two users, a config file, and runners of stackmedic-job."""

    mariadb: MariaDB
    db: str
    config_path: Path
    backup_root: Path
    env: dict[str, str]
    capsys: pytest.CaptureFixture
    required: list[str]

    @property
    def config(self) -> jc.JobsConfig:
        return jc.load(self.config_path)

    @property
    def database(self) -> jc.Database:
        return self.config.database(self.db)

    @property
    def directory(self) -> Path:
        return self.backup_root / self.db

    def run(self, *args: str) -> Result:
        """stackmedic-job in this process (main(argv)), with its stdout and stderr."""
        self.capsys.readouterr()
        rc = main(["--config.file", str(self.config_path), *args])
        captured = self.capsys.readouterr()
        return Result(rc, captured.out, captured.err)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "stackmedic.jobs", "--config.file", str(self.config_path), *args]

    def spawn(self, *args: str, stderr: Path | None = None) -> subprocess.Popen:
        """stackmedic-job as its own process (in its own process group, for kill tests)."""
        env = {**os.environ, **self.env}
        err = open(stderr, "wb") if stderr else subprocess.PIPE  # noqa: SIM115 - closed by the caller's wait
        return subprocess.Popen(
            self.argv(*args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )

    def snapshot(self) -> dict[str, object]:
        return snapshot(self.mariadb, self.db)

    def execute(self, *statements: str) -> list[tuple]:
        return self.mariadb.execute("SET FOREIGN_KEY_CHECKS = 0", *statements, db=self.db)


def make_stack(
    mariadb: MariaDB,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    required: list[str] | None = None,
) -> JobStack:
    """A fresh database with users holding exactly jobs.grants, and a config file for it."""
    suffix = uuid.uuid4().hex[:8]
    db = f"pc_{suffix}"
    mariadb.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    backup_user, restore_user, verify_user = f"smb_{suffix}", f"smr_{suffix}", f"smv_{suffix}"
    mariadb.create_user(backup_user, "backup-pw #1", backup_grants(db))
    mariadb.create_user(restore_user, 'restore "pw"', restore_grants(db))
    mariadb.create_user(verify_user, "verify pw\\", verify_grants())
    env = {
        f"BACKUP_PW_{suffix}": "backup-pw #1",
        f"RESTORE_PW_{suffix}": 'restore "pw"',
        f"VERIFY_PW_{suffix}": "verify pw\\",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    backup_root = tmp_path / "backups"
    required = REQUIRED if required is None else required
    config = {
        "state_dir": str(tmp_path / "state"),
        "databases": {
            db: {
                "connection": {"host": "127.0.0.1", "port": mariadb.port},
                "backup_user": {"user": backup_user, "password_env": f"BACKUP_PW_{suffix}"},
                "restore_user": {"user": restore_user, "password_env": f"RESTORE_PW_{suffix}"},
                "verify_user": {"user": verify_user, "password_env": f"VERIFY_PW_{suffix}"},
                "backup_dir": str(backup_root),
                "required_tables": required,
                "retention": {"keep_last": 2, "keep_daily_days": 1},
            }
        },
    }
    config_path = tmp_path / "jobs.yml"
    config_path.write_text(yaml.safe_dump(config))
    return JobStack(mariadb, db, config_path, backup_root, env, capsys, required)


@pytest.fixture
def stack(mariadb: MariaDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> JobStack:
    """A Petclinic-like database with thousands of rows, ready to back up."""
    s = make_stack(mariadb, tmp_path, monkeypatch, capsys)
    fill_petclinic(mariadb, s.db)
    yield s
    mariadb.execute(f"DROP DATABASE IF EXISTS `{s.db}`")


@pytest.fixture
def stack_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Callable[..., JobStack]:
    """make_stack for a server of the test's choosing (e.g. one it will stop)."""

    def make(server: MariaDB, fill: bool = True) -> JobStack:
        s = make_stack(server, tmp_path, monkeypatch, capsys)
        if fill:
            fill_petclinic(server, s.db, owners=200, pets=300, visits=600)
        return s

    return make
