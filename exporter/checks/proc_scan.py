"""One pass over /proc: name, CPU seconds and RSS of every process from its stat file.

psutil needs several file reads and checks per process and attribute; the exporter needs
only what /proc/<pid>/stat already holds in one line, plus, when a group matches on
them, the command line and the executable, which are cached for the life of the process.
Where there is no /proc, psutil does the work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
COMM_LEN = 15  # the kernel truncates names to 15 bytes
# where the program's own path is in a command line: first, or after an interpreter and
# its options (`python3 -u /usr/bin/stackmedic-exporter ...`)
_PROGRAM_ARGS = 4


def program_name(comm: str, cmdline: Sequence[str], exe: str = "") -> str:
    """The program's full name: the kernel's `comm`, completed when it was cut at 15 bytes.

    A script's `comm` is its file name cut short (`stackmedic-expo`) while its executable
    is the interpreter, so the full name is the first of the command line's leading
    arguments, then the executable, whose file name begins with `comm`.
    """
    if len(comm.encode()) < COMM_LEN:
        return comm
    for path in (*cmdline[:_PROGRAM_ARGS], exe):
        base = os.path.basename(path)
        if base.startswith(comm):
            return base
    return comm


def _read(path: str, size: int = 4096) -> bytes:
    """A small /proc file in one read; os.open is about twice as cheap as open() here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, size)
        # some kernels hand out a long command line a page per read
        while len(data) < size and len(data) % 4096 == 0 and data:
            more = os.read(fd, size - len(data))
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ProcInfo:
    """What process groups are matched and measured on."""

    pid: int
    name: str
    exe: str
    cmdline: tuple[str, ...]
    rss: int
    cpu_seconds: float
    started: float = 0.0  # start time (any unit): with pid, tells a reused pid apart


class ProcScanner:
    """Scans processes; cmdline and exe are read only when asked for, once per process."""

    def __init__(self, need_cmdline: bool, need_exe: bool, proc: str = "/proc"):
        self.need_cmdline = need_cmdline
        self.need_exe = need_exe
        self.proc = proc
        self._cache: dict[tuple[int, bytes, bytes], tuple[str, tuple[str, ...]]] = {}
        self._use_proc = os.path.exists(f"{proc}/self/stat")

    def scan(self) -> Iterator[ProcInfo]:
        if not self._use_proc:
            yield from self._psutil_scan()
            return
        live = set()
        for entry in os.listdir(self.proc):
            if not entry.isdigit():
                continue
            try:
                data = _read(f"{self.proc}/{entry}/stat")
            except OSError:
                continue  # gone
            rpar = data.rindex(b")")
            comm = data[data.index(b"(") + 1 : rpar]
            fields = data[rpar + 2 :].split()
            if fields[0] in (b"Z", b"X"):
                continue  # a zombie is not running
            pid = int(entry)
            key = (pid, fields[19], comm)  # start time and name: a new process or an exec
            live.add(key)
            cached = self._cache.get(key)
            if cached is None:
                cached = self._cache[key] = self._details(entry, comm)
            exe, cmdline = cached
            name = program_name(comm.decode(errors="replace"), cmdline, exe)
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            yield ProcInfo(pid, name, exe, cmdline, int(fields[21]) * PAGE_SIZE, cpu, int(fields[19]))
        if len(self._cache) > len(live):
            self._cache = {k: v for k, v in self._cache.items() if k in live}

    def _details(self, pid: str, comm: bytes) -> tuple[str, tuple[str, ...]]:
        exe = ""
        cmdline: tuple[str, ...] = ()
        # the command line is also needed to complete a truncated name
        if self.need_cmdline or len(comm) >= COMM_LEN:
            try:
                raw = _read(f"{self.proc}/{pid}/cmdline", 1 << 17)
                cmdline = tuple(p.decode(errors="replace") for p in raw.rstrip(b"\0").split(b"\0") if raw)
            except OSError:
                pass
        if self.need_exe or len(comm) >= COMM_LEN:
            with contextlib.suppress(OSError):
                exe = os.readlink(f"{self.proc}/{pid}/exe").removesuffix(" (deleted)")
        return exe, cmdline

    def _psutil_scan(self) -> Iterator[ProcInfo]:
        attrs = ["name", "exe", "cmdline", "memory_info", "cpu_times", "create_time"]
        for p in psutil.process_iter(attrs, ad_value=None):
            info = p.info
            mem, times = info["memory_info"], info["cpu_times"]
            if mem is None or times is None:
                continue
            yield ProcInfo(
                p.pid,
                info["name"] or "",
                info["exe"] or "",
                tuple(info["cmdline"] or ()),
                mem.rss,
                times.user + times.system,
                info["create_time"] or 0.0,
            )
