"""Which program listens on which local TCP port, cheaply enough to ask on every scrape.

On Linux the listening sockets come from the kernel's sock_diag netlink interface (what
`ss -ltn` uses): only LISTEN sockets are returned, however many connections the host has,
where /proc/net/tcp and psutil.net_connections() walk them all. Finding the owner of a
socket means reading every process's fd table, so owners are cached by socket inode: a
listener keeps its inode for its lifetime, and a new inode is looked up once.
Elsewhere, psutil.net_connections() does the whole job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

import psutil

from .proc_scan import COMM_LEN, program_name

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

_NETLINK_INET_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_NLMSG_HDR = struct.Struct("=LHHLL")
_DIAG_REQ = struct.Struct("=BBBxL48s")
_DIAG_MSG = struct.Struct("=BBBB2s2s16s16sL8sLLLLL")


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: local address, port, owning program (or 'unknown')."""

    ip: str
    port: int
    program: str


def _diag_dump(family: int) -> list[tuple[str, int, int]]:
    """(ip, port, inode) of every LISTEN TCP socket of `family` in this network namespace."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_INET_DIAG) as nl:
        nl.settimeout(2.0)
        req = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN, b"")
        hdr = _NLMSG_HDR.pack(
            _NLMSG_HDR.size + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0
        )
        nl.send(hdr + req)
        found: list[tuple[str, int, int]] = []
        while True:
            data = nl.recv(1 << 16)
            offset = 0
            while offset + _NLMSG_HDR.size <= len(data):
                length, msg_type, _, _, _ = _NLMSG_HDR.unpack_from(data, offset)
                if msg_type == _NLMSG_DONE:
                    return found
                if msg_type == _NLMSG_ERROR:
                    raise OSError("sock_diag request refused")
                fields = _DIAG_MSG.unpack_from(data, offset + _NLMSG_HDR.size)
                addr = fields[6][:4] if family == socket.AF_INET else fields[6]
                port = struct.unpack("!H", fields[4])[0]
                found.append((socket.inet_ntop(family, addr), port, fields[14]))
                offset += (length + 3) & ~3
            if not data:
                return found


def program_of(process: psutil.Process) -> str:
    """The full program name of a process (`stackmedic-exporter`, not the kernel's 15 bytes)."""
    with process.oneshot():
        name = process.name()
        if len(name.encode()) != COMM_LEN:
            return name  # short, or psutil completed it from the command line already
        cmdline: list[str] = []
        exe = ""
        with contextlib.suppress(psutil.Error):
            cmdline = process.cmdline()
        with contextlib.suppress(psutil.Error):
            exe = process.exe()
    return program_name(name, cmdline, exe)


def _owners(inodes: set[int], proc: str = "/proc") -> dict[int, str]:
    """Program name owning each socket inode, for those found in readable fd tables."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    owners: dict[int, str] = {}
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None and inode not in owners:
                try:
                    owners[inode] = program_of(psutil.Process(int(pid)))
                except psutil.Error:
                    continue
        if len(owners) == len(wanted):
            break
    return owners


class ListenerTable:
    """The current listeners, with owners cached by socket inode."""

    def __init__(self, dump: Callable[[int], list[tuple[str, int, int]]] | None = None):
        self._dump = dump or _diag_dump
        self._owners: dict[int, str] = {}
        self._lock = threading.Lock()
        self._use_netlink = hasattr(socket, "AF_NETLINK")

    def listeners(self, ports: Collection[int] | None = None) -> list[Listener]:
        """Every listener, or those on `ports`: only their owners are looked up, so that
        servers coming and going on other ports cost no walk through every fd table."""
        if self._use_netlink:
            try:
                return self._from_netlink(ports)
            except OSError as exc:
                log.info("sock_diag unavailable, using psutil error=%s", exc)
                self._use_netlink = False
        return self._from_psutil(ports)

    def _from_netlink(self, ports: Collection[int] | None) -> list[Listener]:
        sockets = self._dump(socket.AF_INET)
        if socket.has_ipv6:
            sockets += self._dump(socket.AF_INET6)
        if ports is not None:
            sockets = [s for s in sockets if s[1] in ports]
        with self._lock:
            live = {inode for _, _, inode in sockets}
            self._owners = {i: p for i, p in self._owners.items() if i in live}
            new = {i for i in live if i not in self._owners and i != 0}
            if new:
                found = _owners(new)
                # an owner we cannot see (another user's process) stays unknown until it changes
                self._owners.update({i: found.get(i, UNKNOWN) for i in new})
            return [Listener(ip, port, self._owners.get(inode, UNKNOWN)) for ip, port, inode in sockets]

    def _from_psutil(self, ports: Collection[int] | None) -> list[Listener]:
        out = []
        for c in psutil.net_connections(kind="tcp"):
            if c.status != psutil.CONN_LISTEN or not c.laddr:
                continue
            if ports is not None and c.laddr.port not in ports:
                continue
            program = UNKNOWN
            if c.pid:
                with contextlib.suppress(psutil.Error):
                    program = program_of(psutil.Process(c.pid))
            out.append(Listener(c.laddr.ip, c.laddr.port, program))
        return out
