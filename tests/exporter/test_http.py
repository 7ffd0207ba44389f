"""HTTP checks against real servers on 127.0.0.1: every failure reason, and deadlines."""

from __future__ import annotations

import re
import socket
import ssl
import threading

import pytest
from stackmedic.exporter.checks.http_check import HTTP_REASONS, HttpCheck, HttpTarget
from stackmedic.exporter.deadline import Deadline

from tests.exporter.helpers import scrape


def target(url: str, **kw) -> HttpTarget:
    kw.setdefault("timeout", 5.0)
    return HttpTarget(name=kw.pop("name", "t"), url=url, **kw)


def reason_of(reg, name: str = "t") -> str | None:
    """The one reason set to 1, checking that exactly one (or none) is."""
    ones = [
        r
        for r in HTTP_REASONS
        if reg.get_sample_value("stackmedic_http_failure_reason", {"target": name, "reason": r}) == 1
    ]
    assert len(ones) <= 1
    for r in HTTP_REASONS:
        assert (
            reg.get_sample_value("stackmedic_http_failure_reason", {"target": name, "reason": r}) is not None
        )
    return ones[0] if ones else None


def test_ok_with_keyword(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/ok"), keyword="Welcome"))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 200
    assert reg.get_sample_value("stackmedic_http_duration_seconds", {"target": "t"}) > 0
    assert reason_of(reg) is None
    assert reg.get_sample_value("stackmedic_check_success", {"check": "http/t"}) == 1


def test_regex_match_and_mismatch(web_target):
    good = scrape([HttpCheck(target(web_target.url("/ok"), regex=re.compile(r"<h2>W\w+</h2>")))])
    assert good.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
    bad = scrape([HttpCheck(target(web_target.url("/ok"), regex=re.compile(r"Goodbye")))])
    assert bad.get_sample_value("stackmedic_http_up", {"target": "t"}) == 0
    assert reason_of(bad) == "keyword"


def test_server_error_is_status(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/error"), keyword="Welcome"))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 0
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 500
    assert reason_of(reg) == "status"
    # the target being down is not a failed check
    assert reg.get_sample_value("stackmedic_check_success", {"check": "http/t"}) == 1


def test_configured_status_codes(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/error"), status_codes=(500,)))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
    reg = scrape(
        [HttpCheck(target(web_target.url("/redirect"), status_codes=(302,), follow_redirects=False))]
    )
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 302
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1


def test_missing_keyword(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/nokeyword"), keyword="Welcome"))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 0
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 200
    assert reason_of(reg) == "keyword"


def test_redirect_is_followed(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/redirect"), keyword="Welcome"))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 200


@pytest.mark.parametrize("path", ["/huge", "/huge-unannounced"])
def test_body_over_the_cap(web_target, path):
    reg = scrape([HttpCheck(target(web_target.url(path), max_body_bytes=100_000))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 0
    assert reason_of(reg) == "body_too_large"
    assert reg.get_sample_value("stackmedic_check_success", {"check": "http/t"}) == 1


def test_connection_refused_is_connect():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        reg = scrape([HttpCheck(target(f"http://127.0.0.1:{port}/"))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 0
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 0
    assert reason_of(reg) == "connect"


def test_a_gzipped_page_is_read_decoded(web_target):
    # asked for identity, some servers compress anyway: the keyword is in the decoded page
    reg = scrape([HttpCheck(target(web_target.url("/gzip"), keyword="Welcome"))])
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1


def test_a_gzipped_body_is_capped_once_decoded(web_target):
    # 4 kB on the wire, 4 MiB decoded: the cap is on what is decoded
    reg = scrape([HttpCheck(target(web_target.url("/gzip-bomb"), max_body_bytes=100_000))])
    assert reason_of(reg) == "body_too_large"


def test_a_url_with_non_ascii_characters_is_sent_percent_encoded(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/café ok?q=ü&r=%C3%BC")))])
    assert (
        reg.get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 404
    )  # an answer, not an error
    assert reason_of(reg) == "status"


def test_a_ca_file_that_cannot_be_read_is_tls(tmp_path):
    reg = scrape([HttpCheck(target("https://127.0.0.1:1/", ca_file=str(tmp_path / "missing.pem")))])
    assert reason_of(reg) == "tls"
    assert reg.get_sample_value("stackmedic_check_success", {"check": "http/t"}) == 1


def test_a_name_that_does_not_resolve_is_connect(monkeypatch):
    # the resolver answers "no such name" here: a real lookup would leave 127.0.0.1
    def no_such_name(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    reg = scrape([HttpCheck(target("http://no-such-host.invalid/"))])
    assert reason_of(reg) == "connect"


def test_a_certificate_signed_by_the_configured_ca_is_trusted(tmp_path):
    from tests.exporter.test_http_redirects import Recorder
    from tests.security.certs import make_certs

    certs = make_certs(tmp_path / "certs")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    server = Recorder(ctx)
    try:
        trusted = scrape([HttpCheck(target(server.base + "/", ca_file=str(certs.ca)))])
        assert trusted.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
        unverified = scrape([HttpCheck(target(server.base + "/", tls_verify=False))])
        assert unverified.get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
        assert reason_of(scrape([HttpCheck(target(server.base + "/"))])) == "tls"  # not in the system's CAs
    finally:
        server.close()


def test_https_to_a_plain_http_server_is_tls(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/ok").replace("http://", "https://")))])
    assert reason_of(reg) == "tls"


def test_untrusted_certificate_is_tls(tmp_path):
    server = _tls_server(tmp_path)
    try:
        reg = scrape([HttpCheck(target(f"https://127.0.0.1:{server.port}/"))])
        assert reason_of(reg) == "tls"
    finally:
        server.stop()


def test_hung_server_times_out_within_the_check_timeout(hung_server):
    reg = scrape([HttpCheck(target(hung_server.url(), timeout=0.3))])
    assert reg.get_sample_value("stackmedic_check_success", {"check": "http/t"}) == 0
    assert (
        reg.get_sample_value("stackmedic_check_failure_reason", {"check": "http/t", "reason": "timeout"}) == 1
    )
    assert reg.get_sample_value("stackmedic_http_up", {"target": "t"}) == 0
    assert reason_of(reg) == "timeout"
    assert len(hung_server.accepted) == 1  # it did connect: this is a read that never ends


def test_hung_server_alone_in_the_check_reports_timeout(hung_server):
    # the check by itself (no collector deadline) gives up at its own deadline
    check = HttpCheck(target(hung_server.url(), timeout=0.3))
    out = check.samples()
    check.run(out, Deadline.after(0.3))
    assert out.value("http_failure_reason", "t", "timeout") == 1
    assert out.value("http_up", "t") == 0


def test_dripping_body_cannot_hold_the_check_past_its_deadline(web_target):
    check = HttpCheck(target(web_target.url("/drip"), timeout=0.5))
    out = check.samples()
    check.run(out, Deadline.after(0.5))
    # each read is quick, so only the overall deadline can stop this one
    assert out.value("http_failure_reason", "t", "timeout") == 1
    assert out.value("http_status_code", "t") == 200
    reg = scrape([HttpCheck(target(web_target.url("/drip"), timeout=0.5))])
    assert reason_of(reg) == "timeout"


def test_every_reason_series_always_present(web_target):
    reg = scrape([HttpCheck(target(web_target.url("/ok")))])
    assert reason_of(reg) is None


def _tls_server(tmp_path):
    """An HTTPS server with a self-signed certificate made by openssl (not trusted)."""
    import shutil
    import subprocess

    from harness.services import require_binary

    openssl = require_binary("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    assert shutil.which(openssl)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    class Srv:
        port = sock.getsockname()[1]
        stopping = threading.Event()

        def serve(self):
            sock.settimeout(0.1)
            while not self.stopping.is_set():
                try:
                    conn, _ = sock.accept()
                except (TimeoutError, OSError):
                    continue
                try:
                    tls = ctx.wrap_socket(conn, server_side=True)
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    tls.close()
                except (ssl.SSLError, OSError):
                    conn.close()

        def stop(self):
            self.stopping.set()
            thread.join(5)
            sock.close()

    srv = Srv()
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    return srv


def test_a_url_without_a_name_shows_neither_its_password_nor_its_query_values(web_target, caplog):
    from stackmedic.exporter import config

    # the URL is the label when no name is given: /metrics, Prometheus, Grafana and the
    # debug log all showed a password or an api_key written into it
    port = web_target.port
    secret_url = f"http://monitor:Sup3rS3cret@127.0.0.1:{port}/missing?api_key=QsecretQ&x="
    section = config.parse({"http": [{"url": secret_url}]})["http"]
    [check] = HttpCheck.from_section(section)
    shown = f"http://monitor:***@127.0.0.1:{port}/missing?api_key=***&x=***"
    assert check.target.name == shown
    caplog.set_level("DEBUG", logger="stackmedic.exporter.checks.http_check")
    reg = scrape([check])
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": shown}) == 404
    refused = HttpCheck(
        HttpTarget.from_config({**section[0], "url": "http://127.0.0.1:1/x?api_key=QsecretQ"})
    )
    scrape([refused])
    assert "http check failed" in caplog.text
    assert "Sup3rS3cret" not in caplog.text and "QsecretQ" not in caplog.text
    # two URLs told apart only by a secret are still two targets
    with pytest.raises(Exception, match="duplicate name"):
        config.parse({"http": [{"url": secret_url}, {"url": secret_url.replace("QsecretQ", "other")}]})


def _configured(web_target, tmp_path, **item) -> list[HttpCheck]:
    from stackmedic.exporter import config

    item = {"name": "t", "url": web_target.url("/auth"), **item}
    return HttpCheck.from_section(config.parse({"http": [{k: v for k, v in item.items() if v}]})["http"])


def test_basic_auth_with_the_password_from_a_file(web_target, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    checks = _configured(
        web_target, tmp_path, basic_auth={"username": "monitor", "password_file": str(secret)}
    )
    assert scrape(checks).get_sample_value("stackmedic_http_up", {"target": "t"}) == 1
    assert "s3cret" not in repr(checks[0].target) and "czNjcmV0" not in repr(checks[0].target)
    secret.write_text("wrong")
    checks = _configured(
        web_target, tmp_path, basic_auth={"username": "monitor", "password_file": str(secret)}
    )
    assert scrape(checks).get_sample_value("stackmedic_http_status_code", {"target": "t"}) == 401


def test_a_bearer_token_from_the_environment(web_target, tmp_path, monkeypatch):
    monkeypatch.setenv("SM_TEST_TOKEN", "t0ken")
    checks = _configured(web_target, tmp_path, bearer_token_env="SM_TEST_TOKEN")
    assert scrape(checks).get_sample_value("stackmedic_http_up", {"target": "t"}) == 1


def test_a_user_and_password_in_the_url_are_sent_as_basic_auth(web_target, tmp_path):
    url = web_target.url("/auth").replace("http://", "http://monitor:s3cret@")
    checks = _configured(web_target, tmp_path, url=url, name=None)
    reg = scrape(checks)
    shown = url.replace("s3cret", "***")  # the label never shows the password
    assert reg.get_sample_value("stackmedic_http_up", {"target": shown}) == 1


def test_credentials_of_one_target_are_not_sent_to_another(web_target, tmp_path, monkeypatch):
    from stackmedic.exporter import config

    monkeypatch.setenv("SM_TEST_TOKEN", "t0ken")
    items = [
        {"name": "with", "url": web_target.url("/auth"), "bearer_token_env": "SM_TEST_TOKEN"},
        {"name": "without", "url": web_target.url("/auth")},
    ]
    reg = scrape(HttpCheck.from_section(config.parse({"http": items})["http"]))
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "with"}) == 200
    assert reg.get_sample_value("stackmedic_http_status_code", {"target": "without"}) == 401


def test_credentials_that_cannot_be_read_or_are_given_twice_are_config_errors(web_target, monkeypatch):
    from stackmedic.exporter import config

    from stackmedic.config import ConfigError

    monkeypatch.delenv("SM_NOT_SET", raising=False)
    target = {"url": web_target.url("/auth")}
    items = [
        {"name": "a", **target, "basic_auth": {"username": "m", "password_file": "/nonexistent/pw"}},
        {"name": "b", **target, "bearer_token_env": "SM_NOT_SET"},
        {"name": "c", "url": "http://u:p@127.0.0.1:1/", "headers": {"authorization": "Bearer x"}},
        {"name": "d", **target, "bearer_token_env": "X", "bearer_token_file": "/x"},
        {"name": "e", **target, "basic_auth": {"username": "m", "password_env": "X", "password_file": "/x"}},
    ]
    with pytest.raises(ConfigError) as err:
        config.parse({"http": items})
    problems = dict(err.value.problems)
    assert "/nonexistent/pw" not in str(err.value) and "SM_NOT_SET" not in str(err.value)
    assert problems["http[0].basic_auth.password_file"].startswith("cannot read the secret file")
    assert problems["http[1].bearer_token_env"] == "the environment variable is not set (name not shown)"
    assert problems["http[2]"] == "headers.Authorization and a user in the url: set one way of authorization"
    assert problems["http[3]"] == "bearer_token_env and bearer_token_file: set one of them"
    assert problems["http[4]"] == "basic_auth.password_env and basic_auth.password_file: set one of them"
