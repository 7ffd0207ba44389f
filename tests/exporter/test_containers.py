"""Containers and Docker space against a real private dockerd with local busybox containers."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from stackmedic.exporter.checks.containers import CONTAINER_HEALTH, CONTAINER_STATES, ContainersCheck, Service
from stackmedic.exporter.checks.docker_api import DockerApi, DockerError
from stackmedic.exporter.checks.docker_space import DockerSpaceCheck, space_of

from harness.services import free_port, wait_for
from tests.exporter.helpers import scrape


@pytest.fixture
def engine(docker_engine):
    yield docker_engine
    docker_engine.remove_all_containers()


@pytest.fixture
def www(tmp_path):
    (tmp_path / "index.html").write_text("<h2>Welcome</h2>\n")
    return tmp_path


def value(reg, metric: str, service: str, **extra) -> float | None:
    return reg.get_sample_value(f"stackmedic_container_{metric}", {"compose_service": service, **extra})


def test_running_container_counted_then_killed(engine, www):
    port = free_port()
    container = engine.run_http("sm-exp-petclinic", port, www, compose_service="petclinic")
    check = ContainersCheck(
        [
            Service("petclinic", compose_service="petclinic"),
            Service("wordpress", compose_service="wordpress"),
        ],
        engine.base_url,
    )
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_docker_up") == 1
    assert value(reg, "running", "petclinic") == 1
    assert value(reg, "expected", "petclinic") == 1
    assert value(reg, "state", "petclinic", state="running") == 1
    assert value(reg, "health", "petclinic", health="none") == 1
    assert value(reg, "restarts", "petclinic") == 0
    # a configured service without containers is still there, at 0
    assert value(reg, "running", "wordpress") == 0
    for state in CONTAINER_STATES:
        assert value(reg, "state", "wordpress", state=state) == 0
    for health in CONTAINER_HEALTH:
        assert value(reg, "health", "wordpress", health=health) == 0

    container.kill()
    wait_for(
        lambda: engine.client.containers.get(container.id).status == "exited", 30, "the container to exit"
    )
    reg = scrape([check])
    assert value(reg, "running", "petclinic") == 0
    assert value(reg, "state", "petclinic", state="exited") == 1


def test_match_by_name_and_by_compose_project(engine, www):
    engine.run_http("sm-exp-web-1", free_port(), www, compose_service="web", project="shop")
    engine.run_http("sm-exp-web-2", free_port(), www, compose_service="web", project="blog")
    check = ContainersCheck(
        [
            Service("by_name", name_regex=re.compile(r"^sm-exp-web-\d$"), expected=2),
            Service("shop_web", compose_service="web", compose_project="shop"),
            Service("all_web", compose_service="web"),
        ],
        engine.base_url,
    )
    reg = scrape([check])
    assert value(reg, "running", "by_name") == 2
    assert value(reg, "expected", "by_name") == 2
    assert value(reg, "running", "shop_web") == 1
    assert value(reg, "running", "all_web") == 2


def test_health_and_restart_count(engine, www):
    port = free_port()
    healthcheck = {"test": ["CMD", "true"], "interval": 200_000_000, "start_period": 0, "retries": 1}
    engine.run_http("sm-exp-healthy", port, www, compose_service="healthy", healthcheck=healthcheck)
    check = ContainersCheck([Service("healthy", compose_service="healthy")], engine.base_url)
    wait_for(
        lambda: value(scrape([check]), "health", "healthy", health="healthy") == 1, 30, "a healthy container"
    )
    # a container that keeps dying is restarted by its policy: RestartCount grows
    engine.client.containers.run(
        engine.image,
        ["sh", "-c", "exit 1"],
        name="sm-exp-crashy",
        detach=True,
        network_mode="none",
        labels={"com.docker.compose.service": "crashy"},
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    crashy = ContainersCheck([Service("crashy", compose_service="crashy")], engine.base_url)
    wait_for(lambda: value(scrape([crashy]), "restarts", "crashy") == 2, 60, "two restarts")


def test_docker_down_is_zero_not_a_failed_check(tmp_path):
    check = ContainersCheck(
        [Service("petclinic", compose_service="petclinic", expected=1)], f"unix://{tmp_path}/none.sock"
    )
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_docker_up") == 0
    assert value(reg, "running", "petclinic") == 0
    assert value(reg, "expected", "petclinic") == 1
    assert reg.get_sample_value("stackmedic_check_success", {"check": "containers"}) == 1


def test_docker_space_is_cached_and_refreshed(engine):
    clock = [1_700_000_000.0]
    check = DockerSpaceCheck(engine.base_url, refresh_interval=3600, wall_clock=lambda: clock[0])
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_docker_space_refresh_timestamp_seconds") == 0
    assert reg.get_sample_value("stackmedic_docker_images_bytes") == 0
    assert check.refresh() is True
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_docker_space_refresh_timestamp_seconds") == clock[0]
    assert reg.get_sample_value("stackmedic_docker_images_bytes") > 0  # the busybox image
    assert reg.get_sample_value("stackmedic_docker_volumes_bytes") >= 0


def test_docker_space_background_thread_fills_the_cache(engine):
    check = DockerSpaceCheck(engine.base_url, refresh_interval=3600)
    check.start()
    try:
        wait_for(
            lambda: scrape([check]).get_sample_value("stackmedic_docker_space_refresh_timestamp_seconds") > 0,
            30,
            "the first refresh",
        )
    finally:
        check.close()


def test_docker_space_failure_keeps_zeros(tmp_path):
    check = DockerSpaceCheck(f"unix://{tmp_path}/none.sock")
    assert check.refresh() is False
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_docker_space_refresh_timestamp_seconds") == 0


def test_space_of_engine_answer():
    df = {
        "LayersSize": 1000,
        "Images": [{"Size": 800, "SharedSize": 0}],
        "Volumes": [{"UsageData": {"Size": 300}}, {"UsageData": {"Size": -1}}, {"UsageData": None}],
    }
    assert space_of(df) == (1000, 300)
    assert space_of({"Images": [{"Size": 800, "SharedSize": 200}, {"Size": 100, "SharedSize": -1}]}) == (
        700,
        0,
    )


def test_a_scrape_imports_neither_the_docker_sdk_nor_requests_nor_urllib3_nor_prometheus_client(tmp_path):
    """Memory: those cost megabytes the exporter does not need (docs/benchmarks.md); the
    HTTP checks and the Engine API go through the standard library's http.client."""
    script = f"""
import sys
from stackmedic.exporter.checks import build_checks
from stackmedic.exporter.collector import ScrapeRunner
from stackmedic.exporter.config import parse
from stackmedic.exporter.web import make_app

config = parse({{
    "docker": {{"url": "unix://{tmp_path}/none.sock"}}, "containers": {{}}, "docker_space": {{}},
    "http": [{{"name": "refused", "url": "http://127.0.0.1:1/"}}],
}})
runner = ScrapeRunner(build_checks(config))
for check in runner.checks:
    check.start()
    check.refresh() if hasattr(check, "refresh") else None
body = b"".join(make_app(runner)({{"PATH_INFO": "/metrics"}}, lambda *a: None))
assert b"stackmedic_docker_up 0.0" in body, body
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"docker", "requests", "urllib3", "prometheus_client"}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


def test_docker_api_speaks_the_engines_version_and_reports_errors(engine):
    api = DockerApi(engine.base_url, 5)
    try:
        assert isinstance(api.containers(), list)
        assert api._prefix == f"/v{engine.client.version()['ApiVersion']}"
        with pytest.raises(DockerError, match=r"GET /v[0-9.]+/containers/no-such-container/json: HTTP 404"):
            api.inspect("no-such-container")
    finally:
        api.close()
