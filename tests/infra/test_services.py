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


def test_chromium_runs_a_page_script_and_reports_its_errors(chromium, tmp_path):
    import http.server
    import threading

    (tmp_path / "index.html").write_text(
        '<!doctype html><meta name="viewport" content="width=device-width"><title>t</title><p id="out">static</p><script src="app.js"></script>'
    )
    (tmp_path / "app.js").write_text(
        "document.getElementById('out').textContent = 'from script ' + window.innerWidth;\n"
        "setTimeout(() => { throw new Error('boom on purpose'); }, 10);\n"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = chromium.page(width=390, height=800, mobile=True)
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert page.wait("document.getElementById('out').textContent.startsWith('from')") is True
        assert page.text("#out") == "from script 390"
        wait_for(lambda: page.errors, 10, "the thrown error to be reported")
        assert "boom on purpose" in page.errors[0]
        shot = page.screenshot(tmp_path / "shot.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()
        server.shutdown()
