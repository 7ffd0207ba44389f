"""A full scrape of every check kind against real targets: promtool finds nothing to say."""

from __future__ import annotations

import subprocess

import pytest
import requests
from stackmedic.exporter.checks import build_checks, declared_metrics
from stackmedic.exporter.collector import ScrapeRunner
from stackmedic.exporter.config import parse
from stackmedic.exporter.web import make_app, serve

from harness.kube_standin import KubeStandIn
from harness.services import free_port, require_binary


@pytest.fixture
def full_config(mariadb, docker_engine, web_target, hung_server, tmp_path, monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("Welcome\n")
    app_port = free_port()
    docker_engine.run_http("sm-full-petclinic", app_port, www, compose_service="petclinic")
    (tmp_path / "backups" / "petclinic").mkdir(parents=True)
    monkeypatch.setenv("SM_FULL_PW", mariadb.root_password)
    kube = KubeStandIn().start()
    kube.add_deployment("petclinic")
    (tmp_path / "kube-token").write_text(kube.token)
    yield {
        "system": {"filesystems": ["/", str(tmp_path / "not-mounted")]},
        "processes": {
            "groups": [
                {"group": "mariadbd", "name": "^mariadbd$"},
                {"group": "none", "name": "^nothing-at-all$"},
            ]
        },
        "ports": {
            "discover": True,
            "targets": [
                {"name": "mysql", "port": mariadb.port, "program": "mariadbd"},
                {"name": "petclinic", "port": app_port, "program": "busybox|httpd"},
            ],
        },
        "containers": {
            "docker_url": docker_engine.base_url,
            "services": [{"name": "petclinic"}, {"name": "wordpress"}],
        },
        "docker_space": {"docker_url": docker_engine.base_url},
        "http": [
            {"name": "petclinic", "url": f"http://127.0.0.1:{app_port}/", "keyword": "Welcome"},
            {"name": "error", "url": web_target.url("/error")},
            {"name": "hung", "url": hung_server.url(), "timeout": "300ms"},
        ],
        "mysql": [
            {
                "name": "stack",
                "host": mariadb.host,
                "port": mariadb.port,
                "user": "root",
                "password_env": "SM_FULL_PW",
                "tables": {"mysql": ["user", "no_such_table"]},
                "queries": [{"name": "root_exists", "sql": "SELECT 1 FROM mysql.user WHERE user = 'root'"}],
            }
        ],
        "backups": {"directory": str(tmp_path / "backups"), "databases": ["petclinic"]},
        "kubernetes": {
            "api_url": kube.url,
            "namespace": kube.namespace,
            "token_file": str(tmp_path / "kube-token"),
            "workloads": [{"kind": "Deployment", "name": "petclinic"}],
        },
    }
    kube.stop()
    docker_engine.remove_all_containers()


def test_full_scrape_passes_promtool(full_config):
    promtool = require_binary("promtool")
    checks = build_checks(parse(full_config))
    runner = ScrapeRunner(checks, version="0.1.0")
    for check in checks:
        check.start()
    server, thread = serve(make_app(runner), "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        text = requests.get(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "5"}, timeout=30).text
    finally:
        server.shutdown()
        server.server_close()
        runner.close()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # every metric of the contract is in it (docker space may not have refreshed yet: it is
    # still exported, at 0)
    for spec in declared_metrics():
        assert f"\n{spec.full_name}" in text, spec.full_name
    assert 'stackmedic_http_up{target="petclinic"} 1.0' in text
    assert 'stackmedic_container_running{compose_service="petclinic"} 1.0' in text
    assert 'stackmedic_mysql_up{server="stack"} 1.0' in text
    assert (
        'stackmedic_workload_replicas_available{kind="Deployment",namespace="stackmedic",workload="petclinic"} 2.0'
        in text
    )
    assert 'stackmedic_mysql_table_present{database="mysql",server="stack",table="no_such_table"} 0.0' in text
    assert 'stackmedic_tcp_port_listener_info{name="mysql",port="' in text
    assert 'stackmedic_check_failure_reason{check="http/hung",reason="timeout"} 1.0' in text
    for check in checks:
        if check.check_label != "http/hung":
            assert f'stackmedic_check_success{{check="{check.check_label}"}} 1.0' in text
