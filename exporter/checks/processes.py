"""Process groups (/proc, psutil elsewhere): instances, resident memory and CPU seconds per configured group.

A group matches on the process name, executable path and/or command line (regular
expressions searched; all given must match). This is the old tool's "instanceCount".
Sample::

    stackmedic_process_instances{group="mysqld"} 1
    stackmedic_process_resident_memory_bytes{group="mysqld"} 1.2e+08
    stackmedic_process_cpu_seconds_total{group="mysqld"} 31.4
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..deadline import Deadline
from ..metrics import MetricSpec, Samples
from .base import Check
from .proc_scan import ProcInfo, ProcScanner

INSTANCES = MetricSpec("process_instances", "gauge", "Processes matching the group.", ("group",))
RESIDENT_MEMORY = MetricSpec(
    "process_resident_memory_bytes", "gauge", "Resident memory of the group's processes, summed.", ("group",)
)
CPU_SECONDS = MetricSpec(
    "process_cpu_seconds",
    "counter",
    "User and system CPU time of the group's processes, summed; exited ones stay counted.",
    ("group",),
)


@dataclass(frozen=True)
class Group:
    """A configured process group."""

    group: str
    name: re.Pattern | None = None
    exe: re.Pattern | None = None
    cmdline: re.Pattern | None = None

    @classmethod
    def from_config(cls, item: dict) -> Group:
        def compile_(key: str) -> re.Pattern | None:
            return re.compile(item[key]) if item.get(key) else None

        return cls(item["group"], compile_("name"), compile_("exe"), compile_("cmdline"))

    def matches(self, proc: ProcInfo) -> bool:
        if self.name and not self.name.search(proc.name):
            return False
        if self.exe and not self.exe.search(proc.exe):
            return False
        return not (self.cmdline and not self.cmdline.search(" ".join(proc.cmdline)))


class ProcessesCheck(Check):
    """One pass over the process table for all groups."""

    kind = "processes"
    metrics = (INSTANCES, RESIDENT_MEMORY, CPU_SECONDS)

    def __init__(self, groups: Sequence[Group], timeout: float = 5.0, scanner: ProcScanner | None = None):
        super().__init__("processes", timeout)
        self.groups = list(groups)
        # read only what the matchers need: cmdline and exe cost a file read each per process
        self.scanner = scanner or ProcScanner(
            need_cmdline=any(g.cmdline is not None for g in self.groups),
            need_exe=any(g.exe is not None for g in self.groups),
        )
        self.cpu = CpuCounters()
        self._groups_of: dict[ProcInfo, tuple[int, ...]] = {}

    @classmethod
    def from_section(cls, section: dict) -> list[Check]:
        return [cls([Group.from_config(g) for g in section["groups"]], section["timeout"])]

    def run(self, out: Samples, deadline: Deadline) -> None:
        groups = self.groups
        counts, rss_sums = [0] * len(groups), [0] * len(groups)
        seen: list[dict[tuple[int, float], float]] = [{} for _ in groups]
        # a process's name, exe and command line do not change (an exec is a new ProcInfo),
        # so which groups it belongs to is worked out once, not on every scrape
        known, live = self._groups_of, {}

        def in_a_group(proc: ProcInfo) -> bool:
            hits = known.get(proc)
            if hits is None:
                hits = tuple(i for i, g in enumerate(groups) if g.matches(proc))
            live[proc] = hits
            return bool(hits)

        # the scanner skips the processes in no group (most of them) without reading their stat
        for proc, rss, cpu in self.scanner.scan(in_a_group):
            for i in live[proc]:
                counts[i] += 1
                rss_sums[i] += rss
                seen[i][(proc.pid, proc.started)] = cpu
        self._groups_of = live
        for i, g in enumerate(groups):
            out.add(INSTANCES, counts[i], g.group)
            out.add(RESIDENT_MEMORY, rss_sums[i], g.group)
            out.add(CPU_SECONDS, self.cpu.update(g.group, seen[i]), g.group)

    def close(self) -> None:
        self.scanner.close()

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        for g in self.groups:
            out.add(INSTANCES, 0, g.group)
            out.add(RESIDENT_MEMORY, 0, g.group)
            # a counter has no "unknown": keep the last value, or leave it out until measured
            cpu = self.cpu.last(g.group)
            if cpu is not None:
                out.add(CPU_SECONDS, cpu, g.group)


class CpuCounters:
    """Per-group CPU seconds that never go backwards.

    Summing the live processes' CPU time would drop whenever a process exits (a counter
    reset, which `rate()` reads as a jump of the whole remaining value). Instead each
    process's increase since the previous scrape is added to the group's total, so an
    exited process's time stays counted and a new one's counts from its start.
    """

    def __init__(self) -> None:
        self._totals: dict[str, float] = {}
        self._seen: dict[str, dict[tuple[int, float], float]] = {}

    def update(self, group: str, now: dict[tuple[int, float], float]) -> float:
        """Add the increases of `now` ((pid, start) -> CPU seconds) and return the total."""
        before = self._seen.get(group, {})
        total = self._totals.get(group, 0.0)
        for key, cpu in now.items():
            total += max(0.0, cpu - before.get(key, 0.0))
        self._totals[group], self._seen[group] = total, now
        return total

    def last(self, group: str) -> float | None:
        """The total of the last completed scrape, None before the first."""
        return self._totals.get(group)
