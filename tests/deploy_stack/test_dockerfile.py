"""The Dockerfile, read as a linter would (no registry here, so no image is built), and
the wheel its builder stage makes, built for real."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy_stack.conftest import REPO


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def commands(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile; continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse((REPO / "Dockerfile").read_text())
    return {s.name: s for s in parsed}


def final_user(stage: Stage) -> str:
    users = stage.commands("USER")
    assert users, f"stage {stage.name} sets no USER: it would run as root"
    return users[-1]


def test_multi_stage_on_python_3_11_slim(stages):
    assert {"builder", "stackmedic", "jenkins"} <= set(stages)
    assert stages["builder"].base.startswith("python:3.11-slim")
    assert stages["stackmedic"].base.startswith("python:3.11-slim")


def test_wheels_are_built_in_the_builder_and_only_the_virtualenv_is_copied(stages):
    builder = " ".join(stages["builder"].commands("RUN"))
    assert "pip wheel" in builder
    runtime = stages["stackmedic"]
    copies = runtime.commands("COPY")
    assert copies == ["--from=builder /opt/stackmedic /opt/stackmedic"]


def test_the_runtime_stage_has_no_compiler_pip_or_caches(stages):
    runtime = " ".join(stages["stackmedic"].commands("RUN"))
    for tool in ("gcc", "build-essential", "libc6-dev", "python3-dev", "make "):
        assert tool not in runtime, tool
    # pip leaves the final image; apt's lists and archives do not stay in a layer
    assert "pip uninstall --yes pip setuptools wheel" in runtime
    assert "pip install" not in runtime
    assert "--no-install-recommends" in runtime
    assert "rm -rf /var/lib/apt/lists/*" in runtime


@pytest.mark.parametrize("name", ["builder", "jenkins-venv"])
def test_every_pip_install_keeps_no_cache(stages, name):
    stage = stages[name]
    env = " ".join(stage.commands("ENV"))
    installs = [
        segment
        for run in stage.commands("RUN")
        for segment in run.split("&&")
        if re.search(r"\bpip3?\b.*\binstall\b", segment) and "apt-get" not in segment
    ]
    assert installs, f"stage {name} installs nothing with pip?"
    for segment in installs:
        assert "--no-cache-dir" in segment or "PIP_NO_CACHE_DIR=1" in env, segment


@pytest.mark.parametrize("name", ["stackmedic", "jenkins"])
def test_final_stages_run_as_a_numeric_or_named_non_root_user(stages, name):
    user = final_user(stages[name]).split(":")[0]
    assert user not in ("0", "root", "")
    if name == "stackmedic":
        # numeric: a runtime that enforces non-root (runAsNonRoot) can verify it
        assert user.isdigit() and int(user) >= 10000


def test_one_image_holds_the_three_programs(stages):
    pyproject = (REPO / "pyproject.toml").read_text()
    for program in ("stackmedic-exporter", "stackmedic-receiver", "stackmedic-job"):
        assert f'{program} = "' in pyproject, program
    runtime = stages["stackmedic"]
    assert "PATH=/opt/stackmedic/bin:$PATH" in " ".join(runtime.commands("ENV"))
    assert shlex.split(runtime.commands("CMD")[-1].strip("[]").replace(",", " "))[0] == "stackmedic-exporter"
    assert set(runtime.commands("EXPOSE")[0].split()) == {"9877", "9878"}


def test_the_compose_file_builds_these_targets():
    compose = (REPO / "compose.yaml").read_text()
    assert "target: stackmedic" in compose and "target: jenkins" in compose


def test_dockerignore_is_an_allowlist_that_keeps_secrets_out():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the build context must start from nothing"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed <= {"pyproject.toml", "README.md", "LICENSE", "stackmedic", "exporter", "receiver", "jobs"}
    assert not any(name in allowed for name in ("secrets", ".git", ".venv", "tests", "deploy"))


def test_what_the_builder_copies_is_in_the_build_context(stages):
    copies = [c.split() for c in stages["builder"].commands("COPY") if not c.startswith("--from")]
    sources = {src for words in copies for src in words[:-1]}
    dockerignore = (REPO / ".dockerignore").read_text()
    for src in sources:
        assert f"!{src}" in dockerignore or f"!{src}/" in dockerignore, src
        assert (REPO / src).exists(), src


def build_context(destination: Path) -> Path:
    """The files `.dockerignore` lets into the build context, copied to `destination`."""
    allowed = [
        line.strip()[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    ]
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in allowed:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=skip)
        elif source.exists():
            shutil.copy(source, destination / name)
    return destination


def test_the_build_context_builds_a_wheel_with_the_three_programs(tmp_path: Path):
    """The builder stage's `pip wheel .`, for real, on exactly what .dockerignore lets in."""
    (tmp_path / "context").mkdir()
    context = build_context(tmp_path / "context")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-v",
            "-w",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("stackmedic-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for package in ("stackmedic", "stackmedic/exporter", "stackmedic/receiver", "stackmedic/jobs"):
        assert f"{package}/__init__.py" in names, package
    # one import name: nothing that another distribution could own, nor the checkout's tooling
    assert {n.split("/")[0] for n in names if not n.startswith("stackmedic-")} == {"stackmedic"}
    for program in ("stackmedic-exporter", "stackmedic-receiver", "stackmedic-job"):
        assert f"{program} = " in entry_points, program
    # the receiver's page ships, and setuptools has no doubt about what is a package
    for page_file in ("templates/index.html", "static/page.js", "static/page.css", "static/favicon.svg"):
        assert f"stackmedic/receiver/{page_file}" in names, page_file
    assert "would be ignored" not in run.stdout + run.stderr, "setuptools: a package missing from `packages`"
    # the receiver's page: without its template the image answers 500 on /
    for data in ("templates/index.html", "static/page.js", "static/page.css", "openapi.yaml"):
        assert f"stackmedic/receiver/{data}" in names, data
