"""Real HTTP and TCP servers on 127.0.0.1 for the exporter's tests and benchmark.

`TargetServer` answers by path the ways a web application can: fine, an error, the wrong
page, a huge body, a body dripping a byte at a time, a redirect, a gzipped page, a page
behind authorization. `HungServer` accepts TCP
connections and never says a word. Both stop their threads on `stop()`.
"""

from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WELCOME = b"<html><body><h2>Welcome</h2><p>PetClinic</p></body></html>\n"
HUGE_BYTES = 4 * 1024 * 1024
BASIC_MONITOR = base64.b64encode(b"monitor:s3cret").decode()
# 4 MiB of zeros, about 4 kB on the wire
GZIP_BOMB = gzip.compress(bytes(HUGE_BYTES))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet tests
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        path = self.path.split("?")[0]
        stop = self.server.stopping
        if path == "/ok":
            self._send(200, WELCOME)
        elif path == "/slow5ms":
            time.sleep(0.005)
            self._send(200, WELCOME)
        elif path == "/error":
            self._send(500, b"<html>Internal Server Error</html>")
        elif path == "/nokeyword":
            self._send(200, b"<html>Maintenance</html>")
        elif path == "/auth":
            # the credentials of the tests: basic monitor / s3cret, or the bearer token t0ken
            if self.headers.get("Authorization") in (f"Basic {BASIC_MONITOR}", "Bearer t0ken"):
                self._send(200, WELCOME)
            else:
                self._send(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="t"'})
        elif path == "/gzip":
            # compressed although the client asked for identity, as some servers do
            self._send(200, gzip.compress(WELCOME), {"Content-Encoding": "gzip"})
        elif path == "/gzip-bomb":
            self._send(200, GZIP_BOMB, {"Content-Encoding": "gzip"})
        elif path == "/redirect":
            self._send(302, b"", {"Location": "/ok"})
        elif path == "/huge":
            # announces its size: refused without reading
            self.send_response(200)
            self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            self._stream(HUGE_BYTES)
        elif path == "/huge-unannounced":
            # no Content-Length: the cap must stop the read
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self._stream(HUGE_BYTES)
            self.close_connection = True
        elif path == "/drip":
            # headers at once, then one byte every 50 ms of a 100 kB body
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100000):
                if stop.wait(0.05):
                    break
                try:
                    self.wfile.write(b"W")
                    self.wfile.flush()
                except OSError:
                    break
            self.close_connection = True
        else:
            self._send(404, b"not found")

    def _stream(self, size: int) -> None:
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < size and not self.server.stopping.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client stopped reading: as it should


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs under 32 concurrent clients (and the
    # client retries after 1 s): real servers listen with 128 or more
    request_queue_size = 128
    stopping: threading.Event


class TargetServer:
    """A real HTTP server on 127.0.0.1:<free port>; `url(path)` gives a target URL."""

    def __init__(self) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.stopping = threading.Event()
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class HungServer:
    """Accepts TCP connections and never answers (nor closes them until stopped)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()
