"""Process groups against real processes."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from stackmedic.exporter.checks.proc_scan import ProcInfo, ProcScanner
from stackmedic.exporter.checks.processes import CpuCounters, Group, ProcessesCheck
from stackmedic.exporter.collector import ScrapeRunner

from tests.exporter.helpers import registry_of, scrape

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
        p.pid: (p, rss, cpu)
        for p, rss, cpu in ProcScanner(need_cmdline=True, need_exe=True).scan()
        if sleepers in " ".join(p.cmdline)
    }
    slow_scanner = ProcScanner(need_cmdline=True, need_exe=True)
    slow_scanner._use_proc = False
    slow = {p.pid: (p, rss, cpu) for p, rss, cpu in slow_scanner.scan() if sleepers in " ".join(p.cmdline)}
    assert sorted(fast) == sorted(slow) and len(fast) == 2
    for pid, (p, rss, cpu) in fast.items():
        q, _, q_cpu = slow[pid]
        assert (p.name, p.exe, p.cmdline) == (q.name, q.exe, q.cmdline)
        assert abs(cpu - q_cpu) < 0.5
        assert rss > 0


def test_stat_files_kept_open_follow_the_processes(sleepers):
    scanner = ProcScanner(need_cmdline=False, need_exe=False)
    first, second = sleepers_procs[sleepers]
    assert {first.pid, second.pid} <= {p.pid for p, _, _ in scanner.scan()}
    assert {str(first.pid), str(second.pid)} <= scanner._stats.keys()
    first.kill()
    first.wait(10)
    seen = {p.pid for p, _, _ in scanner.scan()}
    assert first.pid not in seen and second.pid in seen
    assert str(first.pid) not in scanner._stats  # its file is closed, not leaked
    scanner.close()
    assert scanner._stats == {}


def _wait_for_comm(pid: int, name: str) -> None:
    for _ in range(1000):
        if Path(f"/proc/{pid}/comm").read_text().strip() == name:
            return
        time.sleep(0.01)
    raise AssertionError(f"{pid} never became {name}")


def test_a_process_in_no_group_is_skipped_until_it_execs():
    proc = subprocess.Popen(["sh", "-c", "read line; exec sleep 3600"], stdin=subprocess.PIPE)
    judged: list[str] = []

    def wanted(p: ProcInfo) -> bool:
        if p.pid == proc.pid:
            judged.append(p.name)
        return p.name == "sleep"

    scanner = ProcScanner(need_cmdline=False, need_exe=False)
    try:
        _wait_for_comm(proc.pid, "sh")
        for _ in range(3):
            assert proc.pid not in {p.pid for p, _, _ in scanner.scan(wanted)}
        assert judged == ["sh"]  # judged once, then watched through its comm file alone
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        _wait_for_comm(proc.pid, "sleep")  # the same process, another program
        assert proc.pid in {p.pid for p, _, _ in scanner.scan(wanted)}
        assert judged == ["sh", "sleep"]
        proc.kill()
        proc.wait(10)
        wanted_now = lambda p: p.pid != proc.pid  # noqa: E731 - as unwanted as it gets
        assert proc.pid not in {p.pid for p, _, _ in scanner.scan(wanted_now)}
        assert str(proc.pid) not in scanner._unwanted and str(proc.pid) not in scanner._stats
    finally:
        proc.kill()
        proc.wait(10)
        scanner.close()
    assert scanner._unwanted == {} and scanner._stats == {}


def test_long_names_are_completed_from_the_command_line(tmp_path):
    """The kernel cuts names at 15 characters; the full one comes from the command line."""
    long_name = tmp_path / "sleep-with-a-very-long-name"
    long_name.symlink_to(shutil.which("sleep"))
    proc = subprocess.Popen([str(long_name), "30"])
    try:
        found = [p for p, _, _ in ProcScanner(need_cmdline=False, need_exe=False).scan() if p.pid == proc.pid]
        assert [p.name for p in found] == ["sleep-with-a-very-long-name"]
    finally:
        proc.kill()
        proc.wait(10)


JAVA = ProcInfo(1, "java", "/usr/bin/java", ("java",))


class FlakyScanner:
    """A scanner that fails when told to, like a /proc read that blows up mid-scrape."""

    def __init__(self):
        self.fail = False

    def close(self):
        pass

    def scan(self, wanted=None):
        if self.fail:
            raise OSError("proc went away")
        if wanted is None or wanted(JAVA):  # as ProcScanner: only the wanted ones
            yield JAVA, 4096, 1.56


def test_failed_scrape_never_sends_the_cpu_counter_backwards():
    scanner = FlakyScanner()
    runner = ScrapeRunner([ProcessesCheck([Group("app", name=re.compile("^java$"))], scanner=scanner)])
    cpu = ("stackmedic_process_cpu_seconds_total", {"group": "app"})
    try:
        seen = []
        for fail in (False, True, False):
            scanner.fail = fail
            seen.append(registry_of(runner).get_sample_value(*cpu))
    finally:
        runner.close()
    # the failed scrape keeps the last value (was 0: a counter reset and a false increase)
    assert seen == [1.56, 1.56, 1.56]


def test_cpu_counter_never_measured_is_left_out_of_a_failed_scrape():
    check = ProcessesCheck([Group("app", name=re.compile("^java$"))], scanner=FlakyScanner())
    out = check.samples()
    check.blank(out, "timeout", 1.0)
    assert out.value("process_instances", "app") == 0
    assert out.value("process_cpu_seconds", "app") is None


def test_cpu_counter_keeps_an_exited_process_time():
    counters = CpuCounters()
    assert counters.last("app") is None
    assert counters.update("app", {(1, 10.0): 5.0, (2, 11.0): 3.0}) == 8.0
    assert counters.update("app", {(1, 10.0): 6.0}) == 9.0  # pid 2 exited: its 3 s stay
    # pid 2 reused by a new process: counted from its start, not as a drop from 3
    assert counters.update("app", {(1, 10.0): 6.0, (2, 99.0): 0.5}) == 9.5
    assert counters.last("app") == 9.5
