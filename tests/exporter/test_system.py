"""System check: the CPU ratio from the first scrape (fake clock and counters), real values."""

from __future__ import annotations

import os
import subprocess
from collections import namedtuple

import pytest
from stackmedic.exporter.checks.system import MIN_CPU_WINDOW, CpuRatio, SystemCheck
from stackmedic.exporter.deadline import Deadline

from tests.exporter.helpers import scrape

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


class FakeCpu:
    """CPU counters and a clock that the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.busy = 0.0
        self.idle = 0.0
        self.slept: list[float] = []

    def times(self) -> Times:
        return Times(self.busy, 0, 0, self.idle, 0, 0, 0, 0, 0, 0)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds, busy_share=0.5)

    def advance(self, seconds: float, busy_share: float, cpus: int = 2) -> None:
        self.now += seconds
        self.busy += seconds * cpus * busy_share
        self.idle += seconds * cpus * (1 - busy_share)


def test_first_scrape_is_right_when_it_comes_later():
    cpu = FakeCpu()
    ratio = CpuRatio(cpu.times, cpu.clock, cpu.sleep)
    cpu.advance(15, busy_share=0.25)
    assert ratio.ratio() == 0.25
    assert cpu.slept == []


def test_first_scrape_right_after_start_waits_for_a_window_once():
    cpu = FakeCpu()
    ratio = CpuRatio(cpu.times, cpu.clock, cpu.sleep)
    cpu.advance(0.01, busy_share=0.5)
    assert ratio.ratio() == 0.5
    assert len(cpu.slept) == 1 and cpu.slept[0] < MIN_CPU_WINDOW
    # later scrapes too close together repeat the last ratio instead of dividing noise
    cpu.advance(0.01, busy_share=1.0)
    assert ratio.ratio() == 0.5
    assert len(cpu.slept) == 1


def test_ratio_follows_each_interval():
    cpu = FakeCpu()
    ratio = CpuRatio(cpu.times, cpu.clock, cpu.sleep)
    for share in (0.1, 0.9, 0.0, 1.0):
        cpu.advance(15, busy_share=share)
        assert abs(ratio.ratio() - share) < 1e-9


def test_guest_time_is_not_counted_twice():
    from stackmedic.exporter.checks.system import cpu_busy_idle

    # guest time is already inside user time in /proc/stat
    busy, idle = cpu_busy_idle(Times(10, 0, 2, 20, 3, 0, 0, 0, 4, 0))
    assert (busy, idle) == (12, 23)


def test_real_values_and_missing_filesystem(tmp_path):
    reg = scrape([SystemCheck(["/", str(tmp_path / "not-mounted")])])
    assert 0 <= reg.get_sample_value("stackmedic_cpu_utilization_ratio") <= 1
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
