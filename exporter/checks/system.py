"""The machine itself: CPU, memory, swap, load and the configured file systems (psutil).

Sample::

    stackmedic_cpu_seconds_total{mode="idle"} 81234.5
    stackmedic_memory_available_bytes 1.9e+10
    stackmedic_filesystem_avail_bytes{mountpoint="/"} 4.1e+10
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from . import host_stats
from .base import Check

CPU_SECONDS = MetricSpec(
    "cpu_seconds", "counter", "CPU time of the host per mode, summed over all CPUs.", ("mode",)
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
HOST_METRICS = (MEMORY_TOTAL, MEMORY_AVAILABLE, SWAP_TOTAL, SWAP_USED, LOAD1, LOAD5, LOAD15)


class HostCpu:
    """The host's CPU seconds per mode, summed over all CPUs, that never go backwards.

    A counter, not a ratio since the previous scrape: with two Prometheus servers each
    ratio would cover the time since the *other* one's scrape. `rate()` over a counter is
    right whoever scrapes. Linux lets iowait step back a little; each mode is held at its
    highest value so that `rate()` never sees a reset.
    """

    def __init__(self, cpu_seconds: Callable[[], dict[str, float]] = host_stats.cpu_seconds):
        self._cpu_seconds = cpu_seconds
        self._last: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        last = self._last
        now = {mode: max(value, last.get(mode, 0.0)) for mode, value in self._cpu_seconds().items()}
        self._last = now
        return now

    def last(self) -> dict[str, float]:
        """The values of the last read (empty before the first)."""
        return self._last


class SystemCheck(Check):
    """CPU, memory, swap, load and file systems of this machine."""

    kind = "system"
    metrics = (CPU_SECONDS, *HOST_METRICS, FILESYSTEM_SIZE, FILESYSTEM_AVAIL)

    def __init__(
        self,
        filesystems: Sequence[str] = (),
        timeout: float = 2.0,
        cpu: HostCpu | None = None,
        disk_usage: Callable[[str], Any] = psutil.disk_usage,
    ):
        super().__init__("system", timeout)
        self.filesystems = list(filesystems)
        self.cpu = cpu or HostCpu()
        self._disk_usage = disk_usage

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        return [cls(section["filesystems"], section["timeout"])]

    def run(self, out: Samples, deadline: Deadline) -> None:
        for mode, seconds in self.cpu.read().items():
            out.add(CPU_SECONDS, seconds, mode)
        mem = host_stats.memory()
        out.add(MEMORY_TOTAL, mem.total)
        out.add(MEMORY_AVAILABLE, mem.available)
        out.add(SWAP_TOTAL, mem.swap_total)
        out.add(SWAP_USED, mem.swap_used)
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
        # a counter has no "unknown": the last values, or none before the first read
        for mode, seconds in self.cpu.last().items():
            out.add(CPU_SECONDS, seconds, mode)
        for spec in HOST_METRICS:
            out.add(spec, 0)
        for mountpoint in self.filesystems:
            out.add(FILESYSTEM_SIZE, 0, mountpoint)
            out.add(FILESYSTEM_AVAIL, 0, mountpoint)
