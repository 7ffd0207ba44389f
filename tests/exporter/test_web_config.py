"""`stackmedic-exporter --web.config.file`: TLS with client certificates and basic auth,
against the real program with a real TLS client."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from harness.services import Process, free_port, wait_for
from tests.security.certs import Certs, make_certs

PASSWORD = "scrape-password-1"
EXPORTER = str(Path(sys.executable).parent / "stackmedic-exporter")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def secured(certs: Certs, tmp_path: Path) -> Iterator[str]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    (tmp_path / "exporter.yml").write_text("system:\n  filesystems: [/]\n")
    port = free_port()
    process = Process(
        [
            EXPORTER,
            f"--config.file={tmp_path / 'exporter.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
        ],
        tmp_path / "exporter.log",
    )
    url = f"https://127.0.0.1:{port}"
    client = (str(certs.client_cert), str(certs.client_key))
    try:
        wait_for(
            lambda: (
                requests.get(f"{url}/-/healthy", verify=str(certs.ca), cert=client, timeout=2).status_code
                == 401
            ),
            30,
            "the exporter to answer over TLS",
        )
        yield url
    finally:
        process.stop()


def test_scrape_over_tls_with_a_client_certificate_and_the_password(secured: str, certs: Certs):
    client = (str(certs.client_cert), str(certs.client_key))
    r = requests.get(
        f"{secured}/metrics", verify=str(certs.ca), cert=client, auth=("prometheus", PASSWORD), timeout=10
    )
    assert r.status_code == 200 and "stackmedic_build_info" in r.text
    r = requests.get(f"{secured}/metrics", verify=str(certs.ca), cert=client, timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    r = requests.get(
        f"{secured}/metrics", verify=str(certs.ca), cert=client, auth=("prometheus", "wrong"), timeout=10
    )
    assert r.status_code == 401
    with pytest.raises(requests.exceptions.ConnectionError):  # no client certificate
        requests.get(f"{secured}/metrics", verify=str(certs.ca), auth=("prometheus", PASSWORD), timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP
        requests.get(secured.replace("https:", "http:") + "/metrics", timeout=10)


def test_a_bad_web_config_is_a_config_error(tmp_path: Path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: plain-text-password\n")
    run = subprocess.run(
        [EXPORTER, f"--web.config.file={web}", "--config.check"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "config error: --web.config.file basic_auth_users.prometheus: not a bcrypt hash (value not shown; "
        "make one with `python -m stackmedic.webconfig hash`)"
    ]
    assert "plain-text-password" not in run.stderr


def test_failed_logins_are_counted_by_reason_and_logged_once_a_minute(
    secured: str, certs: Certs, tmp_path: Path
):
    # the apps' network reaches the exporter: guessing its password must leave a trace
    client = (str(certs.client_cert), str(certs.client_key))
    ca = str(certs.ca)

    def failures() -> dict[str, float]:
        text = requests.get(
            f"{secured}/metrics", verify=ca, cert=client, auth=("prometheus", PASSWORD), timeout=10
        ).text
        found = re.findall(r'stackmedic_exporter_auth_failures_total\{reason="(\w+)"\} (\S+)', text)
        return {reason: float(value) for reason, value in found}

    before = failures()
    for auth in (None, ("prometheus", "guess-1"), ("prometheus", "guess-2"), ("nobody", "guess-3")):
        r = requests.get(f"{secured}/metrics", verify=ca, cert=client, auth=auth, timeout=10)
        assert r.status_code == 401
    r = requests.get(
        f"{secured}/", verify=ca, cert=client, headers={"Authorization": "Basic !!!"}, timeout=10
    )
    assert r.status_code == 401
    after = failures()
    assert {k: after[k] - before[k] for k in after} == {
        "missing": 1,
        "malformed": 1,
        "bad_credentials": 3,
        "busy": 0,
    }
    log = (tmp_path / "exporter.log").read_text()
    failed = [line for line in log.splitlines() if "authentication failed" in line]
    # the first one (the fixture's readiness probe), with who and where; the others within
    # the minute are counted, not logged
    assert len(failed) == 1
    assert "level=warn" in failed[0] and "reason=missing" in failed[0]
    assert "client=127.0.0.1" in failed[0] and "path=/-/healthy" in failed[0]
    assert "guess" not in log
