"""CPU seconds and memory of this machine, read from /proc in one small read each.

psutil reads /proc/meminfo twice (memory, then swap) and /proc/vmstat besides, and builds
named tuples of fields the exporter does not use; on every scrape that was most of the
system check's time. Elsewhere than Linux, psutil does the work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# the columns of /proc/stat's "cpu" line, as psutil names them; guest time is already
# inside user and nice, so it is not a mode of its own
_CPU_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_MEMINFO_KEYS = {b"MemTotal:", b"MemAvailable:", b"SwapTotal:", b"SwapFree:"}


class Memory(NamedTuple):
    """Bytes."""

    total: int
    available: int
    swap_total: int
    swap_used: int


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 16384)
    finally:
        os.close(fd)


def proc_cpu_seconds(proc: str = "/proc") -> dict[str, float]:
    """CPU seconds per mode, summed over all CPUs, from the first line of /proc/stat."""
    line = _read(f"{proc}/stat").split(b"\n", 1)[0].split()
    return {mode: int(ticks) / CLOCK_TICKS for mode, ticks in zip(_CPU_COLUMNS, line[1:], strict=False)}


def proc_memory(proc: str = "/proc") -> Memory:
    """Memory and swap from /proc/meminfo (MemAvailable: Linux 3.14 and later)."""
    found = {}
    for line in _read(f"{proc}/meminfo").splitlines():
        key, _, rest = line.partition(b" ")
        if key in _MEMINFO_KEYS:
            found[key] = int(rest.split()[0]) * 1024
            if len(found) == len(_MEMINFO_KEYS):
                break
    swap_total = found[b"SwapTotal:"]
    return Memory(found[b"MemTotal:"], found[b"MemAvailable:"], swap_total, swap_total - found[b"SwapFree:"])


def psutil_cpu_seconds() -> dict[str, float]:
    times = psutil.cpu_times()
    return {mode: getattr(times, mode) for mode in times._fields if mode not in ("guest", "guest_nice")}


def psutil_memory() -> Memory:
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    return Memory(mem.total, mem.available, swap.total, swap.used)


def _proc_works() -> bool:
    try:
        proc_cpu_seconds()
        proc_memory()
    except (OSError, KeyError, ValueError, IndexError):
        return False
    return True


cpu_seconds: Callable[[], dict[str, float]]
memory: Callable[[], Memory]
if _proc_works():
    cpu_seconds, memory = proc_cpu_seconds, proc_memory
else:
    cpu_seconds, memory = psutil_cpu_seconds, psutil_memory
