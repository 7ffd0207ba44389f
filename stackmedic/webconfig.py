"""`--web.config.file`: TLS and basic auth in the format of Prometheus' exporter-toolkit.

The same file an operator writes for node_exporter or Prometheus works here:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$12$...          # bcrypt hash: python -m stackmedic.webconfig hash

Differences, refused with a message rather than silently ignored: Python's ssl module
cannot ask for a client certificate without verifying it, so `RequestClientCert` and
`RequireAnyClientCert` are refused (an unverified certificate proves nothing anyway), and
`cipher_suites`, `curve_preferences` and `client_allowed_sans` are not implemented (the
defaults of OpenSSL apply). `http2` is accepted and has no effect (HTTP/1.1 only).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import ssl
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import voluptuous as vol

from .config import ConfigError, load_config, validate

BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# the response headers exporter-toolkit lets an operator set
HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
)
NOT_IMPLEMENTED = ("cipher_suites", "curve_preferences", "client_allowed_sans", "prefer_server_cipher_suites")
# bcrypt checks at once; a login beyond is answered 503 at once (see WebConfig._check)
MAX_HASHING = 1


def _bcrypt_hash(value: Any) -> str:
    # never echo the value: an operator may have pasted the password itself here
    if not isinstance(value, str) or not BCRYPT_HASH.fullmatch(value):
        raise vol.Invalid(
            "not a bcrypt hash (value not shown; make one with `python -m stackmedic.webconfig hash`)"
        )
    return value


def _client_auth_type(value: Any) -> str:
    if value in UNVERIFIED_CLIENT_AUTH:
        raise vol.Invalid(
            f"{value} is not supported: a client certificate is only accepted verified "
            "(use VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
        )
    if value not in CLIENT_AUTH:
        raise vol.Invalid(f"expected one of {', '.join(CLIENT_AUTH)}")
    return value


def _not_implemented(value: Any) -> Any:
    raise vol.Invalid("not supported by stackmedic (OpenSSL's defaults apply): remove it")


TLS_SCHEMA = {
    vol.Optional("cert_file"): str,
    vol.Optional("key_file"): str,
    vol.Optional("client_auth_type", default="NoClientCert"): _client_auth_type,
    vol.Optional("client_ca_file"): str,
    vol.Optional("min_version", default="TLS12"): vol.In(
        TLS_VERSIONS, msg=f"expected one of {', '.join(TLS_VERSIONS)}"
    ),
    vol.Optional("max_version", default="TLS13"): vol.In(
        TLS_VERSIONS, msg=f"expected one of {', '.join(TLS_VERSIONS)}"
    ),
    **{vol.Optional(key): _not_implemented for key in NOT_IMPLEMENTED},
}

SCHEMA = vol.Schema(
    {
        vol.Optional("tls_server_config"): TLS_SCHEMA,
        vol.Optional("http_server_config"): {
            vol.Optional("http2"): bool,
            vol.Optional("headers"): {vol.In(HEADERS, msg=f"expected one of {', '.join(HEADERS)}"): str},
        },
        vol.Optional("basic_auth_users"): {str: _bcrypt_hash},
    }
)


@dataclass(frozen=True)
class Login:
    """The outcome of one request's credentials: `user` when accepted, else a `reason`."""

    user: str | None
    reason: str | None = None  # missing, malformed, bad_credentials, busy


@dataclass
class WebConfig:
    """A parsed web configuration; the empty one (no TLS, no users) changes nothing."""

    tls: ssl.SSLContext | None = None
    users: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    # answers remembered: good logins apart, so that guesses cannot push them out
    _good: OrderedDict[bytes, bool] = field(default_factory=OrderedDict, repr=False)
    _bad: OrderedDict[bytes, bool] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _dummy: bytes | None = field(default=None, repr=False)
    _hashing: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(MAX_HASHING), repr=False
    )

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    def authenticate(self, authorization: str | None) -> Login:
        """Check an `Authorization: Basic` header against basic_auth_users."""
        if not self.users:
            return Login(user="")
        if not authorization:
            return Login(None, "missing")
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return Login(None, "malformed")
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            )
        except ValueError:  # binascii.Error, and a non-ASCII byte of a Latin-1 header: malformed
            return Login(None, "malformed")
        if not sep:
            return Login(None, "malformed")
        ok = self._check(user, password)
        if ok is None:
            return Login(None, "busy")
        return Login(user) if ok else Login(None, "bad_credentials")

    def _dummy_hash(self) -> bytes:
        """Compared against when the user is unknown, at the dearest cost of the users'
        hashes: a wrong user name then costs as long as a wrong password, and user names
        cannot be told apart by timing. Made at the first unknown user (not at start-up)."""
        if self._dummy is None:  # made under the hashing limit (one at a time), not the lock
            cost = max(int(h.split("$")[2]) for h in self.users.values())
            self._dummy = bcrypt.hashpw(b"stackmedic-unknown-user", bcrypt.gensalt(cost))
        return self._dummy

    def _check(self, user: str, password: str) -> bool | None:
        """Whether the password is right; None when MAX_HASHING checks are under way already."""
        # bcrypt is slow on purpose (tens of ms): remember recent answers, as
        # exporter-toolkit does, so that Prometheus' scrapes do not pay it every time
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            for cache in (self._good, self._bad):
                if key in cache:
                    cache.move_to_end(key)
                    return cache[key]
        # a fixed pool of workers serves every request: guesses waiting for bcrypt would
        # hold all of them, and remembered logins (Prometheus) would wait behind them
        if not self._hashing.acquire(blocking=False):
            return None
        try:
            secret = password.encode("utf-8")
            known = user in self.users
            hashed = self.users[user].encode() if known else self._dummy_hash()
            try:
                ok = bcrypt.checkpw(secret, hashed) and known
            except ValueError:  # over bcrypt's 72 bytes: never a valid password here
                ok = False
        finally:
            self._hashing.release()
        with self._lock:
            cache = self._good if ok else self._bad
            cache[key] = ok
            while len(cache) > 256:
                cache.popitem(last=False)
        return ok


def _path(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _tls_context(tls: dict, base: Path, problems: list[tuple[str, str]]) -> ssl.SSLContext | None:
    where = "tls_server_config"
    if not (tls.get("cert_file") or tls.get("key_file") or tls.get("client_ca_file")):
        return None  # as in exporter-toolkit: no certificate configured means plain HTTP
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            problems.append((f"{where}.{key}", "required key missing"))
    auth_type = tls["client_auth_type"]
    if tls.get("client_ca_file") and auth_type == "NoClientCert":
        problems.append((f"{where}.client_ca_file", "client CA given but client_auth_type is NoClientCert"))
    if auth_type != "NoClientCert" and not tls.get("client_ca_file"):
        problems.append((f"{where}.client_ca_file", f"required when client_auth_type is {auth_type}"))
    if TLS_VERSIONS[tls["min_version"]] > TLS_VERSIONS[tls["max_version"]]:
        problems.append((f"{where}.min_version", "higher than max_version"))
    if problems:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls["min_version"]]
    ctx.maximum_version = TLS_VERSIONS[tls["max_version"]]
    try:
        ctx.load_cert_chain(_path(base, tls["cert_file"]), _path(base, tls["key_file"]))
    except (OSError, ssl.SSLError) as exc:
        problems.append((f"{where}.cert_file", f"cannot load the certificate and key: {_reason(exc)}"))
    ctx.verify_mode = CLIENT_AUTH[auth_type]
    if tls.get("client_ca_file"):
        try:
            ctx.load_verify_locations(cafile=_path(base, tls["client_ca_file"]))
        except (OSError, ssl.SSLError) as exc:
            problems.append((f"{where}.client_ca_file", f"cannot load the client CA: {_reason(exc)}"))
    return ctx


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "invalid PEM"
    return getattr(exc, "strerror", None) or str(exc)


def parse(data: Any, base: Path = Path(".")) -> WebConfig:
    """Validate a parsed web configuration; ConfigError lists every problem at once."""
    if isinstance(data, dict):  # an empty section (`basic_auth_users:`) is an empty map
        data = {key: {} if value is None else value for key, value in data.items()}
    doc = validate(SCHEMA, {} if data is None else data)
    problems: list[tuple[str, str]] = []
    tls = _tls_context(doc["tls_server_config"], base, problems) if doc.get("tls_server_config") else None
    if problems:
        raise ConfigError(problems)
    http = doc.get("http_server_config") or {}
    return WebConfig(
        tls=tls, users=dict(doc.get("basic_auth_users") or {}), headers=dict(http.get("headers") or {})
    )


def load(path: str | Path | None) -> WebConfig:
    """The web configuration in `path`; the empty one when no file is given."""
    if not path:
        return WebConfig()
    try:
        return parse(load_config(path, vol.Schema(object)), Path(path).resolve().parent)
    except ConfigError as exc:  # say which file: the program's own --config.file has others
        raise ConfigError((f"--web.config.file {p}".rstrip(), m) for p, m in exc.problems) from None


def wsgi(
    app: Callable,
    config: WebConfig,
    on_failure: Callable[[Login, dict], None] | None = None,
    bypass: Callable[[dict], bool] | None = None,
) -> Callable:
    """`app` behind basic_auth_users (401 with a Basic challenge) and the configured headers.

    `bypass(environ)` lets a request through that the app authenticates itself (the
    receiver's webhook with its bearer token); `on_failure(login, environ)` is told of
    every refused login.
    """
    extra = list(config.headers.items())

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if bypass is not None and bypass(environ):
            login = Login(user="")
        else:
            login = config.authenticate(environ.get("HTTP_AUTHORIZATION"))
        if login.user is None:
            if on_failure is not None:
                on_failure(login, environ)
            if login.reason == "busy":
                status, body = "503 Service Unavailable", b"too many logins being checked: try again\n"
                more = [("Retry-After", "1")]
            else:
                status, body = "401 Unauthorized", b"Unauthorized\n"
                more = [("WWW-Authenticate", 'Basic realm="stackmedic", charset="UTF-8"')]
            start_response(
                status,
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    *more,
                    *extra,
                ],
            )
            return [body]
        if login.user:
            environ["REMOTE_USER"] = login.user
        if not extra:
            return app(environ, start_response)

        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            names = {name.lower() for name, _ in headers}
            return start_response(status, headers + [h for h in extra if h[0].lower() not in names], exc_info)

        return app(environ, start)

    return wrapped


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash for basic_auth_users."""
    secret = password.encode("utf-8")
    if len(secret) > 72:
        raise ValueError("bcrypt uses at most 72 bytes of a password: choose a shorter one")
    return bcrypt.hashpw(secret, bcrypt.gensalt(rounds)).decode()


def main(argv: list[str] | None = None) -> int:
    """`hash`: a bcrypt hash of the password on stdin; `check FILE`: validate a web config."""
    parser = argparse.ArgumentParser(prog="python -m stackmedic.webconfig", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    hash_cmd = sub.add_parser("hash", help="read a password from stdin, print its bcrypt hash")
    hash_cmd.add_argument("--rounds", type=int, default=12, choices=range(4, 32), metavar="4..31")
    check = sub.add_parser("check", help="validate a web configuration file")
    check.add_argument("file")
    args = parser.parse_args(argv)
    if args.command == "hash":
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            print("no password on stdin", file=sys.stderr)
            return 2
        try:
            print(hash_password(password, args.rounds))
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        return 0
    try:
        load(args.file)
    except ConfigError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 2
    print(f"{args.file}: web configuration ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
