"""The exporter's configuration: one YAML file, validated strictly, or the embedded default.

Each top-level section but `scrape` turns one kind of check on; see
examples/seed-stack.yml for all of them. Durations are seconds or strings like `500ms`.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import voluptuous as vol

from stackmedic.config import (
    ConfigError,
    duration,
    format_path,
    load_config,
    port,
    redact_url,
    regex,
    url,
    validate,
)
from stackmedic.mysql_tls import MysqlTls
from stackmedic.secrets import Secret, SecretError, resolve_secret

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$"
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_$-]{1,64}$"
# file systems of the embedded default: real disks, not pseudo or image mounts
_SKIP_FSTYPES = {"squashfs", "overlay", "tmpfs", "devtmpfs", "iso9660", "nsfs", "fuse.lxcfs"}


def _positive_duration(value: Any) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise vol.Invalid("duration must be greater than 0")
    return seconds


def _name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
        raise vol.Invalid(f"invalid name {value!r}: letters, digits, _ . : - (at most 63)")
    return value


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(IDENTIFIER_PATTERN, value):
        raise vol.Invalid(f"invalid identifier {value!r}: letters, digits, _ $ - (at most 64)")
    return value


def _int_range(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise vol.Invalid("expected an integer")
        if value < lo or (hi is not None and value > hi):
            raise vol.Invalid(f"{value} out of range {lo}..{hi if hi is not None else ''}")
        return value

    return check


def _section(schema: dict) -> vol.All:
    """A mapping section where an empty value (`system:`) means all defaults."""
    return vol.All(lambda v: {} if v is None else v, schema)


def _unique(key: str, default: Callable[[dict], str] | None = None) -> Callable[[list], list]:
    """A list validator: no two items share `key` (two series with the same labels)."""

    def check(items: list) -> list:
        seen: set[Any] = set()
        errors = []
        for i, item in enumerate(items):
            value = item.get(key) or (default(item) if default else None)
            if value in seen:
                errors.append(vol.Invalid(f"duplicate {key} {redact_url(str(value))!r}", path=[i, key]))
            seen.add(value)
        if errors:
            raise vol.MultipleInvalid(errors)
        return items

    return check


def _each(item_schema: Any) -> Callable[[Any], list]:
    """A list whose items are all validated, every bad item reported (voluptuous stops at one)."""
    compiled = vol.Schema(item_schema)

    def check(items: Any) -> list:
        if not isinstance(items, list):
            raise vol.Invalid("expected a list")
        out, errors = [], []
        for i, item in enumerate(items):
            try:
                out.append(compiled(item))
            except vol.MultipleInvalid as exc:
                for err in exc.errors:
                    err.prepend([i])
                    errors.append(err)
            except vol.Invalid as exc:
                exc.prepend([i])
                errors.append(exc)
        if errors:
            raise vol.MultipleInvalid(errors)
        return out

    return check


def _docker_url(value: Any) -> str:
    """unix:///path/to/docker.sock, or tcp:// / http(s)://host:port."""
    if isinstance(value, str) and value.startswith("unix://"):
        if not value[len("unix://") :].startswith("/"):
            raise vol.Invalid(f"invalid Docker URL {value!r}: expected unix:///absolute/path")
        return value
    try:
        return url(("tcp", "http", "https"))(value)
    except vol.Invalid:
        raise vol.Invalid(f"invalid Docker URL {value!r}: expected unix:///path or tcp://host:port") from None


def _one_matcher(item: dict) -> dict:
    if not any(item.get(k) for k in ("name", "exe", "cmdline")):
        raise vol.Invalid("at least one of name, exe, cmdline is required")
    return item


def _service_default(item: dict) -> dict:
    if "name_regex" not in item:
        item.setdefault("compose_service", item["name"])
    return item


TIMEOUT = vol.Optional("timeout")

SCRAPE = {
    vol.Optional("timeout", default=10.0): _positive_duration,
    vol.Optional("timeout_margin", default=0.5): duration,
    vol.Optional("max_concurrency", default=32): _int_range(1, 1024),
}
SYSTEM = {
    vol.Optional("filesystems", default=[]): _each(str),
    vol.Optional("timeout", default=2.0): _positive_duration,
}
SERVICE = vol.All(
    {
        vol.Required("name"): _name,
        vol.Optional("compose_service"): str,
        vol.Optional("compose_project"): str,
        vol.Optional("name_regex"): regex,
        vol.Optional("expected", default=1): _int_range(0),
    },
    _service_default,
)
DOCKER = {
    vol.Optional("url"): _docker_url,
}
CONTAINERS = {
    # older configs named the engine in each Docker section; docker.url is the one place now
    vol.Optional("docker_url"): _docker_url,
    vol.Optional("timeout", default=5.0): _positive_duration,
    vol.Optional("services", default=[]): vol.All(_each(SERVICE), _unique("name")),
}
DOCKER_SPACE = {
    vol.Optional("docker_url"): _docker_url,
    vol.Optional("refresh_interval", default=300.0): _positive_duration,
    vol.Optional("timeout", default=120.0): _positive_duration,
}
PROCESS = vol.All(
    {
        vol.Required("group"): _name,
        vol.Optional("name"): regex,
        vol.Optional("exe"): regex,
        vol.Optional("cmdline"): regex,
    },
    _one_matcher,
)
PROCESSES = {
    vol.Optional("timeout", default=5.0): _positive_duration,
    vol.Required("groups"): vol.All(_each(PROCESS), _unique("group")),
}
HTTP_TARGET = {
    vol.Optional("name"): _name,
    vol.Required("url"): url(),
    vol.Optional("timeout", default=5.0): _positive_duration,
    vol.Optional("status_codes", default=[]): _each(_int_range(100, 599)),
    vol.Optional("keyword"): vol.All(str, vol.Length(min=1)),
    vol.Optional("regex"): regex,
    vol.Optional("max_body_bytes", default=1024 * 1024): _int_range(1),
    vol.Optional("tls_verify", default=True): bool,
    vol.Optional("ca_file"): str,
    vol.Optional("follow_redirects", default=True): bool,
    # https -> http on a redirect sends the headers and reads the answer in clear: off unless set
    vol.Optional("allow_http_redirect", default=False): bool,
    vol.Optional("headers", default={}): {str: str},
    # credentials from a file or the environment (read at start-up), not in the YAML
    vol.Optional("basic_auth"): {
        vol.Required("username"): vol.All(str, vol.Match(r"^[^:\x00-\x1f\x7f]*$", msg="no ':' or control")),
        vol.Optional("password_file"): str,
        vol.Optional("password_env"): str,
    },
    vol.Optional("bearer_token_file"): str,
    vol.Optional("bearer_token_env"): str,
}


def _read_query(value: Any) -> str:
    """One statement that reads: a check must never change the database it watches."""
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid("expected an SQL query (string)")
    first = value.strip().split(None, 1)[0].upper()
    if first not in ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN") or ";" in value.strip().rstrip(
        ";"
    ):
        raise vol.Invalid("expected one statement that reads (SELECT, WITH, SHOW...): queries run read-only")
    return value


MYSQL_QUERY = {
    vol.Required("name"): _name,
    vol.Optional("database"): _identifier,
    vol.Required("sql"): _read_query,
}
MYSQL_SERVER = {
    vol.Required("name"): _name,
    vol.Optional("host", default="127.0.0.1"): str,
    vol.Optional("port", default=3306): port,
    vol.Optional("socket"): str,
    vol.Required("user"): str,
    vol.Optional("password_env"): str,
    vol.Optional("password_file"): str,
    vol.Optional("timeout", default=5.0): _positive_duration,
    # off by default: PyMySQL's "preferred" TLS builds a CA store on every connection
    vol.Optional("tls", default=False): bool,
    vol.Optional("tls_ca_file"): str,
    # a client certificate, for an account created REQUIRE X509
    vol.Optional("tls_cert_file"): str,
    vol.Optional("tls_key_file"): str,
    vol.Optional("tls_verify", default=True): bool,
    vol.Optional("tables", default={}): {_identifier: _each(_identifier)},
    vol.Optional("queries", default=[]): vol.All(_each(MYSQL_QUERY), _unique("name")),
}
PORT_TARGET = {
    vol.Required("name"): _name,
    vol.Required("port"): port,
    vol.Optional("host", default="127.0.0.1"): str,
    vol.Optional("program"): regex,
}
PORTS = {
    vol.Optional("discover", default=False): bool,
    vol.Optional("timeout", default=2.0): _positive_duration,
    vol.Optional("targets", default=[]): vol.All(_each(PORT_TARGET), _unique("name")),
}
BACKUPS = {
    vol.Required("directory"): str,
    vol.Optional("databases"): _each(_identifier),
    vol.Optional("timeout", default=5.0): _positive_duration,
    # backups dated further ahead than this are ignored and counted as future-dated
    vol.Optional("future_skew", default=300.0): duration,
}
WORKLOAD = {
    vol.Required("kind"): vol.In(["Deployment", "StatefulSet"]),
    vol.Required("name"): vol.All(str, vol.Match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")),
    # wanted when the workload does not exist at all (its spec says otherwise)
    vol.Optional("expected", default=1): _int_range(0),
}
# workloads.py: a pod's service account unless api_url, namespace and token_file say otherwise
KUBERNETES = {
    vol.Optional("api_url"): url(),
    vol.Optional("namespace"): vol.All(str, vol.Match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")),
    vol.Optional("token_file"): str,
    vol.Optional("ca_file"): str,
    vol.Optional("verify_tls"): bool,
    vol.Optional("timeout", default=5.0): _positive_duration,
    vol.Required("workloads"): vol.All(_each(WORKLOAD), _unique("name")),
}

SCHEMA = vol.Schema(
    {
        vol.Optional("scrape", default={}): _section(SCRAPE),
        vol.Optional("system"): _section(SYSTEM),
        vol.Optional("docker"): _section(DOCKER),
        vol.Optional("containers"): _section(CONTAINERS),
        vol.Optional("docker_space"): _section(DOCKER_SPACE),
        vol.Optional("processes"): _section(PROCESSES),
        vol.Optional("http"): vol.All(
            _each(HTTP_TARGET), _unique("name", lambda t: redact_url(t["url"], query=True))
        ),
        vol.Optional("mysql"): vol.All(_each(MYSQL_SERVER), _unique("name")),
        vol.Optional("ports"): _section(PORTS),
        vol.Optional("backups"): _section(BACKUPS),
        vol.Optional("kubernetes"): _section(KUBERNETES),
    }
)


DOCKER_SECTIONS = ("containers", "docker_space")


def _docker_problems(config: dict) -> list[tuple[str, str]]:
    """Give every Docker check one engine address: docker.url, else DOCKER_HOST (as the docker
    CLI does), else the standard socket. A section's own docker_url must agree with it."""
    sections = [s for s in DOCKER_SECTIONS if config.get(s) is not None]
    given = [("docker.url", (config.get("docker") or {}).get("url"))]
    given += [(f"{s}.docker_url", config[s].get("docker_url")) for s in sections]
    given = [(path, value) for path, value in given if value]
    if not given and not sections:
        return []
    if given:
        first_path, address = given[0]
        problems = [
            (
                path,
                f"{value!r} differs from {first_path} {address!r}: Docker checks use one address, set it once as docker.url",
            )
            for path, value in given[1:]
            if value != address
        ]
        if problems:
            return problems
    elif os.environ.get("DOCKER_HOST"):
        try:
            address = _docker_url(os.environ["DOCKER_HOST"])
        except vol.Invalid as exc:
            return [("DOCKER_HOST", exc.error_message)]
    else:
        address = DEFAULT_DOCKER_URL
    config["docker"] = {"url": address}
    for s in sections:
        config[s]["docker_url"] = address
    return []


def _resolve(config: dict) -> dict:
    """What validation cannot do alone: the Docker address, and secrets; every problem at once."""
    problems = _docker_problems(config) + _secret_problems(config) + _tls_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _tls_problems(config: dict) -> list[tuple[str, str]]:
    """The TLS files of each MySQL server, read now: a wrong one is a config error, not a scrape's."""
    problems = []
    for i, server in enumerate(config.get("mysql") or []):
        tls = MysqlTls.from_section(server)
        problems += tls.problems(f"mysql[{i}]", require_ca=False)
    return problems


def _basic(username: str, password: str) -> Secret:
    return Secret("Basic " + base64.b64encode(f"{username}:{password}".encode()).decode())


def _secret(section: dict, prefix: str, path: list) -> str | None:
    """The secret of `<prefix>_env` or `<prefix>_file` in `section` (popped), None if neither."""
    env, file = section.pop(f"{prefix}_env", None), section.pop(f"{prefix}_file", None)
    if env and file:
        where = format_path([*path, prefix])
        raise vol.Invalid(f"{where}_env and {where}_file: set one of them")
    try:
        return resolve_secret(env=env, file=file)
    except SecretError as exc:
        raise vol.Invalid(str(exc), path=[*path, f"{prefix}_file" if file else f"{prefix}_env"]) from None


def _authorization(target: dict) -> Secret | None:
    """An HTTP target's Authorization header: from basic_auth, a bearer token or the user and
    password in its URL (sent as basic auth, as blackbox_exporter does); at most one of them."""
    basic = target.pop("basic_auth", None)
    in_url = urlsplit(target["url"])
    ways = [
        way
        for way, given in (
            ("basic_auth", basic),
            ("bearer_token_*", target.get("bearer_token_env") or target.get("bearer_token_file")),
            ("headers.Authorization", any(k.lower() == "authorization" for k in target["headers"])),
            ("a user in the url", in_url.username is not None),
        )
        if given
    ]
    if len(ways) > 1:
        raise vol.Invalid(f"{' and '.join(ways)}: set one way of authorization")
    token = _secret(target, "bearer_token", [])
    if basic:
        return _basic(basic["username"], _secret(basic, "password", ["basic_auth"]) or "")
    if token is not None:
        return Secret(f"Bearer {token}")
    if in_url.username is not None:
        return _basic(unquote(in_url.username), unquote(in_url.password or ""))
    return None


def _http_credentials(config: dict) -> list[tuple[str, str]]:
    """Put each HTTP target's credentials into its Authorization header."""
    problems = []
    for i, target in enumerate(config.get("http") or []):
        try:
            header = _authorization(target)
        except vol.Invalid as exc:
            problems.append((format_path(["http", i, *exc.path]), exc.msg))
            continue
        if header is not None:
            # a new dict: the schema's default {} is one object shared by every target
            target["headers"] = {**target["headers"], "Authorization": header}
    return problems


def _secret_problems(config: dict) -> list[tuple[str, str]]:
    """Read each MySQL password and HTTP credential from its env var or file; errors never
    show the secret."""
    problems = _http_credentials(config)
    for i, server in enumerate(config.get("mysql") or []):
        env, file = server.pop("password_env", None), server.pop("password_file", None)
        key = "password_file" if file else "password_env"
        try:
            secret = resolve_secret(env=env, file=file)
        except SecretError as exc:
            problems.append((f"mysql[{i}].{key}", str(exc)))
            continue
        server["password"] = Secret(secret) if secret is not None else None
    return problems


def parse(data: Any) -> dict:
    """Validate a parsed YAML document; raise ConfigError listing every problem."""
    return _resolve(validate(SCHEMA, {} if data is None else data))


def load(path: str | Path) -> dict:
    """Read, validate and resolve a configuration file."""
    return _resolve(load_config(path, SCHEMA))


def default_filesystems() -> list[str]:
    """Mount points of the machine's real file systems."""
    import psutil

    found = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype not in _SKIP_FSTYPES and part.mountpoint not in found:
            found.append(part.mountpoint)
    return found or ["/"]


def default_config(docker_socket: str = "/var/run/docker.sock") -> dict:
    """The embedded default: this machine's CPU, memory, disks, load, listening ports, Docker."""
    data: dict[str, Any] = {
        "system": {"filesystems": default_filesystems()},
        "ports": {"discover": True},
    }
    if os.environ.get("DOCKER_HOST"):
        data["containers"] = data["docker_space"] = None  # DOCKER_HOST says where
    elif os.path.exists(docker_socket):
        data["docker"] = {"url": f"unix://{docker_socket}"}
        data["containers"] = data["docker_space"] = None
    return parse(data)
