"""TLS to MySQL/MariaDB, the same for PyMySQL and for the `mariadb` command-line clients.

One set of keys wherever a program connects to a database server (the receiver's MySQL
store, each database of the jobs):

    tls: true                  # off unless set: the compose networks are private to the host
    tls_ca_file: /run/secrets/mysql-ca.crt   # the CA that signed the server's certificate
    tls_cert_file: ...         # a client certificate, for accounts that REQUIRE X509
    tls_key_file: ...
    tls_verify: true           # the default: the certificate and the host name are checked

With `tls_verify` on, `tls_ca_file` is required: PyMySQL and the MariaDB clients do not
agree on a system CA store, and a database's CA is nearly always a private one. Every file
is read at start-up, so a missing or wrong file is a configuration error with its key path,
not a failure at the first backup.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

KEYS = ("tls", "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_verify")
SCHEMA = {
    vol.Optional("tls"): bool,
    vol.Optional("tls_ca_file"): str,
    vol.Optional("tls_cert_file"): str,
    vol.Optional("tls_key_file"): str,
    vol.Optional("tls_verify"): bool,
}
TLS_ERROR_CODE = 2026  # the MariaDB client's "SSL connection error"


@dataclass(frozen=True)
class MysqlTls:
    """Whether and how to speak TLS to a MySQL/MariaDB server."""

    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    @classmethod
    def from_section(cls, section: dict) -> MysqlTls:
        """The tls* keys of a validated configuration section."""
        return cls(
            enabled=section.get("tls", False),
            ca_file=section.get("tls_ca_file"),
            cert_file=section.get("tls_cert_file"),
            key_file=section.get("tls_key_file"),
            verify=section.get("tls_verify", True),
        )

    def problems(self, prefix: str, require_ca: bool = True) -> list[tuple[str, str]]:
        """Every problem of these settings, each with its key path under `prefix`.

        `require_ca=False`: with tls_verify and no tls_ca_file, the system's CA store (the
        exporter's PyMySQL alone; the mariadb clients need the file).
        """
        at = (prefix + ".") if prefix else ""
        given = {
            "tls_ca_file": self.ca_file,
            "tls_cert_file": self.cert_file,
            "tls_key_file": self.key_file,
        }
        if not self.enabled:
            return [(at + key, "needs tls: true") for key, value in given.items() if value is not None]
        out: list[tuple[str, str]] = []
        if require_ca and self.verify and self.ca_file is None:
            out.append(
                (at + "tls_ca_file", "required with tls_verify (the CA that signed the server's certificate)")
            )
        if (self.cert_file is None) != (self.key_file is None):
            missing = "tls_key_file" if self.key_file is None else "tls_cert_file"
            out.append((at + missing, "tls_cert_file and tls_key_file go together"))
        for key, value in given.items():
            if value is not None:
                try:
                    with open(value, "rb"):
                        pass
                except OSError as exc:
                    out.append((at + key, f"cannot read {value}: {exc.strerror}"))
        if out:
            return out
        try:
            ssl.create_default_context(cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            out.append((at + "tls_ca_file", f"not a usable CA certificate file: {_reason(exc)}"))
        if self.cert_file and self.key_file:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, OSError) as exc:
                out.append((at + "tls_cert_file", f"not usable with tls_key_file: {_reason(exc)}"))
        return out

    def context(self) -> ssl.SSLContext | None:
        """The client context (None when TLS is off); ssl.SSLError for unusable files."""
        if not self.enabled:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def pymysql_options(self) -> dict[str, Any]:
        """Keyword arguments for pymysql.connect: TLS required with our context, or none at all.

        Off is explicit: PyMySQL would otherwise take TLS whenever the server offers it,
        without checking the certificate, and build a CA store on every connection.
        """
        ctx = self.context()
        return {"ssl": ctx} if ctx is not None else {"ssl_disabled": True}

    def client_option_lines(self) -> list[str]:
        """The [client] option file lines for mariadb, mariadb-dump and mariadb-binlog."""
        if not self.enabled:
            # explicit: MariaDB 11.4+ clients would otherwise try TLS and verify the server
            return ["skip-ssl"]
        lines = ["ssl"]
        for option, value in (
            ("ssl-ca", self.ca_file),
            ("ssl-cert", self.cert_file),
            ("ssl-key", self.key_file),
        ):
            if value is not None:
                lines.append(f"{option}={_option_value(value)}")
        lines.append("ssl-verify-server-cert" if self.verify else "skip-ssl-verify-server-cert")
        return lines


def _option_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return getattr(exc, "strerror", None) or str(exc)


def tls_failure(exc: BaseException) -> str | None:
    """What went wrong in the TLS handshake of a failed PyMySQL connect, or None if it was not TLS.

    PyMySQL wraps a failed handshake in OperationalError 2003 ("Can't connect"), which would
    read as a server that is down; the ssl error underneath says what really happened.
    """
    original = getattr(exc, "original_exception", None)
    for candidate in (exc, original):
        if isinstance(candidate, ssl.SSLCertVerificationError):
            return f"the server's certificate was refused: {candidate.verify_message}"
        if isinstance(candidate, ssl.SSLError):
            return f"TLS handshake failed: {_reason(candidate)}"
    args = getattr(exc, "args", ())
    if args and args[0] == TLS_ERROR_CODE:
        return f"TLS handshake failed: {args[-1]}"
    return None
