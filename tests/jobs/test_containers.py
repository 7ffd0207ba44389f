"""start / stop / restart of configured services on a real Docker engine, rollback included."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from stackmedic.jobs import errors
from stackmedic.jobs.cli import main
from stackmedic.jobs.config import load
from stackmedic.jobs.containers import OLD_SUFFIX, ServiceController
from stackmedic.jobs.known_good import KnownGood

from harness.services import DockerEngine, free_port, wait_for

pytestmark = pytest.mark.services


@dataclass
class App:
    engine: DockerEngine
    name: str  # service name in the config, compose service and container name
    project: str
    port: int
    tag: str  # the configured image reference
    config_path: Path
    state_dir: Path
    capsys: pytest.CaptureFixture

    def run(self, *args: str) -> tuple[int, dict, str]:
        self.capsys.readouterr()
        rc = main(["--config.file", str(self.config_path), *args])
        out, err = self.capsys.readouterr()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return rc, (json.loads(lines[-1]) if lines else {}), err

    def containers(self) -> list:
        client = self.engine.client
        return client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={self.project}"}
        )

    def container(self):
        (c,) = [c for c in self.containers() if c.name == self.name]
        return c

    def serves(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/", timeout=1).text == "hello\n"
        except requests.RequestException:
            return False

    def make_image(self, version: str, broken: bool = False) -> str:
        """A new build: same busybox, different label; `broken` lacks the httpd it needs."""
        client = self.engine.client
        argv = ["/bin/busybox", "rm", "/bin/httpd"] if broken else ["/bin/busybox", "true"]
        c = client.containers.run(self.engine.image, argv, detach=True, network_mode="none")
        try:
            c.wait(timeout=30)
            image = c.commit(
                repository=self.tag.split(":")[0], tag=version, changes=[f"LABEL build={version}"]
            )
        finally:
            c.remove(force=True)
        return image.id

    def deploy_tag(self, image_id: str) -> None:
        repo, tag = self.tag.split(":")
        self.engine.client.images.get(image_id).tag(repo, tag)


@pytest.fixture
def app(docker_engine: DockerEngine, tmp_path: Path, capsys) -> App:
    """A compose-labelled busybox httpd serving 'hello' on a free port, configured as a service."""
    suffix = uuid.uuid4().hex[:8]
    name, project = f"pc-{suffix}", f"proj{suffix}"
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    tag = f"local/pc{suffix}:latest"
    docker_engine.client.images.get(docker_engine.image).tag(*tag.split(":"))
    config = {
        "state_dir": str(tmp_path / "state"),
        "docker_url": docker_engine.base_url,
        "services": {
            name: {
                "compose_project": project,
                "compose_service": name,
                "image": tag,
                "start_timeout": "20s",
                "stop_timeout": "2s",
                "settle": "500ms",
            }
        },
    }
    config_path = tmp_path / "jobs.yml"
    config_path.write_text(yaml.safe_dump(config))
    a = App(docker_engine, name, project, free_port(), tag, config_path, tmp_path / "state", capsys)
    docker_engine.run_http(name, a.port, www, compose_service=name, project=project)
    wait_for(a.serves, 20, "the app to serve")
    yield a
    for c in a.containers():
        with contextlib.suppress(Exception):
            c.remove(force=True)
    repo = tag.split(":")[0]
    for image in docker_engine.client.images.list(name=repo):
        for t in image.tags:
            if t.startswith(repo + ":"):  # the busybox image carries other tags too: leave those
                with contextlib.suppress(Exception):
                    docker_engine.client.images.remove(t)


def test_stop_then_start_and_the_image_is_recorded_known_good(app: App):
    rc, line, _ = app.run("stop", app.name)
    assert rc == errors.OK and line == {
        "job": "stop",
        "service": app.name,
        "status": "ok",
        "message": f"{app.name} stopped",
    }
    assert app.container().status == "exited"
    assert not app.serves()

    rc, line, _ = app.run("start", app.name)
    assert rc == errors.OK and line["status"] == "ok"
    assert app.container().status == "running"
    wait_for(app.serves, 10, "the app to serve again")
    assert KnownGood(app.state_dir).get(app.name) == app.container().image.id


def test_only_configured_services_are_touched(app: App):
    for bad in ("../petclinic", "pc; rm -rf /", app.name.upper()):
        rc, line, err = app.run("stop", bad)
        assert rc == errors.USAGE
        assert f"stackmedic-job stop: unknown service {bad!r}: configured are {app.name}" in err
    assert app.container().status == "running"


def test_restart_moves_to_the_new_build_and_keeps_the_container_settings(app: App):
    before = app.container()
    new_id = app.make_image("v2")
    app.deploy_tag(new_id)
    rc, line, err = app.run("restart", app.name)
    assert rc == errors.OK, err
    after = app.container()
    assert after.image.id == new_id and after.id != before.id
    assert after.labels["com.docker.compose.service"] == app.name and after.labels["build"] == "v2"
    assert after.attrs["HostConfig"]["NetworkMode"] == "host"
    assert after.attrs["Config"]["Cmd"] == before.attrs["Config"]["Cmd"]
    wait_for(app.serves, 10, "the new build to serve")
    assert KnownGood(app.state_dir).get(app.name) == new_id
    assert [c.name for c in app.containers()] == [app.name]  # the parked old one is gone


def test_a_new_build_that_does_not_come_up_is_rolled_back(app: App):
    assert app.run("start", app.name)[0] == errors.OK  # records the current image as known good
    good_id = app.container().image.id
    broken_id = app.make_image("v3", broken=True)
    app.deploy_tag(broken_id)

    rc, line, err = app.run("restart", app.name)
    assert rc == errors.ROLLED_BACK == 6
    assert line["status"] == "rolled-back"
    assert "rolled back to the known-good image " + good_id.split(":")[1][:12] in line["message"]
    assert app.container().image.id == good_id and app.container().status == "running"
    wait_for(app.serves, 10, "the rolled-back app to serve")
    assert KnownGood(app.state_dir).get(app.name) == good_id
    assert not [c for c in app.containers() if c.name.endswith(OLD_SUFFIX)]


def test_without_auto_rollback_a_failed_restart_fails(app: App):
    assert app.run("start", app.name)[0] == errors.OK
    app.deploy_tag(app.make_image("v4", broken=True))
    rc, line, err = app.run("restart", app.name, "--no-auto-rollback")
    assert rc == errors.FAILED
    assert line["status"] == "failed" and "did not come up on image" in line["message"]
    assert "cannot start" in err


def test_restart_rollback_goes_back_to_the_known_good_image(app: App):
    assert app.run("start", app.name)[0] == errors.OK
    good_id = app.container().image.id
    # a newer build was deployed by hand and runs, but misbehaves: the operator rolls back
    app.deploy_tag(app.make_image("v5"))
    client = app.engine.client
    controller = ServiceController(client, KnownGood(Path("/nonexistent")))
    c = app.container()
    new, old = controller.recreate(
        c,
        client.api.inspect_container(c.id),
        client.images.get(app.tag).id,
        load(app.config_path).service(app.name),
    )
    new.start()
    old.remove(force=True)
    assert app.container().image.id != good_id

    rc, line, err = app.run("restart", app.name, "--rollback")
    assert rc == errors.OK, err
    assert app.container().image.id == good_id
    wait_for(app.serves, 10, "the known-good build to serve")


def test_rollback_without_a_known_good_image_refuses(app: App):
    rc, line, err = app.run("restart", app.name, "--rollback")
    assert rc == errors.FAILED
    assert f"no known-good image recorded for {app.name}" in err
    assert app.container().status == "running"


def test_a_service_without_container_is_an_error(app: App):
    app.container().remove(force=True)
    rc, line, err = app.run("start", app.name)
    assert rc == errors.FAILED
    assert (
        f"no container for {app.name} (compose service {app.name}); create it with docker compose up" in err
    )
