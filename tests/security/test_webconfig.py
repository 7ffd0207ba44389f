"""stackmedic/webconfig.py: exporter-toolkit's --web.config.file, with a real TLS client."""

from __future__ import annotations

import base64
import io
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from harness.services import wait_for
from stackmedic import webconfig
from stackmedic.config import ConfigError
from tests.security.certs import Certs, make_certs

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def problems(data: object, base: Path = Path(".")) -> list[str]:
    with pytest.raises(ConfigError) as info:
        webconfig.parse(data, base)
    return info.value.lines()


def test_no_file_and_an_empty_file_change_nothing(tmp_path: Path):
    assert webconfig.load(None).auth_required is False
    (tmp_path / "web.yml").write_text("basic_auth_users:\ntls_server_config:\n")
    config = webconfig.load(tmp_path / "web.yml")
    assert config.tls is None and not config.auth_required
    assert config.authenticate(None).user == ""


def test_basic_auth_users_accept_the_right_password_only():
    config = webconfig.parse({"basic_auth_users": {"prometheus": HASH}})
    assert config.authenticate(basic("prometheus", PASSWORD)) == webconfig.Login("prometheus")
    assert config.authenticate(basic("prometheus", PASSWORD)).user == "prometheus"  # from the cache
    assert config.authenticate(basic("prometheus", "wrong")).reason == "bad_credentials"
    assert config.authenticate(basic("nobody", PASSWORD)).reason == "bad_credentials"
    assert config.authenticate(basic("prometheus", "x" * 100)).reason == "bad_credentials"
    assert config.authenticate(None).reason == "missing"
    assert config.authenticate("Bearer " + PASSWORD).reason == "malformed"
    assert config.authenticate("Basic !!!").reason == "malformed"
    assert config.authenticate("Basic " + base64.b64encode(b"no-colon").decode()).reason == "malformed"


def test_a_password_pasted_instead_of_its_hash_is_refused_and_never_shown():
    lines = problems({"basic_auth_users": {"admin": "hunter2-plain-password"}})
    assert lines == [
        "config error: basic_auth_users.admin: not a bcrypt hash (value not shown; "
        "make one with `python -m stackmedic.webconfig hash`)"
    ]
    assert "hunter2" not in "\n".join(lines)


def test_every_problem_is_reported_at_once(tmp_path: Path):
    lines = problems(
        {
            "tls_server_config": {"cert_file": "a.crt", "client_auth_type": "RequestClientCert"},
            "http_server_config": {"headers": {"Set-Cookie": "x"}},
            "bogus": 1,
        }
    )
    assert lines == [
        "config error: bogus: unknown key",
        "config error: http_server_config.headers.Set-Cookie: expected one of Content-Security-Policy, "
        "X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security",
        "config error: tls_server_config.client_auth_type: RequestClientCert is not supported: a client "
        "certificate is only accepted verified (use VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
    ]
    assert problems({"tls_server_config": {"cert_file": "a.crt", "client_ca_file": "ca.crt"}}) == [
        "config error: tls_server_config.client_ca_file: client CA given but client_auth_type is NoClientCert",
        "config error: tls_server_config.key_file: required key missing",
    ]
    assert problems({"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": ["x"]}}) == [
        "config error: tls_server_config.cipher_suites: not supported by stackmedic (OpenSSL's defaults apply): remove it"
    ]
    assert problems({"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"}}, tmp_path) == [
        "config error: tls_server_config.cert_file: cannot load the certificate and key: No such file or directory"
    ]


class TLSServer:
    """A one-request-per-connection HTTPS server on 127.0.0.1 using the web config's context."""

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def mtls_server(certs: Certs) -> Iterator[TLSServer]:
    config = webconfig.parse(
        {
            "tls_server_config": {
                "cert_file": certs.server_cert.name,
                "key_file": certs.server_key.name,
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": certs.ca.name,
            }
        },
        base=certs.ca.parent,  # relative paths are relative to the web config file
    )
    assert config.tls is not None
    server = TLSServer(config.tls)
    yield server
    server.close()


def test_tls_with_client_certificates_against_a_real_tls_client(mtls_server: TLSServer, certs: Certs):
    url = f"https://127.0.0.1:{mtls_server.port}/"
    ok = requests.get(
        url, verify=str(certs.ca), cert=(str(certs.client_cert), str(certs.client_key)), timeout=5
    )
    assert ok.text == "ok\n"
    with pytest.raises(requests.exceptions.ConnectionError):  # no client certificate
        requests.get(url, verify=str(certs.ca), timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):  # one from a CA the server does not trust
        requests.get(
            url,
            verify=str(certs.ca),
            cert=(str(certs.other_client_cert), str(certs.other_client_key)),
            timeout=5,
        )
    with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP gets nothing
        requests.get(f"http://127.0.0.1:{mtls_server.port}/", timeout=5)


def test_tls_below_the_minimum_version_is_refused(certs: Certs):
    config = webconfig.parse(
        {
            "tls_server_config": {
                "cert_file": str(certs.server_cert),
                "key_file": str(certs.server_key),
                "min_version": "TLS13",
            }
        }
    )
    server = TLSServer(config.tls)
    try:
        client = ssl.create_default_context(cafile=str(certs.ca))
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            pytest.raises(ssl.SSLError),
        ):
            client.wrap_socket(raw, server_hostname="127.0.0.1")
        client.maximum_version = ssl.TLSVersion.TLSv1_3
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.3"
    finally:
        server.close()


def call(app, authorization: str | None = None) -> tuple[str, dict[str, str], bytes]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "wsgi.input": io.BytesIO()}
    if authorization:
        environ["HTTP_AUTHORIZATION"] = authorization
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_the_wsgi_wrapper_challenges_counts_failures_and_adds_headers():
    def inner(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ.get("REMOTE_USER", "").encode()]

    config = webconfig.parse(
        {
            "basic_auth_users": {"prometheus": HASH},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        }
    )
    failures = []
    app = webconfig.wsgi(inner, config, on_failure=lambda login, environ: failures.append(login))
    status, headers, _ = call(app)
    assert status == "401 Unauthorized"
    assert headers["WWW-Authenticate"] == 'Basic realm="stackmedic", charset="UTF-8"'
    assert headers["X-Frame-Options"] == "deny"
    assert call(app, basic("prometheus", "nope"))[0] == "401 Unauthorized"
    assert [f.reason for f in failures] == ["missing", "bad_credentials"]
    status, headers, body = call(app, basic("prometheus", PASSWORD))
    assert (status, body, headers["X-Frame-Options"]) == ("200 OK", b"prometheus", "deny")


def test_the_hash_command_makes_a_hash_basic_auth_users_accepts(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, "-m", "stackmedic.webconfig", "hash", "--rounds", "4"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    hashed = run.stdout.strip()
    assert PASSWORD not in run.stdout
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    assert (
        webconfig.load(tmp_path / "web.yml").authenticate(basic("prometheus", PASSWORD)).user == "prometheus"
    )
    check = subprocess.run(
        [sys.executable, "-m", "stackmedic.webconfig", "check", str(tmp_path / "web.yml")],
        capture_output=True,
        text=True,
    )
    assert (check.returncode, check.stdout) == (0, f"{tmp_path / 'web.yml'}: web configuration ok\n")


def test_wrong_passwords_being_hashed_cannot_hold_every_worker(monkeypatch):
    """bcrypt takes tens of ms on purpose: from the apps' network, 64 clients sending wrong
    passwords kept the exporter's 4 workers hashing and Prometheus' scrapes took 6 to 10 s.
    Here the hashing of wrong passwords blocks until released: Prometheus' login, checked
    once and remembered, must still be answered, and the logins beyond the hashing limit
    are told to come back (503) rather than queued behind it."""
    from stackmedic.httpserver import Limits, Server

    release = threading.Event()
    real_checkpw = bcrypt.checkpw

    right = []

    def checkpw(secret: bytes, hashed: bytes) -> bool:
        if secret != PASSWORD.encode():
            release.wait(60)
        else:
            right.append(secret)
        return real_checkpw(secret, hashed)

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", checkpw)
    config = webconfig.parse({"basic_auth_users": {"prometheus": HASH}})

    def inner(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"metrics\n"]

    server = Server(webconfig.wsgi(inner, config), "127.0.0.1", 0, Limits(threads=4)).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    answers: list[int] = []

    def attacker(i: int) -> None:
        r = requests.get(url, auth=("prometheus", f"guess-{i}"), timeout=90)
        answers.append(r.status_code)

    attackers = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(12)]
    try:
        assert requests.get(url, auth=("prometheus", PASSWORD), timeout=10).status_code == 200
        for t in attackers:
            t.start()
        # every guess beyond the one being hashed is turned away at once, not queued
        wait_for(lambda: answers.count(503) == 11, 30, "the guesses beyond the hashing limit to be refused")
        assert not release.is_set()  # the one guess is still being hashed
        # a generous deadline: correctness, not speed
        for _ in range(3):
            assert requests.get(url, auth=("prometheus", PASSWORD), timeout=20).status_code == 200
    finally:
        release.set()
        for t in attackers:
            t.join(30)
        server.shutdown()
        server.server_close()
    assert sorted(answers) == [401] + [503] * 11
    # 300 other wrong guesses, hashed and remembered, do not push the good login out
    for i in range(300):
        assert config.authenticate(basic("prometheus", f"other-{i}")).reason == "bad_credentials"
    assert config.authenticate(basic("prometheus", PASSWORD)).user == "prometheus"
    assert len(right) == 1  # hashed once, at the first login


def test_an_unknown_user_costs_as_many_bcrypt_rounds_as_a_known_one(monkeypatch):
    # a dummy hash of 4 rounds against users' 10 or 12 answered an unknown user name in
    # about 1 ms and a known one in 60 to 250 ms: user names could be told apart by timing
    seen: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def checkpw(secret: bytes, hashed: bytes) -> bool:
        seen.append(hashed[:7])
        return real_checkpw(secret, hashed)

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", checkpw)
    six = bcrypt.hashpw(b"x", bcrypt.gensalt(6)).decode()
    config = webconfig.parse({"basic_auth_users": {"prometheus": six, "admin": HASH}})
    assert config.authenticate(basic("nobody", "guess")).reason == "bad_credentials"
    assert config.authenticate(basic("prometheus", "guess")).reason == "bad_credentials"
    assert seen == [b"$2b$06$", b"$2b$06$"]  # the dearest of the users' costs


@pytest.mark.parametrize("value", ["Basic \xffcHJvbWV0aGV1czpwdw==", "Basic cHJ\xd6bWV0aGV1cw==", "Basic ²"])
def test_a_basic_header_with_a_non_ascii_byte_is_malformed_not_a_500(value: str):
    # headers arrive as Latin-1 text: base64 refused the byte with a ValueError nobody
    # caught, a 500 and a logged traceback per request, without credentials
    from stackmedic.receiver.auth import check
    from stackmedic.receiver.config import AuthConfig

    from stackmedic.secrets import Secret

    config = webconfig.parse({"basic_auth_users": {"prometheus": HASH}})
    assert config.authenticate(value) == webconfig.Login(None, "malformed")
    auth = AuthConfig(basic_username="am", basic_password=Secret("pw"))
    assert check(value, auth, basic_allowed=True).reason == "malformed"
