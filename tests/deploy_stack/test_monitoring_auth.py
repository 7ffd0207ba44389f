"""compose.yaml's Prometheus and Alertmanager, run for real with compose's own flags, web
configurations and secrets (issue 13 defect 4): every page and API needs the login, the
lifecycle API is off, and Prometheus still scrapes both and delivers alerts with the
passwords it reads from the secret files. The healthchecks run in busybox's shell, as in
the images."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from harness.services import Process, free_port, require_binary, wait_for
from tests.deploy_stack.conftest import REPO, ResolvedCompose

pytestmark = pytest.mark.services


def secret_files(compose: ResolvedCompose, service: str) -> dict[str, Path]:
    """The path each of `service`'s compose secrets has inside its container -> its file."""
    out = {}
    for secret in compose.services[service].get("secrets", []):
        target = secret.get("target") or secret["source"]
        inside = target if target.startswith("/") else f"/run/secrets/{target}"
        out[inside] = Path(compose.config["secrets"][secret["source"]]["file"])
    return out


def outside(text: str, files: dict[str, Path]) -> str:
    """`text` with every in-container secret path replaced by its file on this machine."""
    for inside, path in sorted(files.items(), key=lambda item: -len(item[0])):
        text = text.replace(inside, str(path))
    return text


def flags(compose: ResolvedCompose, service: str) -> dict[str, str]:
    """`--name=value` arguments of the service's command (a program name before them is skipped)."""
    command = compose.services[service]["command"]
    return dict(arg.removeprefix("--").split("=", 1) for arg in command if arg.startswith("--"))


def scrape_login(compose: ResolvedCompose, job_name: str) -> tuple[str, str]:
    """The user and password Prometheus scrapes `job_name` with (prometheus.yml, compose's secret)."""
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == job_name]
    password_file = secret_files(compose, "prometheus")[job["basic_auth"]["password_file"]]
    return job["basic_auth"]["username"], password_file.read_text()


@dataclass
class Monitoring:
    prometheus: str
    alertmanager: str
    prometheus_auth: tuple[str, str]
    alertmanager_auth: tuple[str, str]
    prometheus_port: int
    alertmanager_port: int


def login(compose: ResolvedCompose, name: str) -> tuple[str, str]:
    return "admin", Path(compose.config["secrets"][name]["file"]).read_text()


@pytest.fixture(scope="module")
def monitoring(
    resolved_compose: ResolvedCompose, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitoring]:
    base = tmp_path_factory.mktemp("monitoring")
    am_port, prom_port = free_port(), free_port()
    am_flags, prom_flags = flags(resolved_compose, "alertmanager"), flags(resolved_compose, "prometheus")
    am_files, prom_files = (
        secret_files(resolved_compose, "alertmanager"),
        secret_files(resolved_compose, "prometheus"),
    )

    am_config = base / "alertmanager.yml"
    am_config.write_text(outside((REPO / "deploy/alertmanager/alertmanager.yml").read_text(), am_files))
    am_argv = [
        require_binary("prometheus-alertmanager"),
        f"--config.file={am_config}",
        f"--storage.path={base / 'am'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
        f"--web.config.file={outside(am_flags['web.config.file'], am_files)}",
    ]

    prom = yaml.safe_load(outside((REPO / "deploy/prometheus/prometheus.yml").read_text(), prom_files))
    prom["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    prom["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    jobs["alertmanager"]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{prom_port}"]}]
    prom["scrape_configs"] = [jobs["alertmanager"], jobs["prometheus"]]
    prom["rule_files"] = [str(base / "always.yml")]
    (base / "always.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "t", "rules": [{"alert": "AlwaysFiring", "expr": "vector(1)"}]}]})
    )
    (base / "prometheus.yml").write_text(yaml.safe_dump(prom))
    prom_argv = [
        require_binary("prometheus"),
        f"--config.file={base / 'prometheus.yml'}",
        f"--storage.tsdb.path={base / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        # the first alert goes out before Alertmanager is discovered: resend at once, not in 1m
        "--rules.alert.resend-delay=1s",
        # every other flag exactly as compose gives it
        *(
            f"--{k}={outside(v, prom_files)}"
            for k, v in prom_flags.items()
            if k not in ("config.file", "storage.tsdb.path", "web.listen-address")
        ),
    ]
    am = Process(am_argv, base / "alertmanager.log")
    pm = Process(prom_argv, base / "prometheus.log")
    env = Monitoring(
        prometheus=f"http://127.0.0.1:{prom_port}",
        alertmanager=f"http://127.0.0.1:{am_port}",
        prometheus_auth=login(resolved_compose, "prometheus_password"),
        alertmanager_auth=login(resolved_compose, "alertmanager_password"),
        prometheus_port=prom_port,
        alertmanager_port=am_port,
    )
    try:
        for process, url, auth in (
            (am, env.alertmanager, env.alertmanager_auth),
            (pm, env.prometheus, env.prometheus_auth),
        ):

            def ready(process=process, url=url, auth=auth) -> bool:
                process.check_alive(process.argv[0])
                return requests.get(f"{url}/-/ready", auth=auth, timeout=2).status_code == 200

            wait_for(ready, 60, f"{url} to be ready", interval=0.1)
        yield env
    finally:
        pm.stop()
        am.stop()


def test_compose_turns_the_lifecycle_api_off(resolved_compose: ResolvedCompose, monitoring: Monitoring):
    assert not any("lifecycle" in arg for arg in resolved_compose.services["prometheus"]["command"])
    # even with the login, a page cannot shut Prometheus down or reload it
    for path in ("/-/quit", "/-/reload"):
        r = requests.post(monitoring.prometheus + path, auth=monitoring.prometheus_auth, timeout=5)
        assert r.status_code == 403 and "Lifecycle API is not enabled" in r.text
    assert requests.get(monitoring.prometheus + "/-/healthy", auth=monitoring.prometheus_auth, timeout=5).ok


@pytest.mark.parametrize(
    ("server", "method", "path"),
    [
        ("prometheus", "GET", "/api/v1/query?query=up"),
        ("prometheus", "GET", "/-/healthy"),
        ("prometheus", "GET", "/graph"),
        ("prometheus", "POST", "/api/v1/admin/tsdb/snapshot"),
        ("alertmanager", "GET", "/api/v2/alerts"),
        ("alertmanager", "POST", "/api/v2/silences"),
        ("alertmanager", "GET", "/#/alerts"),
    ],
)
def test_nothing_answers_without_the_login(monitoring: Monitoring, server: str, method: str, path: str):
    url = getattr(monitoring, server) + path
    user, password = getattr(monitoring, f"{server}_auth")
    assert requests.request(method, url, timeout=5).status_code == 401
    assert requests.request(method, url, auth=(user, password + "x"), timeout=5).status_code == 401
    assert requests.request(method, url, auth=("nobody", password), timeout=5).status_code == 401
    other = "alertmanager" if server == "prometheus" else "prometheus"
    assert (
        requests.request(method, url, auth=getattr(monitoring, f"{other}_auth"), timeout=5).status_code == 401
    )


def test_prometheus_logs_in_to_scrape_and_to_deliver_alerts(monitoring: Monitoring):
    def targets_up() -> bool:
        r = requests.get(
            f"{monitoring.prometheus}/api/v1/targets", auth=monitoring.prometheus_auth, timeout=5
        )
        active = r.json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active} == {"alertmanager": "up", "prometheus": "up"}

    wait_for(targets_up, 30, "Prometheus to scrape itself and Alertmanager with their logins")

    def delivered() -> bool:
        r = requests.get(
            f"{monitoring.alertmanager}/api/v2/alerts", auth=monitoring.alertmanager_auth, timeout=5
        )
        return any(a["labels"]["alertname"] == "AlwaysFiring" for a in r.json())

    wait_for(delivered, 30, "Prometheus to deliver an alert to Alertmanager with its login")


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH of busybox's applets only: the tools the prom/* images have."""
    busybox = require_binary("busybox")
    applets = tmp_path_factory.mktemp("busybox")
    for name in ("sh", "cat", "base64", "tr", "printf", "nc", "head", "grep"):
        (applets / name).symlink_to(busybox)
    return str(applets)


@pytest.mark.parametrize(
    ("service", "port_attr"), [("prometheus", "prometheus_port"), ("alertmanager", "alertmanager_port")]
)
def test_the_healthchecks_log_in_without_a_password_in_any_command_line(
    resolved_compose: ResolvedCompose,
    monitoring: Monitoring,
    busybox_path: str,
    service: str,
    port_attr: str,
    tmp_path: Path,
):
    kind, script = resolved_compose.services[service]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # docker-compose prints $$ as it was written; the engine gets a single $
    script = script.replace("$$", "$")
    container_port = {"prometheus": 9090, "alertmanager": 9093}[service]
    files = secret_files(resolved_compose, service)
    password_file = f"/run/secrets/{service}_password"
    assert password_file in files
    # the secret is read by `cat` from its file: nothing but the path is ever an argument
    assert re.search(r"cat " + re.escape(password_file), script)
    here = outside(script, files).replace(
        f"127.0.0.1 {container_port}", f"127.0.0.1 {getattr(monitoring, port_attr)}"
    )
    run = subprocess.run(
        [f"{busybox_path}/sh", "-c", here], env={"PATH": busybox_path}, capture_output=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    failing = here.replace(str(files[password_file]), str(wrong))
    run = subprocess.run(
        [f"{busybox_path}/sh", "-c", failing], env={"PATH": busybox_path}, capture_output=True, timeout=30
    )
    assert run.returncode != 0


def test_grafana_logs_in_to_prometheus_with_the_secret_it_is_given(resolved_compose: ResolvedCompose):
    text = (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    (source,) = yaml.safe_load(text)["datasources"]
    assert source["basicAuth"] is True and source["basicAuthUser"] == "admin"
    (path,) = re.findall(r"\$__file\{(.+?)\}", source["secureJsonData"]["basicAuthPassword"])
    assert path in secret_files(resolved_compose, "grafana")
    assert secret_files(resolved_compose, "grafana")[path].name == "prometheus_password.txt"


def test_amtool_in_the_container_logs_in_with_the_mounted_http_config(
    resolved_compose: ResolvedCompose, monitoring: Monitoring, tmp_path: Path
):
    mounts = {v.split(":")[1]: v.split(":")[0] for v in resolved_compose.services["alertmanager"]["volumes"]}
    http_config = Path(mounts["/etc/alertmanager/amtool-http.yml"])
    local = tmp_path / "amtool-http.yml"
    local.write_text(outside(http_config.read_text(), secret_files(resolved_compose, "alertmanager")))
    amtool = [require_binary("amtool"), f"--alertmanager.url={monitoring.alertmanager}", "silence", "query"]
    assert subprocess.run(amtool, capture_output=True, timeout=30).returncode != 0  # no login: refused
    run = subprocess.run([*amtool, f"--http.config.file={local}"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ID")


def test_the_exporter_asks_prometheus_for_its_login_and_its_healthcheck_has_it(
    resolved_compose: ResolvedCompose, tmp_path: Path
):
    exporter = resolved_compose.services["stackmedic-exporter"]
    files = secret_files(resolved_compose, "stackmedic-exporter")
    web = outside(flags(resolved_compose, "stackmedic-exporter")["web.config.file"], files)
    (tmp_path / "exporter.yml").write_text("system:\n  filesystems: [/]\n")
    port = free_port()
    program = Path(sys.executable).parent / "stackmedic-exporter"
    argv = [
        str(program),
        f"--config.file={tmp_path / 'exporter.yml'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web}",
    ]
    process = Process(argv, tmp_path / "exporter.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/-/healthy", timeout=2).status_code == 401, 30, "the exporter")
        # the credentials Prometheus scrapes it with (prometheus.yml), read from the same secret
        auth = scrape_login(resolved_compose, "stackmedic-exporter")
        assert requests.get(f"{url}/metrics", auth=auth, timeout=10).status_code == 200
        assert requests.get(f"{url}/", timeout=10).status_code == 401
        # the healthcheck, as compose runs it, with the port of this run
        kind, *check = exporter["healthcheck"]["test"]
        assert kind == "CMD" and check[:2] == ["python", "-c"]
        code = outside(check[2], files).replace("127.0.0.1:9877", f"127.0.0.1:{port}")
        assert "/run/secrets/metrics_password" in check[2] and "/run/secrets" not in code
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
    finally:
        process.stop()


def test_the_receiver_asks_for_a_login_and_prometheus_and_its_healthcheck_have_one(
    resolved_compose: ResolvedCompose, tmp_path: Path
):
    receiver = resolved_compose.services["stackmedic-receiver"]
    files = secret_files(resolved_compose, "stackmedic-receiver")
    web = outside(flags(resolved_compose, "stackmedic-receiver")["web.config.file"], files)
    token_file = files["/run/secrets/receiver_webhook_token"]
    operator_file = files["/run/secrets/receiver_operator_token"]
    # compose's own auth section (its named tokens), with the secret files of this machine
    shipped = yaml.safe_load((REPO / "deploy/compose/receiver.yml").read_text())
    auth = yaml.safe_load(outside(yaml.safe_dump(shipped["auth"]), files))
    (tmp_path / "receiver.yml").write_text(
        yaml.safe_dump({"auth": auth, "dry_run": True, "store": {"path": str(tmp_path / "r.db")}})
    )
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "stackmedic-receiver"),
        f"--config.file={tmp_path / 'receiver.yml'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web}",
    ]
    process = Process(argv, tmp_path / "receiver.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/-/healthy", timeout=2).status_code == 401, 30, "the receiver")
        for path in ("/", "/api/v1/status", "/api/v1/actions", "/metrics"):
            assert requests.get(f"{url}{path}", timeout=10).status_code == 401, path
        # Prometheus scrapes it with the user and password file of prometheus.yml
        scrape = scrape_login(resolved_compose, "stackmedic-receiver")
        assert requests.get(f"{url}/metrics", auth=scrape, timeout=10).status_code == 200
        # people read the page as admin, with the password generate.sh wrote beside the hash
        admin = login(resolved_compose, "receiver_admin_password")
        assert requests.get(f"{url}/", auth=admin, timeout=10).status_code == 200
        assert requests.get(f"{url}/", auth=("admin", "wrong"), timeout=10).status_code == 401
        # a login of the web config reads, it never writes; the webhook takes the bearer token
        pause = {"target": "petclinic", "duration": "5m", "author": "t", "reason": "r"}
        assert requests.post(f"{url}/api/v1/pause", json=pause, auth=admin, timeout=10).status_code == 401
        bearer = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        alert = {
            "status": "firing",
            "labels": {"alertname": "Unhealed"},
            "startsAt": "2026-01-01T10:00:00Z",
            "fingerprint": "abc123",
        }
        hook = {"version": "4", "status": "firing", "alerts": [alert]}
        assert requests.post(f"{url}/api/v1/alerts", json=hook, headers=bearer, timeout=10).status_code == 200
        # the token Alertmanager is given is the named token `alertmanager`; people's is `operator`
        operator = {"Authorization": f"Bearer {operator_file.read_text().strip()}"}
        pause = {"target": "petclinic", "duration": "5m", "reason": "test"}
        assert (
            requests.post(f"{url}/api/v1/pause", json=pause, headers=operator, timeout=10).status_code == 200
        )
        audit = requests.get(f"{url}/api/v1/actions", auth=admin, timeout=10).json()["actions"]
        assert sorted((a["decision"], a["author"]) for a in audit) == [
            ("no_rule", "alertmanager"),
            ("pause", "operator"),
        ]
        am = [s for s in resolved_compose.services["alertmanager"]["secrets"] if "receiver" in s["source"]]
        assert [s["source"] for s in am] == ["receiver_webhook_token"]
        # the healthcheck, as compose runs it, with the port of this run
        kind, *check = receiver["healthcheck"]["test"]
        assert kind == "CMD" and check[:2] == ["python", "-c"]
        code = outside(check[2], files).replace("127.0.0.1:9878", f"127.0.0.1:{port}")
        assert "/run/secrets/receiver_webhook_token" in check[2] and "/run/secrets" not in code
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
    finally:
        process.stop()
