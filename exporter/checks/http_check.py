"""HTTP targets: the status is allowed and the body matches, within the deadline.

The body is read in pieces as they arrive, up to `max_body_bytes`, and reading stops at
the deadline: a server that drips its body cannot hold the check past it. A failure has
one reason from a fixed set (timeout, connect, tls, status, keyword, body_too_large,
redirect, error). Redirects are followed by hand: the configured headers go to the
target's own origin only, and https never leads to plain http unless allowed. Sample::

    stackmedic_http_up{target="petclinic"} 1
    stackmedic_http_status_code{target="petclinic"} 200
    stackmedic_http_failure_reason{target="petclinic",reason="keyword"} 0

The standard library's http.client does the talking. Each check is one GET on a fresh
connection, with no retries and redirects followed by hand, so urllib3's pools, retry
and timeout objects were work done for nothing: half of the check's CPU in the benchmark.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import ssl
import zlib
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

from stackmedic.config import redact_query, redact_url

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
HTTP_REASONS = ("timeout", "connect", "tls", "status", "keyword", "body_too_large", "redirect", "error")

UP = MetricSpec("http_up", "gauge", "1 when the status is allowed and the body matches.", ("target",))
STATUS_CODE = MetricSpec(
    "http_status_code", "gauge", "HTTP status of the last response, 0 when none.", ("target",)
)
DURATION = MetricSpec("http_duration_seconds", "gauge", "Time of the HTTP check, body included.", ("target",))
FAILURE_REASON = MetricSpec(
    "http_failure_reason",
    "gauge",
    "1 for the reason the HTTP check failed, 0 for the others.",
    ("target", "reason"),
)


class Failed(Exception):
    """The check failed for `reason` (one of HTTP_REASONS)."""

    def __init__(self, reason: str, detail: str = "", status: int = 0):
        super().__init__(detail or reason)
        self.reason = reason
        self.status = status


@dataclass
class HttpTarget:
    """A configured HTTP target."""

    name: str
    url: str
    timeout: float = 5.0
    status_codes: tuple[int, ...] = ()
    keyword: str | None = None
    regex: re.Pattern | None = None
    max_body_bytes: int = 1024 * 1024
    tls_verify: bool = True
    ca_file: str | None = None
    follow_redirects: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    allow_http_redirect: bool = False

    @classmethod
    def from_config(cls, item: dict) -> HttpTarget:
        return cls(
            # the URL as the label when no name is given, without what may be secret in it
            name=item.get("name") or redact_url(item["url"], query=True),
            url=item["url"],
            timeout=item["timeout"],
            status_codes=tuple(item.get("status_codes") or ()),
            keyword=item.get("keyword"),
            regex=re.compile(item["regex"]) if item.get("regex") else None,
            max_body_bytes=item["max_body_bytes"],
            tls_verify=item["tls_verify"],
            ca_file=item.get("ca_file"),
            follow_redirects=item["follow_redirects"],
            headers=dict(item.get("headers") or {}),
            allow_http_redirect=item.get("allow_http_redirect", False),
        )

    def status_allowed(self, status: int) -> bool:
        return status in self.status_codes if self.status_codes else 200 <= status <= 299


def _reason_of(exc: Exception, connecting: bool) -> str:
    """Which reason `exc` is, raised while `connecting` (TCP and TLS) or after."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, http.client.HTTPException):
        return "error"  # a malformed or cut-off response
    if connecting and isinstance(exc, OSError):
        return "connect"  # refused, no route, name not resolved
    return "error"


def _scrub(text: str, url: str) -> str:
    """An error's text (which may repeat the URL's path and query) without the URL's secrets."""
    parts = urlsplit(url)
    if parts.query:
        text = text.replace(parts.query, redact_query(parts.query))
    if parts.password:
        text = text.replace(parts.password, "***")
    return text


def _request_target(url: str) -> str:
    """The path and query to send, percent-encoded where the URL was not (`/café`): a
    request line is ASCII; what is encoded already stays as it is."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=~")
    return f"{path}?{query}" if query else path


def tls_context(target: HttpTarget) -> ssl.SSLContext:
    """The target's TLS settings: the system's CAs or `ca_file`, or no verification."""
    context = ssl.create_default_context(cafile=target.ca_file)
    if not target.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class HttpCheck(Check):
    """GET one URL; up when the status is allowed and the body matches."""

    kind = "http"
    metrics = (UP, STATUS_CODE, DURATION, FAILURE_REASON)

    def __init__(self, target: HttpTarget):
        super().__init__(target.name, target.timeout)
        self.target = target
        self._tls: ssl.SSLContext | None = None  # made when an https URL is first met

    @classmethod
    def from_section(cls, section: list) -> list[Check]:
        return [cls(HttpTarget.from_config(t)) for t in section]

    def run(self, out: Samples, deadline: Deadline) -> None:
        start = deadline.clock()
        status, reason = 0, ""
        try:
            status = self._probe(deadline)
        except Failed as exc:
            reason = exc.reason
            status = exc.status
            log.debug("http check failed target=%s reason=%s detail=%s", self.name, reason, exc)
        self._emit(out, status, reason, deadline.clock() - start)

    def _probe(self, deadline: Deadline) -> int:
        base = {"User-Agent": "stackmedic-exporter", "Accept-Encoding": "identity"}
        headers = {**base, **self.target.headers}
        url = self.target.url
        for _ in range(MAX_REDIRECTS + 1):
            # a fresh connection for each hop, as a browser arriving would make
            conn, sock = self._connect(url, deadline)
            try:
                path = _request_target(url)
                try:
                    conn.request("GET", path, headers=headers)
                    resp = conn.getresponse()
                except Exception as exc:  # noqa: BLE001 - every client error is a reason
                    raise Failed(_reason_of(exc, connecting=False), _scrub(str(exc), url)) from None
                location = resp.getheader("Location")
                if not (self.target.follow_redirects and resp.status in REDIRECTS and location):
                    return self._check_response(resp, sock, deadline)
            finally:
                conn.close()
            url, headers = self._next_hop(url, urljoin(url, location), headers, base)
        raise Failed("redirect", f"more than {MAX_REDIRECTS} redirects")

    def _connect(self, url: str, deadline: Deadline) -> tuple[http.client.HTTPConnection, socket.socket]:
        """A connection to `url`'s origin, made (TCP and TLS) by the deadline; and its socket,
        whose timeout the body loop sets before each read."""
        if deadline.expired():
            raise Failed("timeout")
        parts = urlsplit(url)
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError as exc:  # a port that is not a number
            raise Failed("error", str(exc)) from None
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            if self._tls is None:
                try:
                    self._tls = tls_context(self.target)
                except (OSError, ssl.SSLError) as exc:  # ca_file missing or not PEM
                    raise Failed("tls", f"ca_file: {exc}") from None
            conn = http.client.HTTPSConnection(host, port, timeout=deadline.timeout(), context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=deadline.timeout())
        try:
            conn.connect()
        except Exception as exc:  # noqa: BLE001 - every client error is a reason
            conn.close()
            raise Failed(_reason_of(exc, connecting=True), _scrub(str(exc), url)) from None
        assert conn.sock is not None
        return conn, conn.sock

    def _next_hop(
        self, url: str, new: str, headers: dict[str, str], base: dict[str, str]
    ) -> tuple[str, dict[str, str]]:
        """The next hop, checked by hand: a client library's own redirects would send an
        X-Api-Key to any host a redirect names, and follow https to plain http."""
        old_parts, new_parts = urlsplit(url), urlsplit(new)
        if new_parts.scheme not in ("http", "https"):
            raise Failed("redirect", f"redirect to a {new_parts.scheme or 'relative'} URL")
        if old_parts.scheme == "https" and new_parts.scheme == "http" and not self.target.allow_http_redirect:
            raise Failed("redirect", "redirect from https to http (allow_http_redirect is false)")
        same_origin = (old_parts.scheme, old_parts.hostname, old_parts.port) == (
            new_parts.scheme,
            new_parts.hostname,
            new_parts.port,
        )
        return new, headers if same_origin else dict(base)

    def _check_response(self, resp: http.client.HTTPResponse, sock: socket.socket, deadline: Deadline) -> int:
        status = resp.status
        if not self.target.status_allowed(status):
            raise Failed("status", f"status {status}", status)
        limit = self.target.max_body_bytes
        length = resp.getheader("Content-Length", "")
        if length.isascii() and length.isdigit() and int(length) > limit:
            raise Failed("body_too_large", f"Content-Length {length}", status)
        # asked for identity, a server may still compress: the keyword is in the decoded text
        encoding = (resp.getheader("Content-Encoding") or "").strip().lower()
        decoder = (
            zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "x-gzip", "deflate") else None
        )
        body = bytearray()
        try:
            while True:
                if deadline.expired():
                    raise Failed("timeout", "body not complete by the deadline", status)
                sock.settimeout(deadline.timeout())
                chunk = resp.read1(65536)
                if not chunk:
                    break
                if decoder is not None:
                    chunk = decoder.decompress(chunk, limit + 1 - len(body))
                    if decoder.unconsumed_tail:
                        raise Failed("body_too_large", f"body over {limit} bytes", status)
                body += chunk
                if len(body) > limit:
                    raise Failed("body_too_large", f"body over {limit} bytes", status)
        except Failed:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken or timed-out body read
            raise Failed(_reason_of(exc, connecting=False), str(exc), status) from None
        if self.target.keyword or self.target.regex:
            # ASCII keywords match in any ASCII-compatible charset
            text = body.decode("utf-8", errors="replace")
            if self.target.keyword and self.target.keyword not in text:
                raise Failed("keyword", "keyword not found", status)
            if self.target.regex and not self.target.regex.search(text):
                raise Failed("keyword", "regex not matched", status)
        return status

    def _emit(self, out: Samples, status: int, reason: str, elapsed: float) -> None:
        name = self.name
        out.add(UP, 0 if reason else 1, name)
        out.add(STATUS_CODE, status, name)
        out.add(DURATION, elapsed, name)
        for r in HTTP_REASONS:
            out.add(FAILURE_REASON, 1 if r == reason else 0, name, r)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        # still running means the target is still hanging from an earlier scrape
        self._emit(out, 0, "error" if reason == "error" else "timeout", elapsed)
