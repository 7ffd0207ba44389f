"""`stackmedic-exporter --web.config.file`: TLS with client certificates and basic auth,
against the real program with a real TLS client."""

from __future__ import annotations

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
