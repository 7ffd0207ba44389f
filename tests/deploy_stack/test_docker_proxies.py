"""The two Docker API proxies of compose.yaml, with their shipped allowlists, in front of a
real dockerd: the real exporter and `stackmedic-job restart` work through them, and what
would give a container root on the host is refused."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
import yaml

from harness.services import DockerEngine, Process, free_port, wait_for
from tests.deploy_stack.conftest import REPO, ResolvedCompose
from tests.deploy_stack.socket_policy import PolicyProxy, allowlist

pytestmark = pytest.mark.services


def proxy_for(resolved_compose: ResolvedCompose, service: str, engine: DockerEngine) -> PolicyProxy:
    return PolicyProxy(str(engine.sock), allowlist(resolved_compose.services[service]["command"])).start()


@pytest.fixture
def app(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """A running container labelled as compose service `name`."""
    name = f"proxied-{secrets.token_hex(3)}"
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    container = docker_engine.run_http(name, free_port(), www, compose_service=name)
    yield name, container
    container.remove(force=True)


def metric(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_exporter_reads_docker_through_the_read_only_proxy(
    resolved_compose: ResolvedCompose, docker_engine: DockerEngine, app, tmp_path: Path
):
    name, _ = app
    proxy = proxy_for(resolved_compose, "docker-proxy-ro", docker_engine)
    port = free_port()
    config = {
        "containers": {"docker_url": proxy.url, "services": [{"name": name}]},
        "docker_space": {"docker_url": proxy.url, "refresh_interval": "1h"},
    }
    (tmp_path / "exporter.yml").write_text(yaml.safe_dump(config))
    exporter = Process(
        [sys.executable, "-m", "stackmedic.exporter", f"--config.file={tmp_path / 'exporter.yml'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        tmp_path / "exporter.log", cwd=REPO,
    )  # fmt: skip
    try:

        def scraped() -> str | None:
            exporter.check_alive("exporter")
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            refreshed = metric(text, "stackmedic_docker_space_refresh_timestamp_seconds ")
            return text if refreshed else None

        text = wait_for(scraped, 60, "the exporter to read containers and `system df`", interval=0.5)
    finally:
        exporter.stop()
        proxy.stop()
    assert metric(text, "stackmedic_docker_up ") == 1
    assert metric(text, f'stackmedic_container_running{{compose_service="{name}"}}') == 1
    assert metric(text, "stackmedic_docker_images_bytes ") > 0
    assert proxy.seen and proxy.denied() == []
    assert {method for method, _, _ in proxy.seen} <= {"GET", "HEAD"}


@pytest.fixture
def stack_app(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """A running container under compose.yaml's fixed name for petclinic (the jobs' proxy allows it)."""
    www = tmp_path / "www-stack"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    with contextlib.suppress(docker.errors.NotFound):
        docker_engine.client.containers.get("stackmedic-petclinic").remove(force=True)
    container = docker_engine.run_http("stackmedic-petclinic", free_port(), www, compose_service="petclinic")
    yield "petclinic", container
    container.remove(force=True)


def test_the_jobs_restart_a_container_through_their_proxy(
    resolved_compose: ResolvedCompose, docker_engine: DockerEngine, stack_app, tmp_path: Path
):
    name, container = stack_app
    started = container.attrs["State"]["StartedAt"]
    proxy = proxy_for(resolved_compose, "docker-proxy-jobs", docker_engine)
    config = {
        "state_dir": str(tmp_path / "state"),
        "docker_url": proxy.url,
        # as deploy/compose/jobs.yml: no `image:`, so a restart restarts the same container
        "services": {
            name: {"compose_service": name, "start_timeout": "20s", "stop_timeout": "2s", "settle": "500ms"}
        },
    }
    (tmp_path / "jobs.yml").write_text(yaml.safe_dump(config))
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "stackmedic.jobs",
                f"--config.file={tmp_path / 'jobs.yml'}",
                "restart",
                name,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proxy.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert proxy.denied() == [], proxy.denied()
    posts = [path for method, path, _ in proxy.seen if method == "POST"]
    assert posts and all(path.endswith("/containers/stackmedic-petclinic/restart") for path in posts), posts
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] != started


@pytest.mark.parametrize("service", ["docker-proxy-ro", "docker-proxy-jobs"])
def test_what_would_be_root_on_the_host_is_refused(
    resolved_compose: ResolvedCompose, docker_engine: DockerEngine, app, service: str
):
    name, container = app
    proxy = proxy_for(resolved_compose, service, docker_engine)
    client = docker.DockerClient(base_url=proxy.url, timeout=30)
    try:
        assert client.ping()
        assert [
            c.name for c in client.containers.list(filters={"label": f"com.docker.compose.service={name}"})
        ]
        attempts = {
            "create a container (mounting /)": lambda: client.containers.create(
                docker_engine.image, "true", volumes={"/": {"bind": "/host"}}
            ),
            "exec in a container": lambda: client.api.exec_create(container.id, "sh"),
            "remove a container": lambda: client.api.remove_container(container.id, force=True),
            "rename a container": lambda: client.api.rename(container.id, "other"),
            "kill a container": lambda: client.api.kill(container.id),
            "list images": lambda: client.images.list(),
            "create a volume": lambda: client.volumes.create("x"),
            "create a network": lambda: client.networks.create("x"),
            "read container logs": lambda: client.api.logs(container.id),
        }
        # the ro proxy restarts nothing; the jobs' proxy none but the stack's names
        attempts["restart a container not of the stack"] = lambda: client.api.restart(container.name)
        attempts["stop a container by ID"] = lambda: client.api.stop(container.id)
        for what, attempt in attempts.items():
            with pytest.raises(docker.errors.APIError) as refused:
                attempt()
            assert refused.value.status_code == 403, what
    finally:
        client.close()
        proxy.stop()
    container.reload()
    assert container.status == "running"
