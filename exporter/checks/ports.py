"""TCP ports: is it open (a connect), and which program listens there.

All connects of a scrape are started at once (non-blocking) and awaited together, so one
filtered port costs its timeout once, not once per port. The listener is looked up for
ports on this machine; for other hosts it is `unknown`. Sample::

    stackmedic_tcp_port_open{name="mysql",port="3316"} 1
    stackmedic_tcp_port_listener_info{name="mysql",port="3316",program="mariadbd"} 1
    stackmedic_tcp_port_expected_program{name="mysql",port="3316"} 1
"""

from __future__ import annotations

import errno
import ipaddress
import re
import selectors
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check
from .listeners import UNKNOWN, Listener, ListenerTable

NONE = "none"  # nothing listens on a local port
DISCOVERED = "discovered"

PORT_OPEN = MetricSpec(
    "tcp_port_open", "gauge", "1 when a TCP connect to the port succeeded.", ("name", "port")
)
LISTENER_INFO = MetricSpec(
    "tcp_port_listener_info",
    "gauge",
    "The program listening on the port (unknown when not visible, none when nothing listens); always 1.",
    ("name", "port", "program"),
)
EXPECTED_PROGRAM = MetricSpec(
    "tcp_port_expected_program",
    "gauge",
    "1 when the listener is the configured program (1 when none is configured).",
    ("name", "port"),
)


@dataclass(frozen=True)
class PortTarget:
    """A configured port."""

    name: str
    port: int
    host: str = "127.0.0.1"
    program: re.Pattern | None = None

    @classmethod
    def from_config(cls, item: dict) -> PortTarget:
        program = re.compile(item["program"]) if item.get("program") else None
        return cls(item["name"], item["port"], item.get("host", "127.0.0.1"), program)


def _local_addresses() -> set[str]:
    addrs: set[str] = set()
    for entries in psutil.net_if_addrs().values():
        addrs.update(
            a.address.split("%")[0] for a in entries if a.family in (socket.AF_INET, socket.AF_INET6)
        )
    return addrs


def connect_all(addrs: Sequence[tuple[str, int]], deadline: Deadline) -> list[bool]:
    """Connect to every (host, port) at once; True for each that accepted by `deadline`."""
    results = [False] * len(addrs)
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    try:
        for i, (host, port) in enumerate(addrs):
            try:
                family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
                s = socket.socket(family, kind, proto)
            except OSError:
                continue  # unresolvable: closed
            socks.append(s)
            s.setblocking(False)
            err = s.connect_ex(sockaddr)
            if err == 0:
                results[i] = True
            elif err in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                sel.register(s, selectors.EVENT_WRITE, (i, s))
        while sel.get_map():
            if deadline.expired():
                break
            for key, _ in sel.select(deadline.timeout()):
                i, sock = key.data
                sel.unregister(sock)
                results[i] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    finally:
        sel.close()
        for s in socks:
            s.close()
    return results


class PortsCheck(Check):
    """Configured ports, plus (with discover) every listening port of this machine."""

    kind = "ports"
    metrics = (PORT_OPEN, LISTENER_INFO, EXPECTED_PROGRAM)

    def __init__(
        self,
        targets: Sequence[PortTarget],
        discover: bool = False,
        timeout: float = 2.0,
        table: ListenerTable | None = None,
    ):
        super().__init__("ports", timeout)
        self.targets = list(targets)
        self.discover = discover
        self.table = table or ListenerTable()
        self._local: set[str] | None = None

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        targets = [PortTarget.from_config(t) for t in section["targets"]]
        return [cls(targets, section["discover"], section["timeout"])]

    def _is_local(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0])
        except (OSError, ValueError):
            return False
        if ip.is_loopback or ip.is_unspecified:
            return True
        if self._local is None:
            self._local = _local_addresses()
        return str(ip) in self._local

    def run(self, out: Samples, deadline: Deadline) -> None:
        listeners = self.table.listeners(None if self.discover else {t.port for t in self.targets})
        is_open = connect_all([(t.host, t.port) for t in self.targets], deadline)
        for target, opened in zip(self.targets, is_open, strict=True):
            program = self._program(target, listeners, opened)
            port = str(target.port)
            out.add(PORT_OPEN, 1 if opened else 0, target.name, port)
            out.add(LISTENER_INFO, 1, target.name, port, program)
            expected = target.program is None or (
                program not in (UNKNOWN, NONE) and target.program.fullmatch(program) is not None
            )
            out.add(EXPECTED_PROGRAM, 1 if expected else 0, target.name, port)
        if self.discover:
            seen = {(str(t.port), t.name) for t in self.targets}
            for port, program in sorted({(str(x.port), x.program) for x in listeners}):
                if (port, DISCOVERED) not in seen:
                    seen.add((port, DISCOVERED))
                    out.add(LISTENER_INFO, 1, DISCOVERED, port, program)

    def _program(self, target: PortTarget, listeners: list[Listener], opened: bool) -> str:
        if not self._is_local(target.host):
            return UNKNOWN
        on_port = [x for x in listeners if x.port == target.port]
        if not on_port:
            # open but not in our network namespace's table (e.g. a container's own network)
            return UNKNOWN if opened else NONE
        known = [x for x in on_port if x.program != UNKNOWN]
        return (known or on_port)[0].program

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        for target in self.targets:
            port = str(target.port)
            out.add(PORT_OPEN, 0, target.name, port)
            out.add(LISTENER_INFO, 1, target.name, port, UNKNOWN)
            out.add(EXPECTED_PROGRAM, 1 if target.program is None else 0, target.name, port)
