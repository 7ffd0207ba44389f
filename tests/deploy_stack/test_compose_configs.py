"""The configurations compose.yaml mounts (deploy/compose/) are valid for the real programs,
and every secret or path they name is one compose gives that service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_stack.conftest import REPO, ResolvedCompose, generate_secrets
from tests.deploy_stack.test_compose import volume_mounts

CONFIGS = {
    "stackmedic-exporter": ("exporter", "deploy/compose/exporter.yml"),
    "stackmedic-receiver": ("receiver", "deploy/compose/receiver.yml"),
    "jenkins": ("jobs", "deploy/compose/jobs.yml"),
}


def with_secrets_in(path: Path, secrets_dir: Path, out: Path) -> Path:
    """A copy of the config whose /run/secrets/<name> point at `secrets_dir`/<name>.txt."""
    text = path.read_text()
    out.write_text(re.sub(r"/run/secrets/(\w+)", lambda m: f"{secrets_dir}/{m.group(1)}.txt", text))
    return out


@pytest.mark.parametrize("service", sorted(CONFIGS))
def test_the_program_accepts_its_config(service: str, tmp_path: Path):
    module, relative = CONFIGS[service]
    try:
        __import__(f"{module}.cli")
    except ImportError:
        pytest.fail(f"{module}.cli is not there yet: cannot check {relative}")
    secrets = tmp_path / "secrets"
    generate_secrets(secrets)
    config = with_secrets_in(REPO / relative, secrets, tmp_path / "config.yml")
    run = subprocess.run(
        [sys.executable, "-m", module, f"--config.file={config}", "--config.check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("service", sorted(CONFIGS))
def test_secrets_the_config_reads_are_given_to_the_service(service: str, resolved_compose: ResolvedCompose):
    _, relative = CONFIGS[service]
    named = set(re.findall(r"/run/secrets/(\w+)", (REPO / relative).read_text()))
    assert named, f"{relative} reads no secret?"
    given = {s["source"] for s in resolved_compose.services[service].get("secrets", [])}
    assert named <= given


def test_the_exporter_and_the_jobs_share_the_backup_folder(resolved_compose: ResolvedCompose):
    import yaml

    exporter = yaml.safe_load((REPO / "deploy/compose/exporter.yml").read_text())
    jobs = yaml.safe_load((REPO / "deploy/compose/jobs.yml").read_text())
    folder = exporter["backups"]["directory"]
    assert {db["backup_dir"] for db in jobs["databases"].values()} == {folder}
    assert set(exporter["backups"]["databases"]) == set(jobs["databases"])
    s = resolved_compose.services
    assert (
        volume_mounts(s["jenkins"])[folder][0]
        == volume_mounts(s["stackmedic-exporter"])[folder][0]
        == "backups"
    )


def test_the_jobs_restart_what_the_receiver_may_ask_for():
    import yaml

    receiver = yaml.safe_load((REPO / "deploy/compose/receiver.yml").read_text())
    jobs = yaml.safe_load((REPO / "deploy/compose/jobs.yml").read_text())
    rules = {r["name"]: r for r in receiver["rules"]}
    restartable = re.compile(rules["restart-app"]["allow"]["compose_service"])
    restorable = re.compile(rules["restore-database"]["allow"]["database"])
    assert {s for s in jobs["services"] if restartable.fullmatch(s)} == set(jobs["services"])
    assert {d for d in jobs["databases"] if restorable.fullmatch(d)} == set(jobs["databases"])
    # never the database server or the Jenkins that runs the jobs
    for name in ("mysql", "jenkins"):
        assert not restartable.fullmatch(name) and name not in jobs["services"]


def test_jenkins_security_uses_only_secrets_the_jenkins_service_has(resolved_compose: ResolvedCompose):
    import yaml

    text = (REPO / "deploy/compose/jenkins/security.yaml").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    named = set(re.findall(r"\$\{(\w+)\}", code))
    given = {s["source"] for s in resolved_compose.services["jenkins"]["secrets"]}
    assert named and named <= given
    casc = resolved_compose.services["jenkins"]["environment"]["CASC_JENKINS_CONFIG"].split(",")
    mounts = volume_mounts(resolved_compose.services["jenkins"])
    for path in casc:
        folder, name = path.rsplit("/", 1)
        assert (Path(mounts[folder][0]) / name).is_file(), path
    # nobody gets in anonymously (tests/deploy_stack/test_jenkins_rights.py: who may do what)
    jenkins = yaml.safe_load(text)["jenkins"]
    assert set(jenkins["authorizationStrategy"]) == {"projectMatrix"}
    assert jenkins["securityRealm"]["local"]["allowsSignup"] is False


def test_the_receiver_logs_in_as_the_user_whose_token_jenkins_sets():
    import yaml

    receiver = yaml.safe_load((REPO / "deploy/compose/receiver.yml").read_text())["jenkins"]
    security = yaml.safe_load((REPO / "deploy/compose/jenkins/security.yaml").read_text())
    users = {u["id"] for u in security["jenkins"]["securityRealm"]["local"]["users"]}
    assert receiver["user"] in users
    assert receiver["api_token_file"] == "/run/secrets/jenkins_token"
    groovy = (REPO / "deploy/compose/jenkins/init.groovy.d/stackmedic-api-token.groovy").read_text()
    assert f"User.getById('{receiver['user']}', true)" in groovy
    assert "new File('/run/secrets/jenkins_token')" in groovy


def test_prometheus_scrapes_alertmanager_the_receiver_and_the_exporter(resolved_compose: ResolvedCompose):
    """Delivery is watched: the shipped Prometheus reaches each of them by its compose name and port."""
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    services = resolved_compose.services
    prometheus_networks = set(services["prometheus"]["networks"])
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, service in [
        ("alertmanager", "alertmanager"),
        ("stackmedic-receiver", "stackmedic-receiver"),
        ("stackmedic-exporter", "stackmedic-exporter"),
    ]:
        (static,) = jobs[job]["static_configs"]
        (target,) = static["targets"]
        host, port = target.rsplit(":", 1)
        assert host == service, job
        assert f"--web.listen-address=:{port}" in services[service]["command"], job
        assert prometheus_networks & set(services[service]["networks"]), (
            f"{job}: no network shared with prometheus"
        )
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"] == jobs["alertmanager"]["static_configs"]
