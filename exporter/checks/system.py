"""The machine itself: CPU, memory, swap, load and the configured file systems (psutil).

Sample::

    stackmedic_cpu_utilization_ratio 0.12
    stackmedic_memory_available_bytes 1.9e+10
    stackmedic_filesystem_avail_bytes{mountpoint="/"} 4.1e+10
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check

CPU_UTILIZATION = MetricSpec(
    "cpu_utilization_ratio", "gauge", "Busy CPU time over all CPUs since the previous scrape, 0..1."
)
MEMORY_TOTAL = MetricSpec("memory_total_bytes", "gauge", "Total physical memory.")
MEMORY_AVAILABLE = MetricSpec(
    "memory_available_bytes", "gauge", "Memory available to new processes without swapping."
)
SWAP_TOTAL = MetricSpec("swap_total_bytes", "gauge", "Total swap.")
SWAP_USED = MetricSpec("swap_used_bytes", "gauge", "Swap in use.")
LOAD1 = MetricSpec("load1", "gauge", "1-minute load average.")
LOAD5 = MetricSpec("load5", "gauge", "5-minute load average.")
LOAD15 = MetricSpec("load15", "gauge", "15-minute load average.")
FILESYSTEM_SIZE = MetricSpec(
    "filesystem_size_bytes",
    "gauge",
    "Size of the filesystem holding the path, 0 when the path does not exist.",
    ("mountpoint",),
)
FILESYSTEM_AVAIL = MetricSpec(
    "filesystem_avail_bytes",
    "gauge",
    "Bytes available to unprivileged users on it, 0 when the path does not exist.",
    ("mountpoint",),
)
HOST_METRICS = (CPU_UTILIZATION, MEMORY_TOTAL, MEMORY_AVAILABLE, SWAP_TOTAL, SWAP_USED, LOAD1, LOAD5, LOAD15)

# Below this, two CPU samples are too close for a meaningful ratio (the kernel counts in
# 10 ms ticks per CPU); the previous ratio is reported instead.
MIN_CPU_WINDOW = 0.2


def cpu_busy_idle(times: Any) -> tuple[float, float]:
    """(busy, idle) seconds from psutil.cpu_times(); guest time is already in user/nice."""
    total = sum(times)
    for field in ("guest", "guest_nice"):
        total -= getattr(times, field, 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, idle


class CpuRatio:
    """CPU utilisation between successive calls, correct from the first call.

    psutil's first cpu_percent() is meaningless (no earlier sample), so the first sample is
    taken at construction; a call that comes too soon after it waits out the remainder of
    MIN_CPU_WINDOW once, rather than report a wrong value.
    """

    def __init__(
        self,
        cpu_times: Callable[[], Any] = psutil.cpu_times,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._cpu_times = cpu_times
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last = (clock(), cpu_busy_idle(cpu_times()))
        self._ratio: float | None = None

    def ratio(self) -> float:
        with self._lock:
            then, (busy0, idle0) = self._last
            now = self._clock()
            if now - then < MIN_CPU_WINDOW:
                if self._ratio is not None:
                    return self._ratio
                self._sleep(MIN_CPU_WINDOW - (now - then))
                now = self._clock()
            busy1, idle1 = cpu_busy_idle(self._cpu_times())
            d_busy, d_idle = busy1 - busy0, idle1 - idle0
            total = d_busy + d_idle
            if total > 0:
                self._ratio = min(1.0, max(0.0, d_busy / total))
                self._last = (now, (busy1, idle1))
            return self._ratio if self._ratio is not None else 0.0


class SystemCheck(Check):
    """CPU, memory, swap, load and file systems of this machine."""

    kind = "system"
    metrics = (*HOST_METRICS, FILESYSTEM_SIZE, FILESYSTEM_AVAIL)

    def __init__(
        self,
        filesystems: Sequence[str] = (),
        timeout: float = 2.0,
        cpu: CpuRatio | None = None,
        disk_usage: Callable[[str], Any] = psutil.disk_usage,
    ):
        super().__init__("system", timeout)
        self.filesystems = list(filesystems)
        self.cpu = cpu or CpuRatio()
        self._disk_usage = disk_usage

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        return [cls(section["filesystems"], section["timeout"])]

    def run(self, out: Samples, deadline: Deadline) -> None:
        out.add(CPU_UTILIZATION, self.cpu.ratio())
        mem = psutil.virtual_memory()
        out.add(MEMORY_TOTAL, mem.total)
        out.add(MEMORY_AVAILABLE, mem.available)
        swap = psutil.swap_memory()
        out.add(SWAP_TOTAL, swap.total)
        out.add(SWAP_USED, swap.used)
        for spec, value in zip((LOAD1, LOAD5, LOAD15), os.getloadavg(), strict=True):
            out.add(spec, value)
        for mountpoint in self.filesystems:
            # any path reads the filesystem that holds it, as df does: a folder that is not
            # its own mount point, or a bind mount, is on the filesystem below it
            try:
                usage = self._disk_usage(mountpoint)
                size, avail = usage.total, usage.free
            except OSError:
                size = avail = 0  # the path is gone: the series stays, at 0
            out.add(FILESYSTEM_SIZE, size, mountpoint)
            out.add(FILESYSTEM_AVAIL, avail, mountpoint)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        for spec in HOST_METRICS:
            out.add(spec, 0)
        for mountpoint in self.filesystems:
            out.add(FILESYSTEM_SIZE, 0, mountpoint)
            out.add(FILESYSTEM_AVAIL, 0, mountpoint)
