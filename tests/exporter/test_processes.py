"""Process groups against real processes."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

import pytest
from stackmedic.exporter.checks.proc_scan import ProcScanner
from stackmedic.exporter.checks.processes import Group, ProcessesCheck

from tests.exporter.helpers import scrape

sleepers_procs: dict[str, list[subprocess.Popen]] = {}


@pytest.fixture
def sleepers():
    """Two `sleep` processes with a unique marker in their command line."""
    marker = f"9{uuid.uuid4().int % 10**8}"
    procs = [subprocess.Popen(["sleep", f"{marker}.{i}"]) for i in range(2)]
    sleepers_procs[marker] = procs
    yield marker
    for p in sleepers_procs.pop(marker):
        p.kill()
        p.wait(10)


def test_group_counts_matching_processes(sleepers):
    groups = [
        Group("sleepers", name=re.compile("^sleep$"), cmdline=re.compile(sleepers)),
        Group("nobody", name=re.compile("^no-such-program-here$")),
    ]
    reg = scrape([ProcessesCheck(groups)])
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "sleepers"}) == 2
    assert reg.get_sample_value("stackmedic_process_resident_memory_bytes", {"group": "sleepers"}) > 0
    assert reg.get_sample_value("stackmedic_process_cpu_seconds_total", {"group": "sleepers"}) >= 0
    # a group with no process is still there, at 0
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "nobody"}) == 0
    assert reg.get_sample_value("stackmedic_process_resident_memory_bytes", {"group": "nobody"}) == 0


def test_match_on_exe(sleepers):
    reg = scrape([ProcessesCheck([Group("s", exe=re.compile(r"/sleep$"), cmdline=re.compile(sleepers))])])
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "s"}) == 2


def test_all_matchers_must_match(sleepers):
    reg = scrape([ProcessesCheck([Group("s", name=re.compile("^java$"), cmdline=re.compile(sleepers))])])
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "s"}) == 0


def test_process_gone_drops_the_count(sleepers):
    group = Group("s", cmdline=re.compile(sleepers))
    assert (
        scrape([ProcessesCheck([group])]).get_sample_value("stackmedic_process_instances", {"group": "s"})
        == 2
    )
    first = sleepers_procs[sleepers][0]
    first.kill()
    first.wait(10)
    reg = scrape([ProcessesCheck([group])])
    assert reg.get_sample_value("stackmedic_process_instances", {"group": "s"}) == 1


def test_scanner_agrees_with_psutil(sleepers):
    """The /proc reader and psutil see the same names, command lines and executables."""
    fast = {
        p.pid: p
        for p in ProcScanner(need_cmdline=True, need_exe=True).scan()
        if sleepers in " ".join(p.cmdline)
    }
    slow_scanner = ProcScanner(need_cmdline=True, need_exe=True)
    slow_scanner._use_proc = False
    slow = {p.pid: p for p in slow_scanner.scan() if sleepers in " ".join(p.cmdline)}
    assert sorted(fast) == sorted(slow) and len(fast) == 2
    for pid, p in fast.items():
        q = slow[pid]
        assert (p.name, p.exe, p.cmdline) == (q.name, q.exe, q.cmdline)
        assert abs(p.cpu_seconds - q.cpu_seconds) < 0.5
        assert p.rss > 0


def test_long_names_are_completed_from_the_command_line(tmp_path):
    """The kernel cuts names at 15 characters; the full one comes from the command line."""
    long_name = tmp_path / "sleep-with-a-very-long-name"
    long_name.symlink_to(shutil.which("sleep"))
    proc = subprocess.Popen([str(long_name), "30"])
    try:
        found = [p for p in ProcScanner(need_cmdline=False, need_exe=False).scan() if p.pid == proc.pid]
        assert [p.name for p in found] == ["sleep-with-a-very-long-name"]
    finally:
        proc.kill()
        proc.wait(10)
