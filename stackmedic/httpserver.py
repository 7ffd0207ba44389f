"""A WSGI server whose cost does not grow with idle or slow clients.

One thread holds every connection in a selector and reads each request whole - TLS
handshake, request line, headers and body - against a deadline that runs from the first
byte (a client sending one byte every few seconds is cut off when it expires, unlike a
per-read timeout). Only a complete request reaches the fixed pool of worker threads, so
hundreds of idle or slow sockets cost a file descriptor each, never a thread: under a
container's PID limit, a thread per connection (wsgiref's ThreadingMixIn) lets 60 idle
sockets stop every scrape. A connection beyond `max_connections` makes room: the idle
keep-alive ones are closed first, then the one that has been reading its request longest.

Deliberately small: HTTP/1.0 and 1.1, keep-alive, Content-Length bodies (no chunked
requests: 411), Expect: 100-continue, one request at a time per connection.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import re
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# the target in visible ASCII (RFC 3986 percent-encodes the rest): raw bytes reached Flask's
# query parsing, whose UnicodeDecodeError was a 500 with a logged traceback per request
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP/(\d\.\d)")
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True)
class Limits:
    """How much a client may hold, and for how long."""

    max_connections: int = 256
    threads: int = 4
    request_timeout: float = 10.0  # first byte (or connect) to the whole request read
    idle_timeout: float = 60.0  # a keep-alive connection waiting for its next request
    write_timeout: float = 10.0  # each send of the response
    max_header_bytes: int = 16384
    max_body_bytes: int = 0  # 0: requests with a body are refused (413)
    backlog: int = 64  # complete requests waiting for a worker; more get 503


class _Request:
    __slots__ = ("method", "target", "version", "headers", "body")

    def __init__(self, method: str, target: str, version: str, headers: list[tuple[str, str]], body: bytes):
        self.method, self.target, self.version, self.headers, self.body = (
            method,
            target,
            version,
            headers,
            body,
        )


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Conn:
    """One client connection while the selector thread owns it."""

    __slots__ = ("sock", "peer", "buf", "deadline", "handshaking", "idle", "header_end", "length", "head")

    def __init__(self, sock: socket.socket, peer: tuple, deadline: float, handshaking: bool):
        self.sock, self.peer, self.deadline, self.handshaking = sock, peer, deadline, handshaking
        self.buf = bytearray()
        self.idle = False  # waiting between keep-alive requests, no byte of the next one yet
        self.header_end = -1
        self.length = 0
        self.head: tuple[str, str, str, list[tuple[str, str]]] | None = None


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.split(b"\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if not m:
        raise _HttpError(400, "malformed request line")
    if m.group(3) not in (b"1.0", b"1.1"):
        raise _HttpError(505, "HTTP version not supported")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise _HttpError(400, "malformed header")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return m.group(1).decode("ascii"), m.group(2).decode("latin-1"), m.group(3).decode("ascii"), headers


_DIGITS = re.compile(r"[0-9]{1,18}")


def _content_length(headers: list[tuple[str, str]], limit: int) -> int:
    if any(name.lower() == "transfer-encoding" for name, _ in headers):
        raise _HttpError(411, "chunked request bodies are not accepted: send Content-Length")
    values = {value for name, value in headers if name.lower() == "content-length"}
    if not values:
        return 0
    # ASCII digits only: str.isdigit() accepts a Latin-1 superscript two, which int() refuses
    if len(values) > 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise _HttpError(400, "invalid Content-Length")
    length = int(next(iter(values)))
    if length > limit:
        raise _HttpError(413, "request body too large")
    return length


class Server:
    """Serve a WSGI `app` on host:port with `limits`, over TLS when `tls` is given."""

    def __init__(
        self,
        app: Callable,
        host: str,
        port: int,
        limits: Limits | None = None,
        tls: ssl.SSLContext | None = None,
        ident: str = "stackmedic",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.app, self.limits, self.tls, self.ident, self.clock = app, limits or Limits(), tls, ident, clock
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._returned: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._work: queue.Queue[tuple[_Conn, _Request] | None] = queue.Queue(self.limits.backlog)
        self._conns: dict[int, _Conn] = {}
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._worker, name=f"{ident}-worker-{i}", daemon=True)
            for i in range(self.limits.threads)
        ]
        self.thread: threading.Thread | None = None
        self.rejected = 0  # connections closed at once because max_connections were with workers
        self.evicted = 0  # connections closed to make room for a new one

    # --- life cycle

    def start(self) -> Server:
        """Serve in background threads."""
        for worker in self._workers:
            worker.start()
        self.thread = threading.Thread(target=self._loop, name=f"{self.ident}-http", daemon=True)
        self.thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and close every connection."""
        self._stop.set()
        self._wake()
        if self.thread:
            self.thread.join(10)
        for _ in self._workers:
            with contextlib.suppress(queue.Full):
                self._work.put(None, timeout=1)
        for worker in self._workers:
            worker.join(10)

    def server_close(self) -> None:
        self.socket.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    # --- the selector thread

    def _loop(self) -> None:
        sel = self._selector
        sel.register(self.socket, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop.is_set():
                ready = sel.select(self._next_timeout())
                # new connections last: a client that closed in the same instant frees its place first
                ready.sort(key=lambda event: event[0].data == "listen")
                for key, _ in ready:
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                        self._take_back()
                    else:
                        self._guarded(key.data)
                self._expire()
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            sel.close()

    def _guarded(self, conn: _Conn) -> None:
        """Read from `conn`; whatever its bytes raise closes it alone. This thread serves
        every client: an exception escaping it stopped all answers, process still alive."""
        try:
            self._readable(conn)
        except Exception:
            log.exception("closing a connection after an unexpected error peer=%s", conn.peer[0])
            self._close(conn)

    def _next_timeout(self) -> float:
        if not self._conns:
            return 1.0
        soonest = min(c.deadline for c in self._conns.values())
        return min(1.0, max(0.0, soonest - self.clock()))

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: keep serving those already in
                log.warning("accept failed error=%s", exc.strerror or exc)
                return
            with self._busy_lock:
                busy = self._busy
            if len(self._conns) + busy >= self.limits.max_connections and not self._make_room():
                self.rejected += 1
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = _Conn(sock, peer, self.clock() + self.limits.request_timeout, self.tls is not None)
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            if conn.handshaking:
                self._guarded(conn)

    def _make_room(self) -> bool:
        """Close one connection for a newcomer: the idle one nearest its end, else the one
        reading its request the longest (refusing the newcomer instead let clients that
        send a byte now and then, as many as the limit, keep every request out for good).
        False when every connection is with a worker."""
        if not self._conns:
            return False
        idle = [c for c in self._conns.values() if c.idle]
        # a request's deadline is its first byte plus request_timeout: the earliest is the oldest
        self._close(min(idle or self._conns.values(), key=lambda c: c.deadline))
        self.evicted += 1
        return True

    def _take_back(self) -> None:
        while True:
            try:
                conn = self._returned.get_nowait()
            except queue.Empty:
                return
            with self._busy_lock:
                self._busy -= 1
            if self._stop.is_set():
                conn.sock.close()
                continue
            conn.idle = not conn.buf
            timeout = self.limits.idle_timeout if conn.idle else self.limits.request_timeout
            conn.deadline = self.clock() + timeout
            self._conns[conn.sock.fileno()] = conn
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            if conn.buf or (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                self._guarded(conn)

    def _expire(self) -> None:
        now = self.clock()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if not conn.idle and conn.buf and not conn.handshaking:
                self._reply_error(conn, _HttpError(408, "request not received in time"))
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _readable(self, conn: _Conn) -> None:
        sock = conn.sock
        if conn.handshaking:
            try:
                sock.do_handshake()  # type: ignore[attr-defined]
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
                return
            except (ssl.SSLError, OSError) as exc:
                log.debug("tls handshake failed client=%s error=%s", conn.peer[0], exc)
                self._close(conn)
                return
            conn.handshaking = False
            self._selector.modify(sock, selectors.EVENT_READ, conn)
        while True:
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
                break
            except (ssl.SSLError, OSError):
                self._close(conn)
                return
            if not chunk:
                self._close(conn)
                return
            if conn.idle:  # the first byte of the next request starts its deadline
                conn.idle = False
                conn.deadline = self.clock() + self.limits.request_timeout
            conn.buf += chunk
            if len(conn.buf) > self.limits.max_header_bytes + self.limits.max_body_bytes + 4:
                break
        self._try_request(conn)

    def _try_request(self, conn: _Conn) -> None:
        try:
            request = self._complete_request(conn)
        except _HttpError as exc:
            self._reply_error(conn, exc)
            self._close(conn)
            return
        if request is None:
            return
        self._conns.pop(conn.sock.fileno(), None)
        self._selector.unregister(conn.sock)
        with self._busy_lock:
            self._busy += 1
        try:
            self._work.put_nowait((conn, request))
        except queue.Full:
            with self._busy_lock:
                self._busy -= 1
            self._reply_error(conn, _HttpError(503, "too many requests waiting"))
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _complete_request(self, conn: _Conn) -> _Request | None:
        buf = conn.buf
        if conn.header_end < 0:
            while buf.startswith(b"\r\n"):  # tolerated between requests (RFC 9112 2.2)
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.limits.max_header_bytes:
                    raise _HttpError(431, "request header too large")
                return None
            if end > self.limits.max_header_bytes:
                raise _HttpError(431, "request header too large")
            conn.head = _parse_head(bytes(buf[:end]))
            conn.length = _content_length(conn.head[3], self.limits.max_body_bytes)
            conn.header_end = end
            expect = [v.lower() for k, v in conn.head[3] if k.lower() == "expect"]
            if conn.length and expect == ["100-continue"] and len(buf) < end + 4 + conn.length:
                with contextlib.suppress(OSError, ValueError):  # curl waits for this before a body
                    conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        total = conn.header_end + 4 + conn.length
        if len(buf) < total or conn.head is None:
            return None
        method, target, version, headers = conn.head
        body = bytes(buf[conn.header_end + 4 : total])
        del buf[:total]
        conn.header_end, conn.length, conn.head = -1, 0, None
        return _Request(method, target, version, headers, body)

    def _reply_error(self, conn: _Conn, error: _HttpError) -> None:
        body = f"{error}\n".encode()
        head = (
            f"HTTP/1.1 {error.status} {_REASONS[error.status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError, ValueError):
            conn.sock.send(head.encode() + body)  # best effort: the socket is non-blocking

    # --- the workers

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            conn, request = item
            keep = False
            try:
                keep = self._respond(conn, request)
            except Exception:  # noqa: BLE001 - one request's failure must not end the worker
                log.exception("request failed client=%s", conn.peer[0])
            if keep and not self._stop.is_set():
                with contextlib.suppress(OSError):
                    conn.sock.setblocking(False)
                    self._returned.put(conn)
                    self._wake()
                    continue
            with self._busy_lock:
                self._busy -= 1
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _environ(self, conn: _Conn, request: _Request) -> dict[str, Any]:
        target = request.target
        if "://" in target:  # absolute form: keep the path
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": str(self.server_address[0]),
            "SERVER_PORT": str(self.server_address[1]),
            "SERVER_PROTOCOL": f"HTTP/{request.version}",
            "SERVER_SOFTWARE": self.ident,
            "REMOTE_ADDR": str(conn.peer[0]),
            "REMOTE_PORT": str(conn.peer[1]),
            "CONTENT_LENGTH": str(len(request.body)) if request.body else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.tls is not None else "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            if "_" in name:  # HTTP_X_FOO from X_Foo could pose as X-Foo: dropped, as waitress does
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if key == "CONTENT_TYPE":
                    environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        return environ

    def _respond(self, conn: _Conn, request: _Request) -> bool:
        """Run the app and write its answer; True when the connection stays open."""
        environ = self._environ(conn, request)
        connection = environ.get("HTTP_CONNECTION", "").lower()
        keep = request.version == "1.1" and "close" not in connection
        state: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            if exc_info and state.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"], state["headers"] = status, headers
            return lambda data: state.setdefault("written", []).append(data)

        conn.sock.settimeout(self.limits.write_timeout)
        try:
            result: Iterable[bytes] = self.app(environ, start_response)
            try:
                chunks = state.pop("written", []) + list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("application error client=%s path=%s", conn.peer[0], environ["PATH_INFO"])
            self._reply_error(conn, _HttpError(500, "internal server error"))
            return False
        body = b"".join(chunks)
        headers = [(k, v) for k, v in state["headers"] if k.lower() not in ("connection", "content-length")]
        given = [v for k, v in state["headers"] if k.lower() == "content-length"]
        length = given[0] if given else str(len(body))
        lines = [f"HTTP/1.1 {state['status']}", f"Date: {formatdate(usegmt=True)}", f"Server: {self.ident}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [f"Content-Length: {length}", f"Connection: {'keep-alive' if keep else 'close'}", "", ""]
        state["sent"] = True
        payload = "\r\n".join(lines).encode("latin-1")
        if request.method != "HEAD":
            payload += body
        conn.sock.sendall(payload)
        return keep


def serve(
    app: Callable,
    host: str,
    port: int,
    limits: Limits | None = None,
    tls: ssl.SSLContext | None = None,
    ident: str = "stackmedic",
) -> Server:
    """Bind, then serve `app` in background threads; `server_address` has the real port."""
    return Server(app, host, port, limits, tls, ident).start()
