"""Process groups against real processes."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from exporter.checks.processes import Group, ProcessesCheck
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
