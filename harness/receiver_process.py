"""stackmedic-receiver as a real child process: a config file, a port on 127.0.0.1, readiness
awaited, stopped by PID (SIGTERM) or killed (SIGKILL) as a crash would."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import requests
import yaml

from harness.services import Process, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent


class ReceiverProcess:
    """One receiver with `config` written to tmp/<name>.yml; each start logs to tmp/<name>-<run>.log.

    `env` is the child's whole environment beside PATH and PYTHONPATH (tokens, passwords);
    `token` is the webhook's bearer token, for post().
    """

    def __init__(
        self,
        tmp: Path,
        config: dict[str, Any],
        env: dict[str, str],
        token: str,
        name: str = "receiver",
        log_level: str = "debug",
    ):
        self.tmp = tmp
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = tmp / f"{name}.yml"
        self.write_config(config)
        self.env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env}
        self.auth = {"Authorization": f"Bearer {token}"}
        self.log_level = log_level
        self.process: Process | None = None
        self.runs = 0

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the config file (read at the next start)."""
        self.config_path.write_text(yaml.safe_dump(config))

    @property
    def log(self) -> Path:
        """The log of the latest start."""
        return self.tmp / f"{self.name}-{self.runs}.log"

    def launch(self) -> Process:
        """Start the process without waiting for it to be ready (it may refuse to start)."""
        self.runs += 1
        argv = [
            sys.executable,
            "-m",
            "stackmedic.receiver",
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--log.level={self.log_level}",
        ]
        self.process = Process(argv, self.log, env=self.env, cwd=REPO)
        return self.process

    def start(self, timeout: float = 20) -> ReceiverProcess:
        """Start and wait until /-/ready answers 200."""
        self.launch()
        wait_for(self._ready, timeout, f"{self.name} to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        self.process.check_alive(f"stackmedic-receiver {self.name}")
        return requests.get(f"{self.url}/-/ready", timeout=2).ok

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def post(self, body: dict, timeout: float = 5) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/alerts", json=body, headers=self.auth, timeout=timeout)

    def actions(self) -> list[dict]:
        """Every action, oldest first."""
        return list(reversed(requests.get(f"{self.url}/api/v1/actions", timeout=5).json()["actions"]))

    def settled(self) -> bool:
        return all(
            a["build"]["state"] in ("done", "failed", "cancelled") for a in self.actions() if a["build"]
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.stop()

    def pause(self) -> None:
        """SIGSTOP: alive but frozen (a paused VM, a long stall); resume() goes on."""
        assert self.process is not None
        self.process._signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process:
            self.process._signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after a while), a clean stop."""
        if self.process:
            self.resume()
            self.process.stop()
