"""Fixtures of the compose, image and dashboard tests: the stack as docker-compose resolves it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.services import require_binary

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ResolvedCompose:
    """`docker-compose config` of a copy of the checkout with generated secrets."""

    workdir: Path
    config: dict
    stderr: str

    @property
    def services(self) -> dict[str, dict]:
        return self.config["services"]


def generate_secrets(directory: Path) -> subprocess.CompletedProcess:
    """Run secrets/generate.sh into `directory`."""
    # without htpasswd on the machine, the bcrypt hashes of the web configs come from the
    # test's own Python (bcrypt is a dependency of stackmedic)
    return subprocess.run(
        ["bash", str(REPO / "secrets" / "generate.sh"), str(directory)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )


def stack_copy(base: Path) -> Path:
    """compose.yaml with what it refers to (deploy/, Dockerfile), and generated secrets.

    The copy keeps the test away from the checkout's own ./secrets (an operator's real ones).
    """
    work = base / "stack"
    work.mkdir()
    shutil.copy(REPO / "compose.yaml", work / "compose.yaml")
    shutil.copy(REPO / "Dockerfile", work / "Dockerfile")
    shutil.copytree(REPO / "deploy", work / "deploy")
    generate_secrets(work / "secrets")
    return work


@pytest.fixture(scope="session")
def resolved_compose(tmp_path_factory: pytest.TempPathFactory) -> ResolvedCompose:
    """compose.yaml as docker-compose 1.29 reads it (anchors merged, paths absolute)."""
    binary = require_binary("docker-compose")
    work = stack_copy(tmp_path_factory.mktemp("compose"))
    # no STACKMEDIC_* or *_IMAGE from the caller's environment: the defaults are under test
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work)}
    run = subprocess.run(
        [binary, "-f", str(work / "compose.yaml"), "config"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"docker-compose config failed:\n{run.stderr}"
    return ResolvedCompose(work, yaml.safe_load(run.stdout), run.stderr)
