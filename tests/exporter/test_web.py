"""The HTTP side over a real socket: /metrics within the Prometheus deadline, other pages."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
import requests
from stackmedic.exporter.checks.http_check import HttpCheck, HttpTarget
from stackmedic.exporter.checks.system import SystemCheck
from stackmedic.exporter.collector import ScrapeRunner
from stackmedic.exporter.web import make_app, serve


@pytest.fixture
def exporter_url(web_target, hung_server) -> Iterator[str]:
    checks = [
        SystemCheck(["/"]),
        HttpCheck(HttpTarget("ok", web_target.url("/ok"), timeout=5, keyword="Welcome")),
        # its own timeout is long: only the scrape deadline can stop it
        HttpCheck(HttpTarget("hung", hung_server.url(), timeout=30)),
    ]
    runner = ScrapeRunner(checks, version="9.9.9")
    server, thread = serve(make_app(runner, default_timeout=10, margin=0.5), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)
    runner.close()


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start}")


def test_metrics_honour_the_prometheus_scrape_timeout(exporter_url):
    r = requests.get(
        f"{exporter_url}/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=30
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert sample(text, 'stackmedic_check_success{check="http/hung"}') == 0
    assert sample(text, 'stackmedic_check_failure_reason{check="http/hung",reason="timeout"}') == 1
    assert sample(text, 'stackmedic_http_failure_reason{reason="timeout",target="hung"}') == 1
    # the budget was 1.5 s minus the 0.5 s margin; the check was cut there, not at its 30 s
    assert sample(text, 'stackmedic_check_duration_seconds{check="http/hung"}') < 5
    assert sample(text, 'stackmedic_http_up{target="ok"}') == 1
    assert sample(text, 'stackmedic_build_info{version="9.9.9"}') == 1


def test_openmetrics_and_gzip_when_asked(exporter_url):
    headers = {
        "Accept": "application/openmetrics-text; version=1.0.0",
        "Accept-Encoding": "gzip",
        "X-Prometheus-Scrape-Timeout-Seconds": "1",
    }
    r = requests.get(f"{exporter_url}/metrics", headers=headers, timeout=30, stream=True)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    body = gzip.decompress(r.raw.read()).decode()
    assert body.endswith("# EOF\n")
    assert "stackmedic_http_up" in body


def test_landing_health_and_errors(exporter_url):
    r = requests.get(exporter_url + "/", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    assert 'href="/metrics"' in r.text and "http/hung" in r.text
    assert requests.get(exporter_url + "/-/healthy", timeout=10).text == "OK\n"
    assert requests.get(exporter_url + "/-/ready", timeout=10).status_code == 200
    assert requests.get(exporter_url + "/nope", timeout=10).status_code == 404
    r = requests.post(exporter_url + "/metrics", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
