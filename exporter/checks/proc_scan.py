"""One pass over /proc: name, CPU seconds and RSS of every process from its stat file.

psutil needs several file reads and checks per process and attribute; the exporter needs
only what /proc/<pid>/stat already holds in one line, plus, when a group matches on
them, the command line and the executable, which are cached for the life of the process.
Where there is no /proc, psutil does the work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
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


def _comm(stat: bytes, rpar: int) -> bytes:
    """The name in a stat line, between its first "(" and its last ")" (`rpar`)."""
    return stat[stat.index(b"(") + 1 : rpar]


@dataclass(frozen=True, eq=False)  # by identity: one object per process, so a fast dict key
class ProcInfo:
    """What process groups are matched on; the same object for the whole life of a process."""

    pid: int
    name: str
    exe: str
    cmdline: tuple[str, ...]
    started: float = 0.0  # start time (any unit): with pid, tells a reused pid apart


# one process in one scan: who it is, resident bytes, user+system CPU seconds
Usage = tuple[ProcInfo, int, float]


# stat and comm files kept open between scans, at most (the rest are opened and closed
# each time)
MAX_OPEN_FILES = 2048


class ProcScanner:
    """Scans processes; cmdline and exe are read only when asked for, once per process.

    Each process's stat file stays open between scans and is read again with pread: one
    system call per process instead of three (each one a hand-over of the GIL while the
    other checks run). An open stat file belongs to its process, not to the pid: once the
    process is gone it reads ESRCH, so a reused pid is never mistaken for the old process.

    A process the caller does not want (`scan(wanted)`: in no group) is watched through
    its `comm` file instead, which the kernel writes for a third of the cost of `stat`
    (that sums the CPU time of every thread): while its name is the one it was judged
    by, it is skipped; an exec or a rename has it judged again.
    """

    def __init__(self, need_cmdline: bool, need_exe: bool, proc: str = "/proc"):
        self.need_cmdline = need_cmdline
        self.need_exe = need_exe
        self.proc = proc
        self._cache: dict[tuple, ProcInfo] = {}
        self._stats: dict[str, int] = {}  # pid -> open stat file
        self._unwanted: dict[str, tuple[int, bytes]] = {}  # pid -> open comm file, its content
        self._use_proc = os.path.exists(f"{proc}/self/stat")

    def _stat(self, pid: str) -> bytes | None:
        """The process's stat line now, or None when it is gone."""
        fd = self._stats.get(pid)
        if fd is not None:
            try:
                return os.pread(fd, 4096, 0)
            except OSError:
                os.close(self._stats.pop(pid))  # exited; the pid may be a new process's now
        try:
            fd = os.open(f"{self.proc}/{pid}/stat", os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.pread(fd, 4096, 0)
        except OSError:
            os.close(fd)
            return None
        if len(self._stats) + len(self._unwanted) < MAX_OPEN_FILES:
            self._stats[pid] = fd
        else:
            os.close(fd)
        return data

    def close(self) -> None:
        """Close the files kept open."""
        stats, self._stats = self._stats, {}
        for fd in stats.values():
            os.close(fd)
        unwanted, self._unwanted = self._unwanted, {}
        for fd, _ in unwanted.values():
            os.close(fd)

    def _still_unwanted(self, pid: str) -> bool:
        """True while a process judged unwanted runs under the same name."""
        fd, comm = self._unwanted[pid]
        try:
            if os.pread(fd, 64, 0) == comm:
                return True
        except OSError:
            pass  # exited; the pid may be a new process's now
        os.close(self._unwanted.pop(pid)[0])
        return False

    def _set_aside(self, pid: str, comm: bytes) -> None:
        """Watch an unwanted process through its comm file (named `comm` in its stat line:
        an exec since then reads differently, so it is judged again)."""
        fd = self._stats.pop(pid, None)
        if fd is not None:
            os.close(fd)
        if len(self._stats) + len(self._unwanted) >= MAX_OPEN_FILES:
            return  # read as a wanted one, stat and all, next time
        try:
            fd = os.open(f"{self.proc}/{pid}/comm", os.O_RDONLY)
        except OSError:
            return
        self._unwanted[pid] = (fd, comm + b"\n")

    def scan(self, wanted: Callable[[ProcInfo], bool] | None = None) -> Iterator[Usage]:
        """Every running process (or each one `wanted` says yes to) with its usage now."""
        if not self._use_proc:
            yield from self._psutil_scan(wanted)
            return
        cache, live = self._cache, {}
        stats, unwanted, pread = self._stats, self._unwanted, os.pread
        listed = [entry for entry in os.listdir(self.proc) if entry.isdigit()]
        present = set(listed)
        for gone in stats.keys() - present:
            os.close(stats.pop(gone))
        for gone in unwanted.keys() - present:
            os.close(unwanted.pop(gone)[0])
        for entry in listed:
            if entry in unwanted and self._still_unwanted(entry):
                continue
            fd = stats.get(entry)
            try:
                data = pread(fd, 4096, 0) if fd is not None else self._stat(entry)
            except OSError:
                data = self._stat(entry)  # exited; the pid may be a new process's now
            if not data:
                continue  # gone
            rpar = data.rindex(b")")
            # the fields up to rss (22nd after the name); the other thirty are not needed
            fields = data[rpar + 2 :].split(maxsplit=22)
            if fields[0] in (b"Z", b"X"):
                continue  # a zombie is not running
            key = (fields[19], data[: rpar + 1])  # start time, "pid (name)": new process or exec
            info = cache.get(key)
            if info is None:
                info = self._info(entry, _comm(data, rpar), int(fields[19]))
            if wanted is not None and not wanted(info):
                self._set_aside(entry, _comm(data, rpar))
                continue
            live[key] = info
            yield info, int(fields[21]) * PAGE_SIZE, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        self._cache = live

    def _info(self, pid: str, comm: bytes, started: int) -> ProcInfo:
        exe, cmdline = self._details(pid, comm)
        name = program_name(comm.decode(errors="replace"), cmdline, exe)
        return ProcInfo(int(pid), name, exe, cmdline, started)

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

    def _psutil_scan(self, wanted: Callable[[ProcInfo], bool] | None) -> Iterator[Usage]:
        attrs = ["name", "exe", "cmdline", "memory_info", "cpu_times", "create_time"]
        live = set()
        for p in psutil.process_iter(attrs, ad_value=None):
            found = p.info
            mem, times = found["memory_info"], found["cpu_times"]
            if mem is None or times is None:
                continue
            key = (p.pid, found["create_time"], found["name"])
            live.add(key)
            info = self._cache.get(key)
            if info is None:
                cmdline = tuple(found["cmdline"] or ())
                info = ProcInfo(
                    p.pid, found["name"] or "", found["exe"] or "", cmdline, found["create_time"] or 0.0
                )
                self._cache[key] = info
            if wanted is None or wanted(info):
                yield info, mem.rss, times.user + times.system
        self._cache = {k: v for k, v in self._cache.items() if k in live}
