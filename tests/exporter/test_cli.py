"""The command line: --config.check, exit 2 with every problem, a real run stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import logfmt
import pytest
import requests
from stackmedic.exporter.cli import main

from harness.services import free_port, wait_for
from tests.exporter.test_config import BAD_CONFIG_LINES

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def test_config_check_ok(capsys, monkeypatch):
    monkeypatch.setenv("STACKMEDIC_MYSQL_PASSWORD", "x")
    assert main(["--config.file", str(REPO / "examples" / "seed-stack.yml"), "--config.check"]) == 0
    assert capsys.readouterr().out == f"config ok: {REPO / 'examples' / 'seed-stack.yml'}\n"


def test_config_check_embedded_default(capsys):
    assert main(["--config.check"]) == 0
    assert capsys.readouterr().out == "config ok: (embedded default)\n"


def test_bad_config_exits_2_with_every_problem(capsys):
    assert main(["--config.file", str(HERE / "data" / "bad-config.yml"), "--config.check"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == BAD_CONFIG_LINES
    assert "hunter2" not in err


def test_bad_config_without_check_flag_also_exits_2(capsys):
    assert main(["--config.file", str(HERE / "data" / "bad-config.yml")]) == 2
    assert capsys.readouterr().err.splitlines() == BAD_CONFIG_LINES


def test_bad_listen_address_exits_2(capsys):
    assert main(["--web.listen-address", "nowhere", "--config.check"]) == 2
    assert (
        capsys.readouterr().err
        == "config error: --web.listen-address: invalid listen address 'nowhere': expected host:port\n"
    )


def test_unknown_log_level_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--log.level", "loud"])
    assert exc.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_runs_serves_and_stops_on_sigterm(tmp_path, web_target):
    port = free_port()
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"system:\nhttp:\n  - name: petclinic\n    url: {web_target.url('/ok')}\n    keyword: Welcome\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stackmedic.exporter",
            f"--config.file={cfg}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(url + "/-/healthy", timeout=1).ok, 30, "the exporter to answer")
        text = requests.get(url + "/metrics", timeout=10).text
        assert 'stackmedic_http_up{target="petclinic"} 1.0' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        log = proc.stderr.read()
        records = list(logfmt.parse(log.splitlines()))
        assert [r["msg"] for r in records] == ["listening", "shutting down"], log
        assert records[0]["address"] == f"127.0.0.1:{port}"
        assert records[0]["logger"] == "stackmedic.exporter.cli"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_port_in_use_exits_1(tcp_listener, capsys):
    port = tcp_listener.getsockname()[1]
    assert main([f"--web.listen-address=127.0.0.1:{port}"]) == 1
