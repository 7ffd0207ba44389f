"""The backup directory's lock: exclusive, tells who holds it, waits when asked to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from stackmedic.jobs.errors import FAILED, LOCKED, JobError, Locked
from stackmedic.jobs.lock import DirLock


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_second_holder_is_refused_with_the_first_ones_name(tmp_path: Path):
    with (
        DirLock(tmp_path, "restore"),
        pytest.raises(Locked, match=r"is locked by job=restore pid=\d+ since=") as info,
    ):
        DirLock(tmp_path, "prune").__enter__()
    assert info.value.exit_code == LOCKED
    with DirLock(tmp_path, "prune"):  # released: free again
        assert "job=prune" in (tmp_path / ".lock").read_text()
    assert (tmp_path / ".lock").read_text() == ""


def test_waiting_gives_up_at_the_deadline_by_the_clock_given(tmp_path: Path):
    clock = FakeClock()
    with DirLock(tmp_path, "backup"), pytest.raises(Locked, match="after waiting 3s"):
        DirLock(tmp_path, "restore", wait=3, clock=clock, sleep=clock.sleep, poll=0.5).__enter__()
    assert clock.now == 3.0 and clock.sleeps == [0.5] * 6


def test_a_waiter_gets_the_lock_when_it_is_released(tmp_path: Path):
    holder = DirLock(tmp_path, "backup").__enter__()
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 1.0:
            holder.__exit__(None, None, None)

    with DirLock(tmp_path, "restore", wait=10, clock=clock, sleep=sleep, poll=0.5):
        assert "job=restore" in (tmp_path / ".lock").read_text()
    assert clock.now == 1.0


def test_a_planted_symlink_is_refused_and_its_target_left_alone(tmp_path: Path):
    # Issue 13 defect 13: the lock followed a planted .lock symlink and emptied its target.
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    directory = tmp_path / "db"
    directory.mkdir()
    (directory / ".lock").symlink_to(victim)
    with pytest.raises(JobError) as info:
        DirLock(directory, "prune").__enter__()
    assert (
        str(info.value)
        == f"{directory / '.lock'} is a symbolic link: refusing to use it as the lock (remove it)"
    )
    assert info.value.exit_code == FAILED
    assert victim.read_text() == "precious\n"


def test_a_planted_hard_link_is_refused_and_its_target_left_alone(tmp_path: Path):
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    directory = tmp_path / "db"
    directory.mkdir()
    os.link(victim, directory / ".lock")
    with pytest.raises(JobError, match=r"\.lock is a file with 2 links: refusing to use it as the lock"):
        DirLock(directory, "prune").__enter__()
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_link_planted_at_a_temporary_name_is_not_written_through(tmp_path: Path, link: str):
    # Manifests and known-good records are written to `.tmp-<name>` beside them, in the
    # same directory as the lock, then renamed: a link planted at that predictable name had
    # its target emptied and overwritten, as the lock's was (issue 13 defect 13)
    from stackmedic.jobs.fsutil import atomic_write_bytes
    from stackmedic.jobs.fsutil import tmp_path as temporary

    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    directory = tmp_path / "db"
    directory.mkdir()
    final = directory / "petclinic-20261201T000000Z.sql.gz.manifest.json"
    if link == "symlink":
        temporary(final).symlink_to(victim)
    else:
        temporary(final).hardlink_to(victim)
    atomic_write_bytes(final, b'{"status": "verified"}\n')
    assert victim.read_text() == "precious\n"
    assert final.read_bytes() == b'{"status": "verified"}\n' and not final.is_symlink()
    assert not temporary(final).exists()
