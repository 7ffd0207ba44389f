"""TCP ports against real listeners: open, closed, who listens, expected program."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from stackmedic.exporter.checks.listeners import ListenerTable
from stackmedic.exporter.checks.ports import PortsCheck, PortTarget, connect_all
from stackmedic.exporter.checks.proc_scan import program_name
from stackmedic.exporter.deadline import Deadline

from harness.services import free_port, wait_for
from tests.exporter.helpers import scrape

ME = psutil.Process().name()


def test_open_port_and_its_listener_is_this_process(tcp_listener):
    port = tcp_listener.getsockname()[1]
    check = PortsCheck([PortTarget("mine", port, program=re.compile(re.escape(ME)))])
    reg = scrape([check])
    labels = {"name": "mine", "port": str(port)}
    assert reg.get_sample_value("stackmedic_tcp_port_open", labels) == 1
    assert reg.get_sample_value("stackmedic_tcp_port_listener_info", {**labels, "program": ME}) == 1
    assert reg.get_sample_value("stackmedic_tcp_port_expected_program", labels) == 1


def test_port_taken_by_the_wrong_program(tcp_listener):
    port = tcp_listener.getsockname()[1]
    reg = scrape([PortsCheck([PortTarget("mysql", port, program=re.compile("mysqld|mariadbd"))])])
    labels = {"name": "mysql", "port": str(port)}
    assert reg.get_sample_value("stackmedic_tcp_port_open", labels) == 1
    assert reg.get_sample_value("stackmedic_tcp_port_expected_program", labels) == 0


def test_closed_port_still_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        reg = scrape([PortsCheck([PortTarget("gone", port, program=re.compile("java"))])])
    labels = {"name": "gone", "port": str(port)}
    assert reg.get_sample_value("stackmedic_tcp_port_open", labels) == 0
    assert reg.get_sample_value("stackmedic_tcp_port_listener_info", {**labels, "program": "none"}) == 1
    assert reg.get_sample_value("stackmedic_tcp_port_expected_program", labels) == 0
    assert reg.get_sample_value("stackmedic_check_success", {"check": "ports"}) == 1


def test_no_program_configured_means_expected(tcp_listener):
    port = tcp_listener.getsockname()[1]
    reg = scrape([PortsCheck([PortTarget("any", port)])])
    assert (
        reg.get_sample_value("stackmedic_tcp_port_expected_program", {"name": "any", "port": str(port)}) == 1
    )


def test_hung_listener_still_counts_as_open(hung_server):
    reg = scrape([PortsCheck([PortTarget("hung", hung_server.port)])])
    assert (
        reg.get_sample_value("stackmedic_tcp_port_open", {"name": "hung", "port": str(hung_server.port)}) == 1
    )


def test_discover_lists_listening_ports(tcp_listener):
    port = tcp_listener.getsockname()[1]
    reg = scrape([PortsCheck([], discover=True)])
    labels = {"name": "discovered", "port": str(port), "program": ME}
    assert reg.get_sample_value("stackmedic_tcp_port_listener_info", labels) == 1


def test_listener_table_agrees_with_psutil(tcp_listener):
    port = tcp_listener.getsockname()[1]
    netlink = {(x.port, x.program) for x in ListenerTable().listeners()}
    table = ListenerTable()
    table._use_netlink = False
    fallback = {(x.port, x.program) for x in table.listeners()}
    assert (port, ME) in netlink
    assert (port, ME) in fallback


def test_listener_owner_is_looked_up_once_per_socket(tcp_listener):
    port = tcp_listener.getsockname()[1]
    table = ListenerTable()
    table.listeners()
    inode_owner = dict(table._owners)
    # a cached owner is used as is: change it behind the table's back and see it stay
    for inode in inode_owner:
        table._owners[inode] = "cached"
    assert {x.program for x in table.listeners() if x.port == port} == {"cached"}


def test_only_the_ports_asked_for_have_their_owner_looked_up(tcp_listener, running_exporter):
    port = tcp_listener.getsockname()[1]
    table = ListenerTable()
    assert {(x.port, x.program) for x in table.listeners({port})} == {(port, ME)}
    # the exporter's listener was not in the question: its owner is not known yet
    assert set(table._owners.values()) == {ME}
    everything = {x.port: x.program for x in table.listeners()}
    assert everything[running_exporter] == "stackmedic-exporter" and everything[port] == ME


@pytest.fixture
def running_exporter(tmp_path):
    """The real stackmedic-exporter (a script: the kernel names it `stackmedic-expo`)."""
    port = free_port()
    cfg = tmp_path / "c.yml"
    cfg.write_text("system:\n")
    program = Path(sys.executable).parent / "stackmedic-exporter"
    proc = subprocess.Popen(
        [str(program), f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: connect_all([("127.0.0.1", port)], Deadline.after(1))[0], 30, "the exporter")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_listener_program_is_the_full_name_not_the_cut_comm(running_exporter):
    port = running_exporter
    check = PortsCheck([PortTarget("exporter", port, program=re.compile("stackmedic-exporter"))])
    reg = scrape([check])
    labels = {"name": "exporter", "port": str(port)}
    assert reg.get_sample_value("stackmedic_tcp_port_expected_program", labels) == 1
    info = {**labels, "program": "stackmedic-exporter"}
    assert reg.get_sample_value("stackmedic_tcp_port_listener_info", info) == 1


def test_program_name_from_command_line_and_executable():
    comm = "stackmedic-expo"
    script = ("/venv/bin/python3", "/venv/bin/stackmedic-exporter", "--config.file=x")
    assert program_name(comm, script) == "stackmedic-exporter"
    assert program_name(comm, ("/opt/stackmedic-exporter-1.0",)) == "stackmedic-exporter-1.0"
    assert program_name(comm, (), "/usr/local/bin/stackmedic-exporter") == "stackmedic-exporter"
    # a short name is the name; a long one nothing completes stays as the kernel has it
    assert program_name("mariadbd", ("/usr/sbin/mariadbd-wrapper",)) == "mariadbd"
    assert program_name(comm, ("/usr/bin/other",), "/usr/bin/python3.11") == comm
