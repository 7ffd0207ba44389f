"""compose.yaml: docker-compose accepts it, and it wires the stack the way the docs say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy_stack.conftest import REPO, ResolvedCompose

STACK = {"mysql", "petclinic", "wordpress", "jenkins"}
MONITORING = {"prometheus", "alertmanager", "grafana", "stackmedic-exporter", "stackmedic-receiver"}
PROXIES = {"docker-proxy-ro", "docker-proxy-jobs"}


def published(service: dict) -> dict[int, tuple[str, int]]:
    """host port -> (host ip, container port); docker-compose prints both port syntaxes."""
    out = {}
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out[int(p["published"])] = (p.get("host_ip", ""), int(p["target"]))
            continue
        parts = p.split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        out[int(parts[-2])] = (host_ip, int(parts[-1]))
    return out


def volume_mounts(service: dict) -> dict[str, tuple[str, str]]:
    """container path -> (source, mode)."""
    out = {}
    for v in service.get("volumes", []):
        parts = v.split(":")
        source, target = parts[0], parts[1]
        out[target] = (source, parts[2] if len(parts) > 2 else "rw")
    return out


def test_docker_compose_accepts_it_without_warnings(resolved_compose: ResolvedCompose):
    # docker-compose 1.29 ignores some keys with only a warning (`configs` outside Swarm):
    # a warning means a setting that silently does not apply
    assert resolved_compose.stderr.strip() == ""
    assert set(resolved_compose.services) == STACK | MONITORING | PROXIES


def test_the_stack_listens_on_its_documented_ports(resolved_compose: ResolvedCompose):
    s = resolved_compose.services
    assert published(s["mysql"])[3316] == ("127.0.0.1", 3306)
    assert published(s["petclinic"])[1080] == ("", 8080)
    assert published(s["wordpress"])[1180] == ("", 80)
    assert published(s["jenkins"])[8080] == ("127.0.0.1", 8080)
    assert published(s["stackmedic-exporter"])[9877] == ("127.0.0.1", 9877)
    assert published(s["stackmedic-receiver"])[9878] == ("127.0.0.1", 9878)
    assert published(s["prometheus"])[9090] == ("127.0.0.1", 9090)
    assert published(s["alertmanager"])[9093] == ("127.0.0.1", 9093)
    assert published(s["grafana"])[3000] == ("127.0.0.1", 3000)
    # the Docker API is never published on the host
    for name in PROXIES:
        assert "ports" not in s[name], name


def test_mariadb_keeps_row_binary_logs_for_two_backup_intervals(resolved_compose: ResolvedCompose):
    from deploy.jenkins.generate import load as load_jobs

    args = dict(a.removeprefix("--").split("=", 1) for a in resolved_compose.services["mysql"]["command"])
    assert args["binlog-format"] == "ROW" and args["log-bin"] and args["server-id"] == "1"
    # the sparsest backup schedule is daily (WordPress): keep its logs for two intervals at least
    backups = [j for name, j in load_jobs().jobs.items() if name.startswith("stackmedic-backup-")]
    assert backups and all(j.cron for j in backups)
    assert int(args["binlog-expire-logs-seconds"]) >= 2 * 86400


def test_only_the_proxies_see_the_docker_socket(resolved_compose: ResolvedCompose):
    for name, service in resolved_compose.services.items():
        sources = [source for source, _ in volume_mounts(service).values()]
        if name in PROXIES:
            assert volume_mounts(service)["/var/run/docker.sock"] == ("/var/run/docker.sock", "ro")
        else:
            assert not any("docker.sock" in src for src in sources), f"{name} mounts the Docker socket"


def proxy_rules(service: dict) -> dict[str, str]:
    """{METHOD: regexp} of a socket-proxy's -allow<METHOD> flags."""
    rules = {}
    for arg in service["command"]:
        m = re.fullmatch(r"-allow([A-Z]+)=(.+)", arg)
        if m:
            rules[m.group(1)] = m.group(2)
    return rules


def flag(service: dict, name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in service["command"] if a.startswith(f"-{name}=")]
    return value


def test_the_exporter_reads_docker_through_a_get_only_proxy(resolved_compose: ResolvedCompose):
    s = resolved_compose.services
    exporter, ro = s["stackmedic-exporter"], s["docker-proxy-ro"]
    assert exporter["environment"]["DOCKER_HOST"] == "tcp://docker-proxy-ro:2375"
    exporter_config = yaml.safe_load((REPO / "deploy/compose/exporter.yml").read_text())
    # no address of its own in the file: both Docker checks follow that DOCKER_HOST
    assert "docker" not in exporter_config
    assert not {"docker_url"} & (
        exporter_config["containers"].keys() | exporter_config["docker_space"].keys()
    )
    # reads only: no rule for any method that changes something
    assert set(proxy_rules(ro)) == {"GET", "HEAD"}
    assert flag(ro, "allowfrom") == "stackmedic-exporter"
    # and the proxy is reachable by the exporter alone, on a network with no way out
    assert set(ro["networks"]) == {"docker-ro"}
    assert resolved_compose.config["networks"]["docker-ro"].get("internal") is True
    users = {n for n, svc in s.items() if "docker-ro" in svc.get("networks", {})}
    assert users == {"docker-proxy-ro", "stackmedic-exporter"}


def test_jenkins_jobs_may_only_start_stop_and_restart_containers(resolved_compose: ResolvedCompose):
    s = resolved_compose.services
    jobs = s["docker-proxy-jobs"]
    rules = proxy_rules(jobs)
    assert set(rules) == {"GET", "HEAD", "POST"}
    assert rules["POST"].endswith(
        "/containers/(stackmedic-petclinic|stackmedic-wordpress)/(start|stop|restart)"
    )
    assert flag(jobs, "allowfrom") == "jenkins"
    assert s["jenkins"]["environment"]["DOCKER_HOST"] == "tcp://docker-proxy-jobs:2375"
    assert resolved_compose.config["networks"]["docker-jobs"].get("internal") is True
    users = {n for n, svc in s.items() if "docker-jobs" in svc.get("networks", {})}
    assert users == {"docker-proxy-jobs", "jenkins"}


STACK_CONTAINERS = ("stackmedic-petclinic", "stackmedic-wordpress")
# what the exporter and the jobs call (their Docker SDK, with and without a version prefix)
READS = [
    ("HEAD", "/_ping"),
    ("GET", "/_ping"),
    ("GET", "/v1.44/version"),
    ("GET", "/v1.44/containers/json"),
    ("GET", "/containers/json"),
    ("GET", "/v1.44/containers/0123456789ab/json"),
    ("GET", "/v1.44/containers/stackmedic-petclinic/json"),
]
REFUSED = [
    ("POST", "/v1.44/containers/create"),
    ("POST", "/containers/create"),
    ("POST", "/v1.44/containers/stackmedic-petclinic/exec"),
    ("POST", "/v1.44/exec/0123456789ab/start"),
    ("POST", "/v1.44/containers/stackmedic-petclinic/kill"),
    ("POST", "/v1.44/containers/stackmedic-petclinic/rename"),
    ("POST", "/v1.44/containers/stackmedic-petclinic/update"),
    ("POST", "/v1.44/containers/stackmedic-petclinic/attach"),
    ("POST", "/v1.44/containers/other/start"),
    ("POST", "/v1.44/containers/other/restart"),
    ("POST", "/v1.44/containers/stackmedic-mysql/stop"),  # the database is never a job's to stop
    ("POST", "/v1.44/containers/jenkins/restart"),
    ("POST", "/v1.44/containers/0123456789ab/restart"),  # by ID: the name is what is allowed
    ("POST", "/v1.44/containers/stackmedic-petclinic-x/restart"),
    ("POST", "/v1.44/containers/xstackmedic-petclinic/restart"),
    ("POST", "/v1.44/containers/stackmedic-petclinic/restart/../../create"),
    ("DELETE", "/v1.44/containers/stackmedic-petclinic"),
    ("GET", "/v1.44/containers/stackmedic-petclinic/logs"),
    ("GET", "/v1.44/containers/stackmedic-petclinic/archive"),
    ("GET", "/v1.44/images/json"),
    ("GET", "/v1.44/secrets"),
    ("PUT", "/v1.44/containers/stackmedic-petclinic/archive"),
    ("POST", "/v1.44/images/create"),
    ("POST", "/v1.44/volumes/create"),
    ("POST", "/v1.44/networks/create"),
    ("POST", "/v1.44/build"),
    ("POST", "/v1.44/swarm/init"),
]


def allowed(rules: dict[str, str], method: str, path: str) -> bool:
    """As socket-proxy decides: the method's pattern matches the whole path."""
    return method in rules and re.fullmatch(rules[method], path) is not None


def test_the_proxies_allow_what_the_programs_call_and_refuse_the_rest(resolved_compose: ResolvedCompose):
    s = resolved_compose.services
    ro, jobs = proxy_rules(s["docker-proxy-ro"]), proxy_rules(s["docker-proxy-jobs"])
    for method, path in READS:
        assert allowed(ro, method, path), (method, path)
        assert allowed(jobs, method, path), (method, path)
    assert allowed(ro, "GET", "/v1.44/system/df")  # the exporter's docker_space check
    writes = [
        ("POST", f"{prefix}/containers/{name}/{verb}")
        for prefix in ("", "/v1.44")
        for name in STACK_CONTAINERS
        for verb in ("start", "stop", "restart")
    ]
    for method, path in writes:
        assert allowed(jobs, method, path), (method, path)
        assert not allowed(ro, method, path), (method, path)
    for method, path in REFUSED:
        assert not allowed(ro, method, path), (method, path)
        assert not allowed(jobs, method, path), (method, path)
    # the names the proxy lets the jobs act on are the applications' fixed container names
    assert {s["petclinic"]["container_name"], s["wordpress"]["container_name"]} == set(STACK_CONTAINERS)
    # socket-proxy's own default for an unlisted method is refusal: no rule for DELETE/PUT
    assert not {"DELETE", "PUT", "PATCH"} & (set(ro) | set(jobs))


@pytest.mark.parametrize(
    ("service", "path", "volume", "mode"),
    [
        ("mysql", "/var/lib/mysql", "mysql_data", "rw"),
        ("jenkins", "/var/backups/stackmedic", "backups", "rw"),
        ("stackmedic-exporter", "/var/backups/stackmedic", "backups", "ro"),
        ("prometheus", "/prometheus", "prometheus_data", "rw"),
        ("alertmanager", "/alertmanager", "alertmanager_data", "rw"),
        ("grafana", "/var/lib/grafana", "grafana_data", "rw"),
        ("stackmedic-receiver", "/var/lib/stackmedic-receiver", "receiver_state", "rw"),
        ("jenkins", "/var/jenkins_home", "jenkins_home", "rw"),
        ("wordpress", "/var/www/html", "wordpress_html", "rw"),
    ],
)
def test_state_lives_in_named_volumes(resolved_compose: ResolvedCompose, service, path, volume, mode):
    assert volume in resolved_compose.config["volumes"]
    assert volume_mounts(resolved_compose.services[service])[path] == (volume, mode)


# Which service may read which secret: a secret handed to one more service is a regression.
SECRET_USERS = {
    "mysql_root_password": {"mysql"},
    "mysql_exporter_password": {"mysql", "stackmedic-exporter"},
    "mysql_backup_password": {"mysql", "jenkins"},
    "mysql_restore_password": {"mysql", "jenkins"},
    "mysql_verify_password": {"mysql", "jenkins"},
    "mysql_binlog_password": {"mysql", "jenkins"},
    "petclinic_db_password": {"mysql", "petclinic"},
    "wordpress_db_password": {"mysql", "wordpress"},
    "receiver_webhook_token": {"alertmanager", "stackmedic-receiver"},
    "receiver_operator_token": {"stackmedic-receiver"},
    "jenkins_token": {"jenkins", "stackmedic-receiver"},
    "jenkins_admin_password": {"jenkins"},
    "grafana_admin_password": {"grafana"},
    "prometheus_password": {"prometheus", "grafana"},
    "alertmanager_password": {"prometheus", "alertmanager"},
    "prometheus_web_config": {"prometheus"},
    "alertmanager_web_config": {"alertmanager"},
    "metrics_password": {"prometheus", "stackmedic-exporter"},
    "exporter_web_config": {"stackmedic-exporter"},
    "receiver_web_config": {"stackmedic-receiver"},
    "receiver_admin_password": set(),  # people's: the receiver holds only its bcrypt hash
}


def test_each_secret_reaches_only_the_services_that_need_it(resolved_compose: ResolvedCompose):
    seen: dict[str, set[str]] = {name: set() for name in resolved_compose.config["secrets"]}
    for name, service in resolved_compose.services.items():
        for secret in service.get("secrets", []):
            seen[secret["source"]].add(name)
    assert seen == SECRET_USERS


def test_secrets_are_files_under_secrets_and_the_generator_makes_every_one(resolved_compose: ResolvedCompose):
    secrets_dir = resolved_compose.workdir / "secrets"
    for name, secret in resolved_compose.config["secrets"].items():
        path = Path(secret["file"])
        assert path in (secrets_dir / f"{name}.txt", secrets_dir / f"{name.removesuffix('_config')}.yml"), (
            name
        )
        assert path.read_text().strip(), f"{name} generated empty"


def test_no_password_or_token_is_passed_in_the_environment(resolved_compose: ResolvedCompose):
    # environment variables leak (docker inspect, /proc/*/environ, crash reports): secrets
    # are files, and the environment only says where they are
    for name, service in resolved_compose.services.items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key.upper() for word in ("PASSWORD", "TOKEN", "SECRET", "PASS")):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, key)


def test_configs_are_mounted_read_only_from_deploy(resolved_compose: ResolvedCompose):
    s = resolved_compose.services
    deploy = resolved_compose.workdir / "deploy"
    expected = {
        "prometheus": {"/etc/prometheus": deploy / "prometheus"},
        "alertmanager": {"/etc/alertmanager/alertmanager.yml": deploy / "alertmanager" / "alertmanager.yml"},
        "grafana": {
            "/etc/grafana/provisioning": deploy / "grafana" / "provisioning",
            "/etc/grafana/dashboards": deploy / "grafana" / "dashboards",
        },
        "jenkins": {
            "/etc/stackmedic/jenkins": deploy / "jenkins",
            "/etc/stackmedic/jenkins-compose": deploy / "compose" / "jenkins",
            "/var/jenkins_home/init.groovy.d": deploy / "compose" / "jenkins" / "init.groovy.d",
            "/etc/stackmedic/jobs.yml": deploy / "compose" / "jobs.yml",
        },
        "stackmedic-exporter": {"/etc/stackmedic/exporter.yml": deploy / "compose" / "exporter.yml"},
        "stackmedic-receiver": {"/etc/stackmedic/receiver.yml": deploy / "compose" / "receiver.yml"},
        "mysql": {"/docker-entrypoint-initdb.d": deploy / "compose" / "mysql-initdb"},
    }
    for name, mounts in expected.items():
        actual = volume_mounts(s[name])
        for target, source in mounts.items():
            assert actual[target] == (str(source), "ro"), (name, target)
            assert source.exists(), source


def test_services_wait_for_what_they_need(resolved_compose: ResolvedCompose):
    s = resolved_compose.services
    healthy = {"condition": "service_healthy"}
    for app in ("petclinic", "wordpress", "jenkins"):
        assert s[app]["depends_on"]["mysql"] == healthy
    assert s["jenkins"]["depends_on"]["docker-proxy-jobs"] == healthy
    assert s["stackmedic-exporter"]["depends_on"]["docker-proxy-ro"] == healthy
    assert s["grafana"]["depends_on"]["prometheus"] == healthy


def test_prometheus_config_targets_the_compose_service_names(resolved_compose: ResolvedCompose):
    # deploy/prometheus/prometheus.yml is shared with other set-ups; in compose its targets
    # must be these services on these ports, reachable on Prometheus' network
    prom = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"stackmedic-exporter:9877", "stackmedic-receiver:9878", "alertmanager:9093"} <= targets
    s = resolved_compose.services
    for name in ("stackmedic-exporter", "stackmedic-receiver", "alertmanager"):
        assert "monitoring" in s[name]["networks"], name
    assert "monitoring" in s["prometheus"]["networks"]
