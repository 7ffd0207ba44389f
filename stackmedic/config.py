"""Strict YAML configuration: every problem reported at once, each with its key path.

Schemas are voluptuous schemas; `load_config` parses YAML and validates it, and raises
`ConfigError` listing every problem as ``key.path[0].sub: message``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol
import yaml


class ConfigError(Exception):
    """Invalid configuration; `problems` is a list of (key path, message)."""

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, as printed to the user."""
        return [f"config error: {path or '(top)'}: {msg}" for path, msg in self.problems]


def format_path(path: Iterable[Any]) -> str:
    """['checks', 0, 'url'] -> 'checks[0].url'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(err: vol.Invalid) -> str:
    msg = err.error_message
    if msg == "extra keys not allowed":
        return "unknown key"
    if msg == "required key not provided":
        return "required key missing"
    return msg


def validate(schema: vol.Schema, data: Any) -> Any:
    """Validate `data` against `schema`; raise ConfigError with every problem."""
    try:
        return schema(data)
    except vol.MultipleInvalid as exc:
        raise ConfigError((format_path(e.path), _message(e)) for e in exc.errors) from None
    except vol.Invalid as exc:
        raise ConfigError([(format_path(exc.path), _message(exc))]) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, yaml.Mark] = {}
        for key_node, _ in node.value:  # as written: keys brought in by a `<<` merge may be overridden
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            first = seen.setdefault(key_node.value, key_node.start_mark)
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key_node.value!r} (first at line {first.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "config") -> Any:
    """Parse YAML text; a syntax error or a duplicate key becomes a ConfigError naming the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML at {where}: {problem}")]) from None


def load_config(path: str | Path, schema: vol.Schema) -> Any:
    """Read, parse and validate a YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror}")]) from None
    data = parse_yaml(text, str(path))
    if data is None:
        data = {}
    return validate(schema, data)


# Reusable validators: each raises vol.Invalid with a message a user understands.


def port(value: Any) -> int:
    """A TCP port, 1..65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid("expected a port number (integer 1..65535)")
    if not 1 <= value <= 65535:
        raise vol.Invalid(f"port {value} out of range 1..65535")
    return value


def regex(value: Any) -> str:
    """A string that compiles as a Python regular expression."""
    if not isinstance(value, str):
        raise vol.Invalid("expected a regular expression (string)")
    try:
        re.compile(value)
    except re.error as exc:
        raise vol.Invalid(f"invalid regular expression: {exc}") from None
    return value


def url(schemes: tuple[str, ...] = ("http", "https")) -> Callable[[Any], str]:
    """A URL with one of `schemes` and a host.

    The messages never repeat the URL: a mistyped one may carry a password
    (`htps://admin:pw@jenkins`) that no parser can then tell apart reliably.
    """

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise vol.Invalid("expected a URL (string)")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise vol.Invalid("invalid URL (not shown): bad port or host") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise vol.Invalid(f"invalid URL (not shown): expected {'/'.join(schemes)}://host[:port]/...")
        return value

    return check


def redact_url(value: str, query: bool = False) -> str:
    """`value` with the password of its user info replaced by `***`, for logs and pages;
    with `query`, every query value too (`?api_key=***`), for a URL shown in full as a label."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "(invalid URL)"
    if query and parts.query:
        parts = parts._replace(query=redact_query(parts.query))
    if parts.password is None and "@" not in parts.netloc:
        return parts.geturl()
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(
        netloc=f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    ).geturl()


def redact_query(query: str) -> str:
    """`a=1&b` as `a=***&***`: the names stay, no value is shown."""
    return "&".join(f"{p.partition('=')[0]}=***" if "=" in p else "***" for p in query.split("&"))


def duration(value: Any) -> float:
    """Seconds as a number, or a Prometheus-style duration string ('500ms', '30s', '5m', '2h')."""
    if isinstance(value, bool):
        raise vol.Invalid("expected a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise vol.Invalid("duration must not be negative")
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", value.strip())
        if m:
            factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
            return float(m.group(1)) * factor
    raise vol.Invalid(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 5m, 1h")


def listen_address(value: Any) -> tuple[str, int]:
    """'host:port' (host may be empty or [v6]) -> (host, port)."""
    if not isinstance(value, str) or ":" not in value:
        raise vol.Invalid(f"invalid listen address {value!r}: expected host:port")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":port" means all interfaces, as in Prometheus
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise vol.Invalid(f"invalid listen address {value!r}: bad port")
    return host, int(port_text)
