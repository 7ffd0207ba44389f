"""System check: CPU counters whoever scrapes (fake counters), real values, file systems."""

from __future__ import annotations

import os
import subprocess

import pytest
from stackmedic.exporter.checks import host_stats
from stackmedic.exporter.checks.system import HostCpu, SystemCheck
from stackmedic.exporter.deadline import Deadline

from tests.exporter.helpers import scrape


class FakeCpu:
    """Host CPU counters that the test moves."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.idle = 0.0
        self.iowait = 0.0

    def times(self) -> dict[str, float]:
        modes = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        return dict(zip(modes, (self.busy, 0, 0, self.idle, self.iowait, 0, 0, 0), strict=True))

    def advance(self, seconds: float, busy_share: float, cpus: int = 2) -> None:
        self.busy += seconds * cpus * busy_share
        self.idle += seconds * cpus * (1 - busy_share)


def cpu_of(check: SystemCheck) -> dict[str, float]:
    out = check.samples()
    check.run(out, Deadline.after(2))
    return {labels[0]: v for spec, labels, v in out.items if spec.name == "cpu_seconds"}


def busy_share(before: dict[str, float], after: dict[str, float]) -> float:
    """What rate() computes from two scrapes of one Prometheus server."""
    total = sum(after.values()) - sum(before.values())
    return 1 - (after["idle"] + after["iowait"] - before["idle"] - before["iowait"]) / total


def test_cpu_use_does_not_depend_on_who_scraped_last():
    """Two Prometheus servers: a scrape by B between two of A's leaves A's figure alone."""
    cpu = FakeCpu()
    check = SystemCheck(cpu=HostCpu(cpu.times))
    first_a = cpu_of(check)
    cpu.advance(14, busy_share=0.1)
    cpu_of(check)  # server B
    cpu.advance(1, busy_share=1.0)
    second_a = cpu_of(check)
    assert busy_share(first_a, second_a) == (14 * 0.1 + 1 * 1.0) / 15
    assert set(second_a) == {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}


def test_cpu_counters_never_go_backwards():
    cpu = FakeCpu()
    cpu.iowait = 50.0
    check = SystemCheck(cpu=HostCpu(cpu.times))
    assert cpu_of(check)["iowait"] == 50.0
    cpu.iowait = 49.5  # Linux lets iowait step back
    assert cpu_of(check)["iowait"] == 50.0
    cpu.iowait = 51.0
    assert cpu_of(check)["iowait"] == 51.0
    # a failed scrape keeps the last values rather than 0 (a false reset for rate())
    out = check.samples()
    check.blank(out, "timeout", 2.0)
    assert out.value("cpu_seconds", "iowait") == 51.0
    fresh = SystemCheck(cpu=HostCpu(cpu.times))
    out = fresh.samples()
    fresh.blank(out, "timeout", 2.0)
    assert out.value("cpu_seconds", "idle") is None


def test_real_values_and_missing_filesystem(tmp_path):
    reg = scrape([SystemCheck(["/", str(tmp_path / "not-mounted")])])
    assert reg.get_sample_value("stackmedic_cpu_seconds_total", {"mode": "idle"}) > 0
    assert reg.get_sample_value("stackmedic_memory_total_bytes") > 0
    assert (
        0
        < reg.get_sample_value("stackmedic_memory_available_bytes")
        <= reg.get_sample_value("stackmedic_memory_total_bytes")
    )
    assert reg.get_sample_value("stackmedic_swap_total_bytes") >= 0
    assert reg.get_sample_value("stackmedic_load1") >= 0
    assert reg.get_sample_value("stackmedic_filesystem_size_bytes", {"mountpoint": "/"}) > 0
    missing = {"mountpoint": str(tmp_path / "not-mounted")}
    assert reg.get_sample_value("stackmedic_filesystem_size_bytes", missing) == 0
    assert reg.get_sample_value("stackmedic_filesystem_avail_bytes", missing) == 0


def test_a_path_reads_the_filesystem_that_holds_it(tmp_path):
    """A folder that is not a mount point is on its parent's filesystem (was 0, no error)."""
    folder = tmp_path / "docker-data"
    folder.mkdir()
    check = SystemCheck([str(folder)])
    out = check.samples()
    check.run(out, Deadline.after(2))
    st = os.statvfs(tmp_path)
    assert out.value("filesystem_size_bytes", str(folder)) == st.f_blocks * st.f_frsize > 0
    assert out.value("filesystem_avail_bytes", str(folder)) > 0


def test_a_bind_mount_reads_the_filesystem_under_it(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode:
        pytest.skip("bind mounts need root")
    try:
        check = SystemCheck([str(target)])
        out = check.samples()
        check.run(out, Deadline.after(2))
    finally:
        subprocess.run(["umount", str(target)], check=True)
    st = os.statvfs(tmp_path)
    assert out.value("filesystem_size_bytes", str(target)) == st.f_blocks * st.f_frsize > 0


def test_proc_readers_agree_with_psutil():
    """/proc/stat and /proc/meminfo read directly say what psutil says."""
    fast, slow = host_stats.proc_cpu_seconds(), host_stats.psutil_cpu_seconds()
    assert (
        sorted(fast)
        == sorted(slow)
        == sorted(("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"))
    )
    for mode, seconds in fast.items():
        assert abs(seconds - slow[mode]) < 5, mode  # both read a moving counter
    fast_mem, slow_mem = host_stats.proc_memory(), host_stats.psutil_memory()
    assert fast_mem.total == slow_mem.total and fast_mem.swap_total == slow_mem.swap_total
    assert abs(fast_mem.available - slow_mem.available) < 256 * 2**20
    assert abs(fast_mem.swap_used - slow_mem.swap_used) < 256 * 2**20
