"""What the three programs share on their command lines: --version, logs, one-line errors."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys

import logfmt
import pytest

from stackmedic import __version__, logs
from stackmedic.config import ConfigError, parse_yaml

PROGRAMS = {
    "stackmedic-exporter": "stackmedic.exporter",
    "stackmedic-receiver": "stackmedic.receiver",
    "stackmedic-job": "stackmedic.jobs",
}


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_every_program_says_its_version(prog):
    run = subprocess.run(
        [sys.executable, "-m", PROGRAMS[prog], "--version"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{prog} {__version__}"
    assert __version__ != "0.0.0+unknown", "the package is installed (make venv), so its version is known"


@pytest.fixture
def taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("prog", ["stackmedic-exporter", "stackmedic-receiver"])
def test_a_taken_port_is_one_line_and_exit_1(prog, taken_port):
    run = subprocess.run(
        [sys.executable, "-m", PROGRAMS[prog], f"--web.listen-address=127.0.0.1:{taken_port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "level=" not in line]
    assert errors == [f"{prog}: cannot listen on 127.0.0.1:{taken_port}: Address already in use"]
    assert "Traceback" not in run.stderr


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("receiver.intake", logging.WARNING, __file__, 1, msg, args, None)


HOSTILE = 'petclinic\nts=2026-01-01T00:00:00Z level=error msg="forged" x="y'


def test_logfmt_lines_parse_and_a_value_cannot_forge_a_line_or_a_key():
    line = logs.LogfmtFormatter().format(_record("rejected alert fingerprint=%s rule=%s", HOSTILE, "restart"))
    assert "\n" not in line
    (parsed,) = list(logfmt.parse([line]))
    assert parsed["level"] == "warn"
    assert parsed["logger"] == "receiver.intake"
    assert parsed["msg"] == "rejected alert"
    assert parsed["rule"] == "restart"
    assert set(parsed) == {"ts", "level", "logger", "msg", "fingerprint", "rule"}, "no forged key"
    assert parsed["fingerprint"].startswith("petclinic") and 'msg="forged"' in parsed["fingerprint"]


def test_json_lines_carry_the_same_fields():
    line = logs.JsonFormatter().format(_record("took seconds=%s target=%s", 1.5, HOSTILE))
    parsed = json.loads(line)
    assert parsed["msg"] == "took"
    assert parsed["seconds"] == 1.5
    assert parsed["target"] == HOSTILE
    assert set(parsed) == {"ts", "level", "logger", "msg", "seconds", "target"}


def test_a_message_of_another_shape_is_logged_whole():
    line = logs.LogfmtFormatter().format(_record("store unavailable: %s (retrying)", "timeout"))
    (parsed,) = list(logfmt.parse([line]))
    assert parsed["msg"] == "store unavailable: timeout (retrying)"


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: 1\nb:\n  c: 2\n  c: 3\n", 4), ("rules: {a: 1, a: 2}\n", 1), ("a: 1\na: 2\n", 2)],
)
def test_a_duplicate_yaml_key_is_a_config_error_with_its_line(text, line):
    with pytest.raises(ConfigError) as err:
        parse_yaml(text)
    (message,) = err.value.lines()
    assert message.startswith(f"config error: (top): invalid YAML at line {line}: duplicate key ")


def test_merge_keys_may_still_override():
    assert parse_yaml("a: &x {k: 1}\nb: {<<: *x, k: 2}\n") == {"a": {"k": 1}, "b": {"k": 2}}
