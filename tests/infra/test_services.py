"""The real services start, answer, and stop by PID: every other test folder relies on them."""

from __future__ import annotations

import os

import requests

from harness.services import free_port, wait_for


def test_mariadb_answers_over_tcp_with_root_password(mariadb):
    assert mariadb.execute("SELECT 1 + 1") == [(2,)]
    assert mariadb.execute("SELECT @@port")[0][0] == mariadb.port


def test_private_mariadb_stops_by_pid(mariadb_factory):
    server = mariadb_factory()
    pid = server.process.pid
    assert server.execute("SELECT 1") == [(1,)]
    server.stop()
    assert not os.path.exists(f"/proc/{pid}")


def test_docker_engine_serves_a_page_from_a_local_container(docker_engine, tmp_path):
    (tmp_path / "index.html").write_text("Welcome to the test clinic")
    port = free_port()
    container = docker_engine.run_http("smoke-web", port, tmp_path, compose_service="smoke")
    try:
        body = wait_for(
            lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2).text, 30, "busybox httpd to serve"
        )
        assert "Welcome" in body
        container.reload()
        assert container.labels["com.docker.compose.service"] == "smoke"
    finally:
        container.remove(force=True)


def test_prometheus_answers_queries(prometheus_factory):
    prom = prometheus_factory("global: {scrape_interval: 1s}\nscrape_configs: []\n")
    assert float(prom.query("vector(2)")[0]["value"][1]) == 2.0


def test_alertmanager_accepts_and_lists_an_alert(alertmanager_factory):
    am = alertmanager_factory("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    r = requests.post(f"{am.url}/api/v2/alerts", json=[{"labels": {"alertname": "Smoke"}}], timeout=5)
    assert r.status_code == 200
    alerts = wait_for(am.alerts, 10, "the alert to be listed")
    assert alerts[0]["labels"]["alertname"] == "Smoke"
