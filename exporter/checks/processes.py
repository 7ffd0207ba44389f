"""Process groups (psutil): instances, resident memory and CPU seconds per configured group.

A group matches on the process name, executable path and/or command line (regular
expressions searched; all given must match). This is the old tool's "instanceCount".
Sample::

    stackmedic_process_instances{group="mysqld"} 1
    stackmedic_process_resident_memory_bytes{group="mysqld"} 1.2e+08
    stackmedic_process_cpu_seconds_total{group="mysqld"} 31.4
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from exporter.checks.base import Check
from exporter.metrics import Samples


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

    def matches(self, info: dict) -> bool:
        if self.name and not self.name.search(info.get("name") or ""):
            return False
        if self.exe and not self.exe.search(info.get("exe") or ""):
            return False
        return not (self.cmdline and not self.cmdline.search(" ".join(info.get("cmdline") or ())))


class ProcessesCheck(Check):
    """One pass over the process table for all groups."""

    kind = "processes"

    def __init__(
        self,
        groups: Sequence[Group],
        timeout: float = 5.0,
        process_iter: Callable[..., Iterable[Any]] = psutil.process_iter,
    ):
        super().__init__("processes", timeout)
        self.groups = list(groups)
        self._process_iter = process_iter
        # read only what the matchers need: cmdline and exe cost a file read each per process
        attrs = {"name"}
        for g in self.groups:
            attrs.update(k for k in ("exe", "cmdline") if getattr(g, k) is not None)
        self._attrs = sorted(attrs)

    def run(self, out: Samples, deadline: float) -> None:
        totals = {g.group: [0, 0, 0.0] for g in self.groups}
        for proc in self._process_iter(self._attrs, ad_value=None):
            matched = [g for g in self.groups if g.matches(proc.info)]
            if not matched:
                continue
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue  # gone between the listing and now, or not ours to read
            for g in matched:
                row = totals[g.group]
                row[0] += 1
                row[1] += rss
                row[2] += t.user + t.system
        for group, (count, rss, cpu) in totals.items():
            out.add("process_instances", count, group)
            out.add("process_resident_memory_bytes", rss, group)
            out.add("process_cpu_seconds", cpu, group)

    def blank(self, out: Samples, reason: str, elapsed: float) -> None:
        for g in self.groups:
            out.add("process_instances", 0, g.group)
            out.add("process_resident_memory_bytes", 0, g.group)
            out.add("process_cpu_seconds", 0, g.group)
