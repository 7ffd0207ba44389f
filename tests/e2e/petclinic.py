"""The stack the closed loop heals: Petclinic's database on a real MariaDB, its verified
backup made by the real `stackmedic-job`, and a "petclinic" container on a real dockerd.

The schema and rows are Spring Petclinic's own (db/mysql/schema.sql and data.sql): 10
owners, 13 pets, as docs/design.md's manifest example counts them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from stackmedic.jobs.grants import backup_grants, restore_grants, verify_grants

from harness.services import DockerEngine, MariaDB, free_port, wait_for

DATABASE = "petclinic"  # a value of jobs.yaml's DATABASE choices
SERVICE = "petclinic"  # a value of jobs.yaml's SERVICE choices
PROJECT = "e2e"  # compose project of the container: nothing else on the shared dockerd has it
REQUIRED_TABLES = ["owners", "pets", "types", "vets", "visits", "specialties", "vet_specialties"]

SCHEMA = [
    """CREATE TABLE vets (id INT(4) UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       first_name VARCHAR(30), last_name VARCHAR(30), INDEX(last_name)) ENGINE=InnoDB""",
    """CREATE TABLE specialties (id INT(4) UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       name VARCHAR(80), INDEX(name)) ENGINE=InnoDB""",
    """CREATE TABLE vet_specialties (vet_id INT(4) UNSIGNED NOT NULL, specialty_id INT(4) UNSIGNED NOT NULL,
       FOREIGN KEY (vet_id) REFERENCES vets(id), FOREIGN KEY (specialty_id) REFERENCES specialties(id),
       UNIQUE (vet_id, specialty_id)) ENGINE=InnoDB""",
    """CREATE TABLE types (id INT(4) UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       name VARCHAR(80), INDEX(name)) ENGINE=InnoDB""",
    """CREATE TABLE owners (id INT(4) UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       first_name VARCHAR(30), last_name VARCHAR(30), address VARCHAR(255), city VARCHAR(80),
       telephone VARCHAR(20), INDEX(last_name)) ENGINE=InnoDB""",
    """CREATE TABLE pets (id INT(4) UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30),
       birth_date DATE, type_id INT(4) UNSIGNED NOT NULL, owner_id INT(4) UNSIGNED, INDEX(name),
       FOREIGN KEY (owner_id) REFERENCES owners(id), FOREIGN KEY (type_id) REFERENCES types(id)) ENGINE=InnoDB""",
    """CREATE TABLE visits (id INT(4) UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, pet_id INT(4) UNSIGNED,
       visit_date DATE, description VARCHAR(255), FOREIGN KEY (pet_id) REFERENCES pets(id)) ENGINE=InnoDB""",
]

DATA = [
    """INSERT INTO vets VALUES (1, 'James', 'Carter'), (2, 'Helen', 'Leary'), (3, 'Linda', 'Douglas'),
       (4, 'Rafael', 'Ortega'), (5, 'Henry', 'Stevens'), (6, 'Sharon', 'Jenkins')""",
    "INSERT INTO specialties VALUES (1, 'radiology'), (2, 'surgery'), (3, 'dentistry')",
    "INSERT INTO vet_specialties VALUES (2, 1), (3, 2), (3, 3), (4, 2), (5, 1)",
    """INSERT INTO types VALUES (1, 'cat'), (2, 'dog'), (3, 'lizard'), (4, 'snake'), (5, 'bird'),
       (6, 'hamster')""",
    """INSERT INTO owners VALUES
       (1, 'George', 'Franklin', '110 W. Liberty St.', 'Madison', '6085551023'),
       (2, 'Betty', 'Davis', '638 Cardinal Ave.', 'Sun Prairie', '6085551749'),
       (3, 'Eduardo', 'Rodriquez', '2693 Commerce St.', 'McFarland', '6085558763'),
       (4, 'Harold', 'Davis', '563 Friendly St.', 'Windsor', '6085553198'),
       (5, 'Peter', 'McTavish', '2387 S. Fair Way', 'Madison', '6085552765'),
       (6, 'Jean', 'Coleman', '105 N. Lake St.', 'Monona', '6085552654'),
       (7, 'Jeff', 'Black', '1450 Oak Blvd.', 'Monona', '6085555387'),
       (8, 'Maria', 'Escobito', '345 Maple St.', 'Madison', '6085557683'),
       (9, 'David', 'Schroeder', '2749 Blackhawk Trail', 'Madison', '6085559435'),
       (10, 'Carlos', 'Estaban', '2335 Independence La.', 'Waunakee', '6085555487')""",
    """INSERT INTO pets VALUES (1, 'Leo', '2000-09-07', 1, 1), (2, 'Basil', '2002-08-06', 6, 2),
       (3, 'Rosy', '2001-04-17', 2, 3), (4, 'Jewel', '2000-03-07', 2, 3), (5, 'Iggy', '2000-11-30', 3, 4),
       (6, 'George', '2000-01-20', 4, 5), (7, 'Samantha', '1995-09-04', 1, 6),
       (8, 'Max', '1995-09-04', 1, 6), (9, 'Lucky', '1999-08-06', 5, 7), (10, 'Mulligan', '1997-02-24', 2, 8),
       (11, 'Freddy', '2000-03-09', 5, 9), (12, 'Lucky', '2000-06-24', 2, 10), (13, 'Sly', '2002-06-08', 1, 10)""",
    """INSERT INTO visits VALUES (1, 7, '2010-03-04', 'rabies shot'), (2, 8, '2011-03-04', 'rabies shot'),
       (3, 8, '2009-06-04', 'neutered'), (4, 7, '2008-09-04', 'spayed')""",
]

NEW_OWNER = "INSERT INTO owners VALUES (11, 'Zoe', 'Newest', '1 Backup Lane', 'Madison', '6085550011')"

PAGE = "<html><body><h1>Welcome to Petclinic</h1></body></html>\n"


def stackmedic_program(name: str) -> str:
    """The console script of this checkout's venv (stackmedic-job, -exporter, -receiver)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the project (pip install -e .)")
    return str(path)


@dataclass
class World:
    """Everything the loop watches and heals, and the files the job programs read."""

    mariadb: MariaDB
    docker: DockerEngine
    base: Path
    port: int  # petclinic's HTTP port on 127.0.0.1
    www: Path
    jobs_config: Path
    backup_dir: Path
    exporter_user: str
    exporter_password_file: Path
    backup_file: str = ""  # the verified backup prepare() made

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def run_job(self, *args: str) -> dict[str, Any]:
        """Run `stackmedic-job` as Jenkins would; its JSON line, or RuntimeError with stderr."""
        argv = [stackmedic_program("stackmedic-job"), "--config.file", str(self.jobs_config), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"stackmedic-job {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def rows(self, table: str) -> list[tuple]:
        """Every row of `table`, sorted."""
        return sorted(self.mariadb.execute(f"SELECT * FROM `{table}`", db=DATABASE))

    def answers(self) -> bool:
        """The page answers and says Welcome."""
        try:
            r = requests.get(self.url, timeout=1)
        except requests.RequestException:
            return False
        return r.status_code == 200 and "Welcome" in r.text

    # the container

    def remove_container(self) -> None:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            self.docker.client.containers.get(SERVICE).remove(force=True)

    def start_container(self, lifetime: float | None = None) -> Any:
        """The petclinic container: busybox httpd serving the page, as compose would have made it.

        With `lifetime`, a fix that never sticks: once break_for_good() is called, the
        container exits `lifetime` seconds after each start (now and at every restart).
        """
        self.remove_container()
        self.flap_switch.unlink(missing_ok=True)
        if lifetime is None:
            return self.docker.run_http(
                SERVICE, self.port, self.www, compose_service=SERVICE, project=PROJECT
            )
        self.flap_switch.parent.mkdir(exist_ok=True)
        # httpd without -f goes to the background; the container ends when sh does
        script = (
            f"httpd -p 127.0.0.1:{self.port} -h /www && "
            f"while [ ! -e /control/{self.flap_switch.name} ]; do sleep 0.1; done && sleep {lifetime:g}"
        )
        return self.docker.client.containers.run(
            self.docker.image,
            ["sh", "-c", script],
            name=SERVICE,
            detach=True,
            network_mode="host",
            volumes={
                str(self.www): {"bind": "/www", "mode": "ro"},
                str(self.flap_switch.parent): {"bind": "/control", "mode": "ro"},
            },
            labels={"com.docker.compose.project": PROJECT, "com.docker.compose.service": SERVICE},
        )

    @property
    def flap_switch(self) -> Path:
        return self.base / "control" / "flap"

    def break_for_good(self) -> None:
        """From now on a container started with a lifetime dies that long after each start."""
        self.flap_switch.touch()

    def state(self) -> str:
        c = self.docker.client.containers.get(SERVICE)
        return c.status


def _write_secret(path: Path, value: str) -> Path:
    path.write_text(value)
    path.chmod(0o600)
    return path


def prepare(mariadb: MariaDB, docker: DockerEngine, base: Path, settle: float = 0.5) -> World:
    """Petclinic's database with its rows, the accounts, the jobs' configuration, a verified backup.

    The accounts hold exactly the documented grants (jobs/grants.py; the exporter only
    SELECT). Names carry the server's port so that two worlds on one server cannot meet.
    """
    base.mkdir(parents=True, exist_ok=True)
    tag = str(mariadb.port)
    mariadb.execute(
        f"DROP DATABASE IF EXISTS `{DATABASE}`", f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4"
    )
    mariadb.execute(*SCHEMA, *DATA, db=DATABASE)
    users = {
        "backup": f"e2e_bk_{tag}",
        "restore": f"e2e_rs_{tag}",
        "verify": f"e2e_vf_{tag}",
        "exporter": f"e2e_ex_{tag}",
    }
    secrets = {role: _write_secret(base / f"{role}.password", f"{role}-pw-{tag}") for role in users}
    mariadb.create_user(users["backup"], secrets["backup"].read_text(), backup_grants(DATABASE))
    mariadb.create_user(users["restore"], secrets["restore"].read_text(), restore_grants(DATABASE))
    mariadb.create_user(users["verify"], secrets["verify"].read_text(), verify_grants())
    mariadb.create_user(users["exporter"], secrets["exporter"].read_text(), [f"SELECT ON `{DATABASE}`.*"])
    www = base / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text(PAGE)
    backup_dir = base / "backups"
    connection = {"host": "127.0.0.1", "port": mariadb.port, "connect_timeout": "2s"}
    config = {
        "state_dir": str(base / "state"),
        "docker_url": docker.base_url,
        "databases": {
            DATABASE: {
                "connection": connection,
                "backup_user": {"user": users["backup"], "password_file": str(secrets["backup"])},
                "restore_user": {"user": users["restore"], "password_file": str(secrets["restore"])},
                "verify_user": {"user": users["verify"], "password_file": str(secrets["verify"])},
                "backup_dir": str(backup_dir),
                "required_tables": REQUIRED_TABLES,
            }
        },
        "services": {
            SERVICE: {
                "compose_project": PROJECT,
                "compose_service": SERVICE,
                "start_timeout": "20s",
                "stop_timeout": "2s",
                "settle": f"{settle:g}s",
            }
        },
    }
    jobs_config = base / "jobs.yml"
    jobs_config.write_text(yaml.safe_dump(config, sort_keys=False))
    world = World(
        mariadb=mariadb,
        docker=docker,
        base=base,
        port=free_port(),
        www=www,
        jobs_config=jobs_config,
        backup_dir=backup_dir,
        exporter_user=users["exporter"],
        exporter_password_file=secrets["exporter"],
    )
    # two verified backups, the newer with one owner more: a restore of the older one would show
    older = _verified_backup(world)
    mariadb.execute(NEW_OWNER, db=DATABASE)
    wait_for(lambda: _stamp() not in older, 5, "the next second (one backup per second at most)")
    world.backup_file = _verified_backup(world)
    return world


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _verified_backup(world: World) -> str:
    """`stackmedic-job backup` then `verify`, as the backup job and its downstream do; the file."""
    backup = world.run_job("backup", "--database", DATABASE)
    verified = world.run_job("verify", "--database", DATABASE)
    assert backup["status"] == "ok" and backup["rows"] > 0, backup
    # verify reports each backup it checked (docs/jobs.md)
    checked = [b["file"] for b in verified.get("backups", []) if b["status"] == "ok"]
    assert (verified["status"], checked) == ("ok", [backup["file"]]), verified
    return backup["file"]
