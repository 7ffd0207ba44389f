"""Every query of both dashboards, evaluated by a real Prometheus that scrapes the real
stackmedic-exporter and stackmedic-receiver, started here on 127.0.0.1.

The exporter watches real things: a container of a private dockerd serving HTTP (up), a
compose service with no container (down), a MariaDB database with a full, an empty and a
missing table, a MariaDB server that is down (its tables unknown), this process's own
process group and one that matches nothing, an open and a closed port, and a backup folder.
The receiver gets Alertmanager webhooks and runs builds on the Jenkins stand-in. Prometheus
evaluates the shipped alert rules (time-compressed by deploy/prometheus/compress.py) so
that ALERTS holds firing alerts.

Then each panel's queries go through /api/v1/query as Grafana would send them
(tests/deploy_stack/dashboards.py: macros and variables substituted): no query may fail,
and every panel must have data. Repeated panels are evaluated once per variable value.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from harness.services import DockerEngine, MariaDB, Process, Prometheus, free_port, wait_for
from tests.deploy_stack.dashboards import (
    all_dashboards,
    annotation_queries,
    label_values_query,
    panels,
    substitute,
    variables,
)

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_urlsafe(24)
DASHBOARDS = all_dashboards()


@dataclass
class Stack:
    prometheus: Prometheus
    exporter_url: str
    receiver_url: str
    database_up: str
    database_down: str


def write_backup(folder: Path, database: str, created: datetime, verified: bool) -> None:
    """One complete backup in the format of docs/design.md (dump, then manifest)."""
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    name = f"{database}-{stamp}.sql.gz"
    (folder / database).mkdir(parents=True, exist_ok=True)
    dump = gzip.compress(b"CREATE TABLE owners (id INT);\n")
    (folder / database / name).write_bytes(dump)
    iso = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = {
        "format": 1,
        "database": database,
        "file": name,
        "created": iso,
        "size_bytes": len(dump),
        "sha256": hashlib.sha256(dump).hexdigest(),
        "tables": {"owners": 0},
        "verified": {"at": iso, "ok": True, "reason": ""} if verified else None,
    }
    (folder / database / f"{name}.json").write_text(json.dumps(manifest))


def exporter_config(
    base: Path, mariadb: MariaDB, docker: DockerEngine, ports: dict[str, int], db: str
) -> dict:
    backups = base / "backups"
    now = datetime.now(UTC)
    write_backup(backups, "dash_app", now - timedelta(hours=2), verified=True)
    write_backup(backups, "dash_app", now - timedelta(minutes=5), verified=False)
    (base / "exporter.password").write_text("exporter-pw")
    return {
        "scrape": {"timeout": "4s"},
        "system": {"filesystems": ["/"]},
        "containers": {
            "docker_url": docker.base_url,
            "services": [{"name": "petclinic"}, {"name": "wordpress"}],
        },
        "docker_space": {"docker_url": docker.base_url, "refresh_interval": "1h"},
        "processes": {
            "groups": [
                {"group": "pytest", "cmdline": "pytest"},
                {"group": "nothing", "name": "^no-such-program-anywhere$"},
            ]
        },
        "http": [
            {"name": "petclinic", "url": f"http://127.0.0.1:{ports['petclinic']}/", "keyword": "Welcome"}
        ],
        "mysql": [
            {
                "name": "up",
                "host": "127.0.0.1",
                "port": mariadb.port,
                "user": "dash_exporter",
                "password_file": str(base / "exporter.password"),
                "tables": {db: ["owners", "pets", "visits"]},
            },
            {
                "name": "down",
                "host": "127.0.0.1",
                "port": ports["closed"],
                "user": "nobody",
                "password_file": str(base / "exporter.password"),
                "timeout": "1s",
                "tables": {"dash_gone": ["owners"]},
            },
            {
                "name": "refused",  # the server answers, the exporter's login is refused
                "host": "127.0.0.1",
                "port": mariadb.port,
                "user": "dash_no_such_user",
                "password_file": str(base / "exporter.password"),
                "tables": {"dash_refused": ["owners"]},
            },
        ],
        "ports": {
            "targets": [
                {"name": "petclinic", "port": ports["petclinic"]},
                {"name": "closed", "port": ports["closed"]},
            ]
        },
        "backups": {"directory": str(backups), "databases": ["dash_app"]},
    }


def receiver_config(base: Path, jenkins) -> dict:
    (base / "webhook.token").write_text(TOKEN)
    (base / "jenkins.token").write_text(jenkins.token)
    shipped = yaml.safe_load((REPO / "deploy" / "compose" / "receiver.yml").read_text())
    return {
        "auth": {"bearer_token_file": str(base / "webhook.token")},
        "store": {"type": "sqlite", "path": str(base / "receiver.db")},
        "jenkins": {
            "url": jenkins.url,
            "user": jenkins.user,
            "api_token_file": str(base / "jenkins.token"),
            "poll_interval": "100ms",
        },
        # the shipped rules and breaker, as compose runs them
        "breaker": shipped["breaker"],
        "rules": shipped["rules"],
    }


def prometheus_config(exporter: str, receiver: str, prometheus_port: int) -> str:
    def job(name: str, target: str) -> dict:
        return {"job_name": name, "scrape_interval": "1s", "static_configs": [{"targets": [target]}]}

    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["*.rules.yml"],
            "scrape_configs": [
                job("stackmedic-exporter", exporter),
                job("stackmedic-receiver", receiver),
                job("prometheus", f"127.0.0.1:{prometheus_port}"),
            ],
        }
    )


def compressed_rules() -> dict[str, str]:
    from deploy.prometheus.compress import compress_rules, load_shipped_rules

    return {
        f"{name}.rules.yml": yaml.safe_dump(compress_rules(doc, 5))
        for name, doc in load_shipped_rules().items()
    }


def webhook(receiver: str, status: str, starts_at: datetime) -> requests.Response:
    ends = "0001-01-01T00:00:00Z" if status == "firing" else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "alertname": "StackAppDown",
        "compose_service": "petclinic",
        "remediation": "restart",
        "severity": "critical",
        "job": "stackmedic-exporter",
        "instance": "127.0.0.1:9877",
    }
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "App petclinic is down; restarting it."},
        "startsAt": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endsAt": ends,
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    body = {
        "version": "4",
        "groupKey": '{}/{remediation=~".+"}:{alertname="StackAppDown", compose_service="petclinic"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "stackmedic-remediation",
        "groupLabels": {"alertname": "StackAppDown", "compose_service": "petclinic"},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }
    return requests.post(
        f"{receiver}/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )


def has(prom: Prometheus, expr: str) -> bool:
    return bool(prom.query(expr))


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB, docker_engine: DockerEngine
) -> Iterator[Stack]:
    from harness.jenkins_standin import JenkinsStandIn

    base = tmp_path_factory.mktemp("dash-live")
    started: list = []
    try:
        db = f"dash_{secrets.token_hex(4)}"
        mariadb.execute(
            f"CREATE DATABASE {db}",
            f"CREATE TABLE {db}.owners (id INT)",
            f"INSERT INTO {db}.owners VALUES (1)",
            f"CREATE TABLE {db}.pets (id INT)",
        )
        mariadb.create_user("dash_exporter", "exporter-pw", [f"SELECT ON {db}.*", "PROCESS ON *.*"])
        www = base / "www"
        www.mkdir()
        (www / "index.html").write_text("<h1>Welcome to the pet clinic</h1>")
        ports = {"petclinic": free_port(), "closed": free_port()}
        container = docker_engine.run_http(
            f"dash-petclinic-{secrets.token_hex(3)}", ports["petclinic"], www, "petclinic"
        )
        started.append(lambda: container.remove(force=True))
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{ports['petclinic']}/", timeout=1).ok,
            30,
            "the app container",
        )

        jenkins = JenkinsStandIn(
            jobs={"stackmedic-restart": None, "stackmedic-restore": None},
            params={"stackmedic-restart": ["SERVICE", "STACKMEDIC_ACTION_ID"]},
        ).start()
        started.append(jenkins.stop)

        exporter_port, receiver_port, prom_port = free_port(), free_port(), free_port()
        (base / "exporter.yml").write_text(
            yaml.safe_dump(exporter_config(base, mariadb, docker_engine, ports, db))
        )
        (base / "receiver.yml").write_text(yaml.safe_dump(receiver_config(base, jenkins)))
        exporter = Process(
            [sys.executable, "-m", "stackmedic.exporter", f"--config.file={base / 'exporter.yml'}",
             f"--web.listen-address=127.0.0.1:{exporter_port}"],
            base / "exporter.log", cwd=REPO,
        )  # fmt: skip
        started.append(exporter.stop)
        receiver = Process(
            [sys.executable, "-m", "stackmedic.receiver", f"--config.file={base / 'receiver.yml'}",
             f"--web.listen-address=127.0.0.1:{receiver_port}"],
            base / "receiver.log", cwd=REPO,
        )  # fmt: skip
        started.append(receiver.stop)
        exporter_url, receiver_url = f"http://127.0.0.1:{exporter_port}", f"http://127.0.0.1:{receiver_port}"
        for name, process, url in (
            ("exporter", exporter, exporter_url),
            ("receiver", receiver, receiver_url),
        ):

            def ready(process=process, url=url, name=name) -> bool:
                process.check_alive(name)
                return requests.get(f"{url}/-/healthy", timeout=2).ok

            wait_for(ready, 60, f"stackmedic-{name}")

        prom = Prometheus(
            base / "prometheus",
            prometheus_config(f"127.0.0.1:{exporter_port}", f"127.0.0.1:{receiver_port}", prom_port),
            compressed_rules(),
            port=prom_port,
        ).start()
        started.append(prom.stop)
        wait_for(prom.targets_up, 60, "Prometheus to scrape the exporter and the receiver", interval=0.5)
        # two scrapes of the receiver's counters at 0 first, so that increase() sees the actions
        wait_for(
            lambda: has(prom, "count_over_time(stackmedic_receiver_queue_depth[1m]) >= 3"), 30, "scrapes"
        )

        incident = datetime.now(UTC) - timedelta(seconds=40)
        assert webhook(receiver_url, "firing", incident).status_code == 200
        wait_for(lambda: jenkins.finished("stackmedic-restart"), 30, "the restart build")
        wait_for(
            lambda: has(prom, 'stackmedic_receiver_last_action_timestamp_seconds{result="SUCCESS"}'),
            30,
            "the finished build in Prometheus",
        )
        assert webhook(receiver_url, "resolved", incident).status_code == 200
        wait_for(
            lambda: has(prom, "increase(stackmedic_receiver_remediation_duration_seconds_count[1m]) > 0"),
            30,
            "the recovery in Prometheus",
        )
        # the missing table fires StackDatabaseTablesMissing (compressed for: 2 s)
        wait_for(lambda: has(prom, 'ALERTS{alertstate="firing"}'), 60, "a firing alert")
        yield Stack(prom, exporter_url, receiver_url, db, "dash_gone")
    finally:
        for stop in reversed(started):
            stop()


def variable_values(prom: Prometheus, definition: str, values: dict[str, str]) -> list[str]:
    """A `label_values(selector, label)` variable, as Grafana resolves it (series API)."""
    selector, label = label_values_query(definition)
    r = requests.get(
        f"{prom.url}/api/v1/series",
        params={"match[]": substitute(selector, values), "start": time.time() - 3600},
        timeout=10,
    ).json()
    assert r["status"] == "success", r
    return sorted({s[label] for s in r["data"] if label in s})


def repeat_variable(dashboard: dict, panel: dict) -> str | None:
    """The variable a panel repeats over, itself or through the row it sits under."""
    if panel.get("repeat"):
        return panel["repeat"]
    current = None
    for p in panels(dashboard):
        if p["type"] == "row":
            current = p.get("repeat")
        if p is panel:
            return current
    return None


CASES = [(name, p["title"]) for name, d in DASHBOARDS.items() for p in panels(d) if p["type"] != "row"]


@pytest.fixture(scope="module")
def resolved(stack: Stack) -> dict[str, dict[str, list[str]]]:
    """Each dashboard's query variables resolved against the live Prometheus."""
    out = {}
    for name, d in DASHBOARDS.items():
        values = {"instance": ".+", "database": ".+"}
        out[name] = {}
        for v in variables(d).values():
            if v["type"] == "query":
                out[name][v["name"]] = variable_values(stack.prometheus, v["definition"], values)
    return out


def test_variables_resolve_to_what_the_exporter_exposes(stack: Stack, resolved):
    health, remediation = resolved["stack-health"], resolved["remediation"]
    assert health["instance"] == [stack.exporter_url.removeprefix("http://")]
    assert set(health["database"]) == {stack.database_up, "dash_gone", "dash_refused"}
    assert remediation["database"] == ["dash_app"]


@pytest.mark.parametrize(("dashboard", "title"), CASES, ids=[f"{d}/{t}" for d, t in CASES])
def test_panel_queries_succeed_and_have_data(stack: Stack, resolved, dashboard: str, title: str):
    d = DASHBOARDS[dashboard]
    (panel,) = [p for p in panels(d) if p["title"] == title]
    repeat = repeat_variable(d, panel)
    # Grafana's "All" is the variable's allValue; a repeated panel gets one value per copy
    base = {name: ".+" for name in resolved[dashboard]} | {"datasource": "prometheus", "runbooks": "x"}
    runs = [base | {repeat: value} for value in resolved[dashboard][repeat]] if repeat else [base]
    assert runs, f"{title}: the variable {repeat} has no value"
    for values in runs:
        results = [stack.prometheus.query(substitute(t["expr"], values)) for t in panel["targets"]]
        assert any(results), f"{title} with {values}: no data"


def test_annotations_evaluate(stack: Stack):
    for d in DASHBOARDS.values():
        for _, expr in annotation_queries(d):
            # a remediation happened during the fixture: the marker is there
            assert stack.prometheus.query(substitute(expr, {}))


def cells(
    stack: Stack, dashboard: str, title: str, legend_label: str, values: dict[str, str]
) -> dict[str, float]:
    (panel,) = [p for p in panels(DASHBOARDS[dashboard]) if p["title"] == title]
    result = stack.prometheus.query(substitute(panel["targets"][0]["expr"], values))
    return {r["metric"][legend_label]: float(r["value"][1]) for r in result}


def test_cells_show_what_is_really_up_down_and_unknown(stack: Stack):
    all_ = {"instance": ".+", "database": ".+"}
    assert cells(stack, "stack-health", "Apps", "target", all_) == {"petclinic": 1}
    assert cells(stack, "stack-health", "Container services", "compose_service", all_) == {
        "petclinic": 1,
        "wordpress": 0,
    }
    assert cells(stack, "stack-health", "Process groups", "group", all_) == {"pytest": 1, "nothing": 0}
    assert cells(stack, "stack-health", "Ports", "name", all_) == {"petclinic": 1, "closed": 0}
    assert cells(stack, "stack-health", "Database servers", "server", all_) == {
        "up": 1,
        "down": 0,
        "refused": 0.5,
    }
    # the Active Dashboard's tables: OK 2, EMPTY 1, MISSING 0, and grey while the server is down
    up = cells(stack, "stack-health", "Tables of $database", "table", all_ | {"database": stack.database_up})
    assert up == {"owners": 2, "pets": 1, "visits": 0}
    down = cells(
        stack, "stack-health", "Tables of $database", "table", all_ | {"database": stack.database_down}
    )
    assert down == {"owners": -1}


def test_remediation_panels_show_the_action_that_happened(stack: Stack):
    values = {"instance": ".+", "database": "dash_app"}
    (panel,) = [p for p in panels(DASHBOARDS["remediation"]) if p["title"] == "Remediation builds by result"]
    builds = {
        (r["metric"]["rule"], r["metric"]["jenkins_job"], r["metric"]["result"]): float(r["value"][1])
        for r in stack.prometheus.query(substitute(panel["targets"][0]["expr"], values))
    }
    assert builds[("restart-app", "stackmedic-restart", "SUCCESS")] > 0
    assert builds[("restore-database", "stackmedic-restore", "SUCCESS")] == 0
    recovered = cells(stack, "remediation", "Incidents recovered", "rule", values)
    assert recovered.get("restart-app", 0) > 0
    newest = cells(stack, "remediation", "Newest backup", "database", values)["dash_app"]
    verified = cells(stack, "remediation", "Newest verified backup", "database", values)["dash_app"]
    assert 4 * 60 < newest < 10 * 60 and 2 * 3600 - 60 < verified < 2 * 3600 + 600


def test_a_refused_login_is_not_a_database_down(stack: Stack):
    """The real exporter and the shipped rules: a server refusing the exporter's login is
    StackDatabaseLoginFailed, never StackDatabaseDown (which would stop the apps' restarts)."""

    def alerts(name: str) -> dict[str, str]:
        found = stack.prometheus.query(f'ALERTS{{alertname="{name}"}}')
        return {r["metric"]["server"]: r["metric"]["alertstate"] for r in found}

    wait_for(
        lambda: "refused" in alerts("StackDatabaseLoginFailed"), 60, "StackDatabaseLoginFailed for 'refused'"
    )
    wait_for(lambda: "down" in alerts("StackDatabaseDown"), 60, "StackDatabaseDown for 'down'")
    assert set(alerts("StackDatabaseDown")) == {"down"}
    assert set(alerts("StackDatabaseLoginFailed")) == {"refused"}
    reason = stack.prometheus.query('stackmedic_mysql_failure_reason{server="refused"} == 1')
    assert [r["metric"]["reason"] for r in reason] == ["auth"]
