"""Issue 13 defect 3: idle and slow clients cannot stop the exporter's scrapes.

The exporter served a thread per connection with no timeout: under compose's
`pids_limit: 64`, 60 idle sockets left no thread for a scrape. These tests hold 200 idle
and slow sockets against the real server (and, where the machine has cgroup v1's pids
controller, against the real program under a 64-PID limit) and scrape through them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from stackmedic.exporter.checks.system import SystemCheck
from stackmedic.exporter.collector import ScrapeRunner
from stackmedic.exporter.web import make_app, serve

from harness.services import Process, free_port, wait_for
from stackmedic.httpserver import Limits

PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


@contextlib.contextmanager
def held_sockets(port: int, idle: int, slow: int) -> Iterator[list[socket.socket]]:
    """`idle` connections that send nothing and `slow` ones that sent half a request."""
    socks = []
    try:
        for i in range(idle + slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i >= idle:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def exporter() -> Iterator[tuple[str, int]]:
    runner = ScrapeRunner([SystemCheck(["/"])], version="9.9.9")
    server, thread = serve(make_app(runner, default_timeout=5, margin=0.5), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_address[1]}", server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)
    runner.close()


def scrape_ok(url: str) -> bool:
    r = requests.get(f"{url}/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"}, timeout=10)
    return r.status_code == 200 and 'stackmedic_build_info{version="9.9.9"} 1.0' in r.text


def test_200_idle_and_slow_sockets_cost_no_thread_and_scrapes_go_on(exporter):
    url, port = exporter
    assert scrape_ok(url)
    before = threading.active_count()
    with held_sockets(port, idle=150, slow=50):
        # the server may have started a thread for the first connections; not one per socket
        assert threading.active_count() - before < 10
        for _ in range(3):
            assert scrape_ok(url)


def test_a_slow_client_is_cut_off_although_it_keeps_sending():
    runner = ScrapeRunner([], version="9.9.9")
    server, thread = serve(
        make_app(runner), "127.0.0.1", 0, limits=Limits(request_timeout=0.5, idle_timeout=0.5)
    )
    try:
        s = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        answer = b""

        def cut_off() -> bool:
            nonlocal answer
            # one header byte at a time, each well within any per-read timeout
            try:
                s.sendall(b"X")
                s.settimeout(0.05)
                answer += s.recv(4096)
            except TimeoutError:
                return False
            except OSError:
                return True
            return answer.startswith(b"HTTP/1.1 408")

        wait_for(cut_off, 20, "the server to end a request that never completes", interval=0.05)
        s.close()
        idle = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=20)
        assert idle.recv(10) == b""  # an idle connection is closed too
        idle.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        runner.close()


def test_connections_beyond_the_limit_are_closed_and_the_idle_make_room():
    runner = ScrapeRunner([], version="9.9.9")
    server, thread = serve(make_app(runner), "127.0.0.1", 0, limits=Limits(max_connections=20))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        # keep-alive connections between requests are the first to go when room is needed
        # (slow requests making room: test_more_slow_clients_than_the_limit_...)
        sessions = [requests.Session() for _ in range(20)]
        for session in sessions:
            assert session.get(f"{url}/-/healthy", timeout=10).text == "OK\n"
        assert requests.get(f"{url}/-/healthy", timeout=10).text == "OK\n"
        for session in sessions:
            session.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        runner.close()


def test_connections_that_close_in_the_same_instant_make_room_before_a_new_one_is_judged():
    """The selector reports the listening socket before the closed ones (epoll re-queues it
    first after it was just reported): the new connection must see the room they free."""
    runner = ScrapeRunner([], version="9.9.9")
    server, thread = serve(make_app(runner), "127.0.0.1", 0, limits=Limits(max_connections=20))
    port = server.server_address[1]
    real_select = server._selector.select
    gate, parked = threading.Event(), threading.Event()
    gate.set()

    def gated_select(timeout=None):
        if not gate.is_set():
            parked.set()
            gate.wait(10)
        return real_select(timeout)

    server._selector.select = gated_select
    try:
        with held_sockets(port, idle=0, slow=20):
            wait_for(lambda: len(server._conns) == 20, 10, "twenty slow connections held")
            gate.clear()
            extra = socket.create_connection(("127.0.0.1", port), timeout=10)
            # full: the oldest slow client makes room for it, then the loop parks at the gate
            assert parked.wait(10)
            extra.close()
        # the twenty slow clients are gone and a new one is waiting: one select reports all
        with socket.create_connection(("127.0.0.1", port), timeout=10) as new:
            new.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            gate.set()
            answer = b""
            while chunk := new.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
    finally:
        gate.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
        runner.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", b"413"),
        (b"POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
        # a superscript two in Latin-1: str.isdigit() says yes, int() says no, and the
        # selector thread died of it (no answer to anyone any more, without credentials)
        (b"POST /metrics HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nab", b"400"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 1\xb9\r\n\r\nab", b"400"),
        # a request target is ASCII (RFC 3986: anything else percent-encoded); raw bytes
        # reached Flask's query parsing, whose UnicodeDecodeError was a 500 and a logged
        # traceback per request, for anyone
        (b"GET /metrics?limit=\xff HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", b"400"),
    ],
)
def test_malformed_requests_get_a_status_and_a_closed_connection(exporter, raw: bytes, status: bytes):
    url, port = exporter
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.split(b" ", 2)[1] == status
    assert scrape_ok(url)  # and the server goes on


def test_an_unexpected_error_with_one_connection_leaves_the_server_serving(exporter, monkeypatch):
    """Whatever one connection's bytes raise in the selector thread closes that connection
    only: the thread serves everyone, and its death was a silent outage."""
    from stackmedic import httpserver

    real = httpserver._parse_head

    def parse_head(head: bytes):
        if b"X-Boom" in head:
            raise RuntimeError("a bug reached by one client's bytes")
        return real(head)

    monkeypatch.setattr(httpserver, "_parse_head", parse_head)
    url, port = exporter
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Boom: 1\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(4096) == b""
    assert scrape_ok(url)


def pids_cgroup_usable() -> bool:
    return os.geteuid() == 0 and (PIDS_CGROUP / "cgroup.procs").exists()


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    if not pids_cgroup_usable():
        pytest.skip("needs root and cgroup v1's pids controller")
    group = PIDS_CGROUP / f"stackmedic-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    (group / "pids.max").write_text("64")
    yield group
    # the test stopped its processes; an empty group can be removed
    with contextlib.suppress(OSError):
        group.rmdir()


def test_the_exporter_still_scrapes_under_a_64_pid_limit(pids_cgroup: Path, tmp_path: Path):
    port = free_port()
    config = tmp_path / "exporter.yml"
    config.write_text("system:\n  filesystems: [/]\n")
    program = Path(sys.executable).parent / "stackmedic-exporter"
    # the shell joins the group, then becomes the exporter: every thread it makes counts
    argv = [
        "sh",
        "-c",
        f'echo $$ > {pids_cgroup}/cgroup.procs && exec "$0" "$@"',
        str(program),
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = Process(argv, tmp_path / "exporter.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/-/healthy", timeout=2).ok, 30, "the exporter to answer")
        assert int((pids_cgroup / "pids.current").read_text()) < 64
        with held_sockets(port, idle=150, slow=50):
            for _ in range(3):
                r = requests.get(
                    f"{url}/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"}, timeout=10
                )
                assert r.status_code == 200 and "stackmedic_build_info" in r.text
            assert int((pids_cgroup / "pids.current").read_text()) < 64
            assert int((pids_cgroup / "pids.events").read_text().split()[1]) == 0  # never hit the limit
    finally:
        process.stop()


def test_more_slow_clients_than_the_limit_cannot_keep_a_request_out():
    """Slow clients beyond max_connections, each re-sent within the request timeout, kept
    every new connection out: 600 against the real receiver (512) reset every webhook. The
    one that has been reading its request longest now makes room for the newcomer."""
    runner = ScrapeRunner([], version="9.9.9")
    server, thread = serve(make_app(runner), "127.0.0.1", 0, limits=Limits(max_connections=20))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with held_sockets(server.server_address[1], idle=0, slow=30) as socks:
            wait_for(lambda: len(server._conns) == 20, 10, "twenty slow connections held")
            for _ in range(3):
                # a generous deadline: correctness, not speed
                assert requests.get(f"{url}/-/healthy", timeout=20).text == "OK\n"
            # the oldest slow clients were closed to make room, the newest are still held
            with contextlib.suppress(ConnectionResetError):  # closed with bytes unread: a reset
                assert socks[0].recv(10) == b""
            socks[-1].setblocking(False)
            with pytest.raises(BlockingIOError):  # open, nothing to read
                socks[-1].recv(10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        runner.close()
