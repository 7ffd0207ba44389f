"""The job programs' configuration file: databases to back up, services to start and stop.

Validated strictly at start-up (unknown keys rejected, every problem reported at once).
Names of databases and services are what Jenkins passes as parameters, so they are held
to a narrow pattern: a value outside the configured list never reaches a path, a query
or a container call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol

from stackmedic import mysql_tls
from stackmedic.config import ConfigError, duration, load_config, port, validate
from stackmedic.mysql_tls import MysqlTls
from stackmedic.secrets import SecretError, resolve_secret

from .errors import UsageError

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TABLE_RE = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
# Docker's own pattern for container names.
CONTAINER_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def _matching(pattern: re.Pattern[str], what: str):
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise vol.Invalid(f"invalid {what} {value!r}: must match {pattern.pattern}")
        return value

    return check


name = _matching(NAME_RE, "name")
table = _matching(TABLE_RE, "table name")
container_name = _matching(CONTAINER_RE, "container name")


def _absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise vol.Invalid(f"expected an absolute path, got {value!r}")
    return value


def _secret_path(value: Any) -> str:
    # not `_absolute_path`: a password pasted here by mistake must not be printed back
    if not isinstance(value, str) or not value.startswith("/"):
        raise vol.Invalid("expected an absolute path (value not shown: it may be a secret)")
    return value


def _positive_int(minimum: int):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise vol.Invalid(f"expected an integer >= {minimum}")
        return value

    return check


def _one_password_source(value: dict) -> dict:
    if "password_env" in value and "password_file" in value:
        raise vol.Invalid("give password_env or password_file, not both")
    return value


USER = vol.All(
    {
        vol.Required("user"): vol.All(str, vol.Length(min=1, max=80)),
        vol.Optional("password_env"): vol.All(str, vol.Match(r"^[A-Za-z_][A-Za-z0-9_]*$")),
        vol.Optional("password_file"): _secret_path,
    },
    _one_password_source,
)

CONNECTION = {
    vol.Optional("host", default="127.0.0.1"): vol.All(str, vol.Length(min=1)),
    vol.Optional("port", default=3306): port,
    vol.Optional("socket"): _absolute_path,
    vol.Optional("connect_timeout", default=5.0): duration,
    # TLS for PyMySQL and the mariadb clients alike (stackmedic/mysql_tls.py)
    **mysql_tls.SCHEMA,
}

RETENTION = {
    # keep_last >= 1: retention can never delete every backup.
    vol.Optional("keep_last", default=7): _positive_int(1),
    vol.Optional("keep_daily_days", default=14): _positive_int(0),
    vol.Optional("keep_safety", default=5): _positive_int(1),
    # Safety dumps and rollback points younger than this are kept whatever their number.
    vol.Optional("keep_safety_for", default="7d"): duration,
    # A prune whose clock is further than this past the newest backup refuses to delete
    # more than it would at the newest backup's time (a clock that jumped ahead).
    vol.Optional("max_clock_gap", default="36h"): duration,
}


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise vol.Invalid(f"expected a ratio between 0 and 1 (exclusive), got {value!r}")
    return float(value)


TRUST = {
    # A backup dated further ahead than this is ignored (reported as future-dated).
    vol.Optional("future_skew", default="5m"): duration,
    # A table that lost more than this share of its rows since the backup trusted before
    # makes a backup suspicious.
    vol.Optional("max_row_drop", default=0.5): _ratio,
}


def _some_tables(value: Any) -> list[str]:
    if isinstance(value, list) and not value:
        raise vol.Invalid(
            "must name at least one table: restore acts on this database and checks these tables"
            " in every backup before it trusts one"
        )
    return value


DATABASE = {
    vol.Required("connection"): CONNECTION,
    vol.Required("backup_user"): USER,
    vol.Required("restore_user"): USER,
    # verify loads backups with this account: it may create and drop scratch databases
    # only (jobs/grants.py verify_grants), never touch a live one.
    vol.Required("verify_user"): USER,
    # point-in-time recovery reads the binary logs with this account (optional).
    vol.Optional("binlog_user"): USER,
    vol.Required("backup_dir"): _absolute_path,
    vol.Required("required_tables"): vol.All(_some_tables, [table]),
    vol.Optional("retention", default={}): RETENTION,
    vol.Optional("trust", default={}): TRUST,
    vol.Optional("compress_level", default=6): vol.All(int, vol.Range(min=1, max=9)),
    vol.Optional("dump_timeout", default=3600.0): duration,
    # How long the tables a restore displaced are kept (a rollback point), then dropped.
    vol.Optional("rollback_keep", default=7 * 86400.0): duration,
    # Point-in-time recovery from the server's binary logs (binlog_user reads them).
    vol.Optional("pitr", default=True): bool,
}


def _one_container_selector(value: dict) -> dict:
    if ("container" in value) == ("compose_service" in value):
        raise vol.Invalid("give either container or compose_service (with optional compose_project)")
    if "compose_project" in value and "compose_service" not in value:
        raise vol.Invalid("compose_project needs compose_service")
    return value


SERVICE = vol.All(
    {
        vol.Optional("compose_project"): vol.All(str, vol.Match(r"^[a-z0-9][a-z0-9_-]*$")),
        vol.Optional("compose_service"): vol.All(str, vol.Match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")),
        vol.Optional("container"): container_name,
        vol.Optional("image"): vol.All(str, vol.Match(r"^[a-zA-Z0-9][a-zA-Z0-9_./:@-]*$")),
        vol.Optional("start_timeout", default=60.0): duration,
        vol.Optional("stop_timeout", default=10.0): duration,
        vol.Optional("settle", default=2.0): duration,
    },
    _one_container_selector,
)

SCHEMA = vol.Schema(
    {
        vol.Optional("state_dir", default="/var/lib/stackmedic"): _absolute_path,
        vol.Optional("dump_command", default="mariadb-dump"): vol.All(str, vol.Length(min=1)),
        vol.Optional("client_command", default="mariadb"): vol.All(str, vol.Length(min=1)),
        vol.Optional("docker_url"): vol.All(str, vol.Match(r"^(unix|tcp|ssh)://.+")),
        vol.Optional("databases", default={}): {name: DATABASE},
        vol.Optional("services", default={}): {name: SERVICE},
    }
)


@dataclass(frozen=True)
class User:
    """A database account; the password is read only when a job needs it."""

    user: str
    password_env: str | None = None
    password_file: str | None = None

    def password(self) -> str | None:
        """The password from its file or environment variable; UsageError when unreadable."""
        try:
            return resolve_secret(env=self.password_env, file=self.password_file)
        except SecretError as exc:
            raise UsageError(f"password of {self.user}: {exc}") from None


@dataclass(frozen=True)
class Connection:
    host: str = "127.0.0.1"
    port: int = 3306
    socket: str | None = None
    connect_timeout: float = 5.0
    tls: MysqlTls = field(default_factory=MysqlTls)

    def describe(self) -> str:
        """host:port or the socket, for messages."""
        return self.socket or f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Retention:
    keep_last: int = 7
    keep_daily_days: int = 14
    keep_safety: int = 5
    keep_safety_for: float = 7 * 86400.0
    max_clock_gap: float = 36 * 3600.0


@dataclass(frozen=True)
class Trust:
    """When a backup deserves trust (docs/jobs.md "Trust")."""

    future_skew: float = 300.0
    max_row_drop: float = 0.5


@dataclass(frozen=True)
class Database:
    """One database: where it is, who may dump and restore it, where its backups go."""

    name: str
    connection: Connection
    backup_user: User
    restore_user: User
    verify_user: User
    backup_dir: Path
    required_tables: tuple[str, ...] = ()
    retention: Retention = field(default_factory=Retention)
    trust: Trust = field(default_factory=Trust)
    binlog_user: User | None = None
    compress_level: int = 6
    dump_timeout: float = 3600.0
    rollback_keep: float = 7 * 86400.0
    pitr: bool = True

    @property
    def binlog_reader(self) -> User:
        """The account that reads binary logs: `binlog_user`, else the restore user."""
        return self.binlog_user or self.restore_user

    @property
    def directory(self) -> Path:
        """<backup_dir>/<database>, as the exporter reads it."""
        return self.backup_dir / self.name


@dataclass(frozen=True)
class Service:
    """A container the start/stop/restart jobs may act on."""

    name: str
    compose_project: str | None = None
    compose_service: str | None = None
    container: str | None = None
    image: str | None = None
    start_timeout: float = 60.0
    stop_timeout: float = 10.0
    settle: float = 2.0


@dataclass(frozen=True)
class JobsConfig:
    state_dir: Path
    dump_command: str
    client_command: str
    docker_url: str | None
    databases: dict[str, Database]
    services: dict[str, Service]

    def database(self, name: str) -> Database:
        """The configured database `name`; UsageError for any other value."""
        if name not in self.databases:
            raise UsageError(f"unknown database {name!r}: configured are {', '.join(sorted(self.databases))}")
        return self.databases[name]

    def service(self, name: str) -> Service:
        """The configured service `name`; UsageError for any other value."""
        if name not in self.services:
            raise UsageError(f"unknown service {name!r}: configured are {', '.join(sorted(self.services))}")
        return self.services[name]


def build(data: dict) -> JobsConfig:
    """Turn validated data into the typed configuration."""
    databases = {}
    problems: list[tuple[str, str]] = []
    for db_name, db in data["databases"].items():
        raw = db["connection"]
        tls = MysqlTls.from_section(raw)
        problems += tls.problems(f"databases.{db_name}.connection")
        databases[db_name] = Database(
            name=db_name,
            connection=Connection(**{k: v for k, v in raw.items() if k not in mysql_tls.KEYS}, tls=tls),
            backup_user=User(**db["backup_user"]),
            restore_user=User(**db["restore_user"]),
            verify_user=User(**db["verify_user"]),
            binlog_user=User(**db["binlog_user"]) if "binlog_user" in db else None,
            backup_dir=Path(db["backup_dir"]),
            required_tables=tuple(db["required_tables"]),
            retention=Retention(**db["retention"]),
            trust=Trust(**db["trust"]),
            compress_level=db["compress_level"],
            dump_timeout=db["dump_timeout"],
            rollback_keep=db["rollback_keep"],
            pitr=db["pitr"],
        )
    if problems:
        raise ConfigError(problems)
    services = {svc_name: Service(name=svc_name, **svc) for svc_name, svc in data["services"].items()}
    return JobsConfig(
        state_dir=Path(data["state_dir"]),
        dump_command=data["dump_command"],
        client_command=data["client_command"],
        docker_url=data.get("docker_url"),
        databases=databases,
        services=services,
    )


def parse(data: Any) -> JobsConfig:
    """Validate already-parsed YAML data; ConfigError lists every problem."""
    if data is None:
        data = {}
    return build(validate(SCHEMA, data))


def load(path: str | Path) -> JobsConfig:
    """Read, validate and build the configuration file at `path`."""
    return build(load_config(path, SCHEMA))


__all__ = [
    "ConfigError",
    "JobsConfig",
    "Database",
    "Service",
    "User",
    "Connection",
    "Retention",
    "Trust",
    "load",
    "parse",
]
