"""Issue 13's receiver findings: cross-site writes from a real browser (defect 1), idle and
slow clients against the real program (defect 2), deep JSON (defect 6), failed logins
counted and logged, security headers, and --web.config.file."""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from stackmedic.receiver.auth import FailureLog

from harness.services import Process, free_port, wait_for
from stackmedic import webconfig
from tests.receiver.helpers import AUTH, TOKEN, alert, notification
from tests.security.certs import make_certs

REPO = Path(__file__).resolve().parents[2]

ATTACK = """<!doctype html><html><body>
<form id="f" method="POST" action="{receiver}/api/v1/pause" enctype="text/plain" target="sink">
<input name='{{"target":"*","duration":"30d","author":"evil","x":"' value='"}}'>
</form>
<form id="w" method="POST" action="{receiver}/api/v1/alerts" enctype="text/plain" target="sink2">
<input name='{webhook_name}' value='{webhook_value}'>
</form>
<iframe name="sink"></iframe><iframe name="sink2"></iframe>
<script>
window.results = [];
async function attack() {{
  document.getElementById('f').submit();
  document.getElementById('w').submit();
  for (const [path, type, mode] of [['/api/v1/resume', 'text/plain', 'no-cors'],
                                    ['/api/v1/breakers/restart-app:petclinic/reset', 'text/plain', 'no-cors'],
                                    ['/api/v1/pause', 'application/json', 'cors']]) {{
    try {{
      const r = await fetch('{receiver}' + path, {{method: 'POST', mode: mode, credentials: 'include',
        headers: {{'Content-Type': type}}, body: JSON.stringify({{target: '*', duration: '30d', author: 'evil'}})}});
      window.results.push(path + ' ' + r.type);
    }} catch (e) {{ window.results.push(path + ' blocked'); }}
  }}
  window.done = true;
}}
attack();
</script></body></html>"""


@contextlib.contextmanager
def attacker_site(receiver: str) -> Iterator[str]:
    """Another origin (another port) serving the page that tries the writes."""
    # the webhook form: a text/plain body `name=value` that is the JSON of an alert asking
    # for petclinic's restart, as in the finding
    body = json.dumps(notification(alert()))
    cut = body.index('"receiver"')
    page = ATTACK.format(
        receiver=receiver,
        webhook_name=html.escape(body[:cut] + '"x":"'),
        webhook_value=html.escape('",' + body[cut:]),
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_another_site_cannot_restart_pause_resume_or_reset(
    make_app, serve, chromium, caplog, standin
):
    # the worst case: no credentials needed at all (auth: none), as if the browser held them
    app = make_app(auth="none")
    url = serve(app)
    caplog.set_level(logging.WARNING, logger="stackmedic.receiver.api")
    page = chromium.page()
    try:
        with attacker_site(url) as evil:
            page.goto(evil)
            page.wait("window.done === true", timeout=20, what="the attacker page's writes")

            def refused() -> int:
                return sum("cross-origin write refused" in r.getMessage() for r in caplog.records)

            # the two forms and the two no-cors fetches reach the receiver and are refused; the
            # JSON one never leaves the browser (its CORS preflight is not granted)
            wait_for(lambda: refused() >= 4, 20, "the receiver to refuse the four cross-site writes")
            assert "/api/v1/pause blocked" in page.evaluate("window.results")
    finally:
        page.close()
    client = app.test_client()
    assert client.get("/api/v1/pauses").json == {"pauses": []}
    assert client.get("/api/v1/actions").json == {"actions": []}
    assert standin.posts() == []  # no build was asked of Jenkins
    # while the same write from a script (no Origin, JSON) is accepted
    pause = {"target": "*", "duration": "1h", "author": "ops"}
    assert requests.post(f"{url}/api/v1/pause", json=pause, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_writes_need_json_and_no_foreign_origin(make_app, headers, status):
    client = make_app().test_client()
    body = json.dumps({"target": "*", "duration": "1h", "author": "ops"})
    resp = client.post(
        "/api/v1/pause", data=body, headers={**AUTH, "Content-Type": "application/json", **headers}
    )
    assert resp.status_code == status
    same_origin = {**AUTH, "Origin": "http://localhost", "Content-Type": "application/json"}
    assert client.post("/api/v1/pause", data=body, headers=same_origin).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/pause"])
def test_json_nested_too_deep_is_400_not_500(make_app, path):
    client = make_app().test_client()
    for depth in (40, 100_000):
        resp = client.post(
            path, data="[" * depth + "]" * depth, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert resp.status_code == 400, depth
    resp = client.post(
        "/api/v1/alerts", data="[" * 100_000, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    deep = client.post(
        "/api/v1/alerts", data="[" * 40 + "]" * 40, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert deep.json["problems"] == [{"path": "(body)", "message": "nested deeper than 32 levels"}]


def test_failed_logins_are_counted_by_reason_and_logged_at_most_once_a_minute(make_app, caplog):
    app = make_app()
    client = app.test_client()
    caplog.set_level(logging.WARNING, logger="stackmedic.receiver.auth")
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Digest x"},
    ):
        assert client.post("/api/v1/alerts", json=notification(), headers=headers).status_code == 401
    metrics = client.get("/metrics").text
    assert 'stackmedic_receiver_auth_failures_total{reason="missing"} 1.0' in metrics
    assert 'stackmedic_receiver_auth_failures_total{reason="bad_credentials"} 2.0' in metrics
    assert 'stackmedic_receiver_auth_failures_total{reason="malformed"} 1.0' in metrics
    assert 'stackmedic_receiver_auth_failures_total{reason="basic_not_allowed"} 0.0' in metrics
    # the token a client sent is never logged
    assert "nope" not in caplog.text

    now = [1000.0]
    failures = FailureLog(interval=60, clock=lambda: now[0])
    assert failures.record("bad_credentials", "10.0.0.1", "/api/v1/alerts") is True
    assert [failures.record("missing", "10.0.0.1", "/") for _ in range(50)] == [False] * 50
    now[0] += 60
    caplog.clear()
    assert failures.record("missing", "10.0.0.2", "/api/v1/pause") is True
    assert "not_logged_since_last=50" in caplog.text


def test_the_page_sends_security_headers(make_app):
    resp = make_app().test_client().get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    api = make_app().test_client().get("/api/v1/status")
    assert api.headers["X-Content-Type-Options"] == "nosniff"


@contextlib.contextmanager
def held_sockets(port: int, idle: int, slow: int) -> Iterator[None]:
    socks = []
    try:
        for i in range(idle + slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i >= idle:  # half a webhook: headers never finished
                s.sendall(
                    b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: "
                )
            socks.append(s)
        yield
    finally:
        for s in socks:
            s.close()


def test_webhooks_are_answered_while_200_idle_and_slow_connections_are_open(tmp_path):
    config = {
        "auth": {"bearer_token_file": str(tmp_path / "token")},
        "store": {"type": "sqlite", "path": str(tmp_path / "receiver.sqlite")},
        "dry_run": True,
    }
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "receiver.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    program = Path(sys.executable).parent / "stackmedic-receiver"
    argv = [
        str(program),
        f"--config.file={tmp_path / 'receiver.yml'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    proc = Process(argv, tmp_path / "receiver.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, 30, "the receiver to be ready")
        with held_sockets(port, idle=150, slow=50):
            for _ in range(5):
                # a generous deadline, well above the 1 s Alertmanager needs: correctness, not speed
                r = requests.post(f"{url}/api/v1/alerts", json=notification(alert()), headers=AUTH, timeout=5)
                assert r.status_code == 200
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_web_config_puts_the_page_and_read_api_behind_tls_and_a_login(make_app, serve, certs):
    hashed = bcrypt.hashpw(b"reader-pw", bcrypt.gensalt(4)).decode()
    web = webconfig.parse(
        {
            "tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)},
            "basic_auth_users": {"reader": hashed},
        }
    )
    app = make_app()
    url = serve(app, web)
    ca = str(certs.ca)
    for path in ("/", "/api/v1/status", "/api/v1/actions", "/metrics"):
        assert requests.get(url + path, verify=ca, timeout=5).status_code == 401, path
        assert requests.get(url + path, verify=ca, auth=("reader", "reader-pw"), timeout=5).status_code == 200
        assert (
            requests.get(url + path, verify=ca, headers=AUTH, timeout=5).status_code == 200
        )  # the API token too
    # Alertmanager keeps posting with its bearer token, over TLS
    r = requests.post(f"{url}/api/v1/alerts", json=notification(alert()), headers=AUTH, verify=ca, timeout=5)
    assert r.status_code == 200
    # a wrong bearer token is no way round the login
    assert (
        requests.get(
            f"{url}/api/v1/status", verify=ca, headers={"Authorization": "Bearer x"}, timeout=5
        ).status_code
        == 401
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https:", "http:") + "/", timeout=5)
    metrics = app.test_client().get("/metrics").text
    assert 'stackmedic_receiver_auth_failures_total{reason="missing"} 4.0' in metrics


def test_a_password_in_jenkins_url_is_never_shown(make_app, standin):
    jenkins_url = standin.url.replace("http://", "http://admin:Sup3rS3cret@")
    app = make_app(
        jenkins={
            "url": jenkins_url,
            "user": standin.user,
            "api_token_env": "TEST_JENKINS_TOKEN",
            "timeout": 1,
        }
    )
    client = app.test_client()
    status = client.get("/api/v1/status").json
    assert status["jenkins"] == jenkins_url.replace("Sup3rS3cret", "***")
    assert "Sup3rS3cret" not in client.get("/").text


def test_a_failed_notification_never_logs_its_url(caplog):
    from stackmedic.receiver.notify import Notifier

    port = free_port()  # nothing listens there
    secret_url = f"http://127.0.0.1:{port}/services/T0000/B0000/XsecretXpathX"
    notifier = Notifier(timeout=2)
    caplog.set_level(logging.ERROR, logger="stackmedic.receiver.notify")
    notifier._post(secret_url, {"event": "breaker_opened"})
    assert "notification breaker_opened to host=127.0.0.1 failed: ConnectionError" in caplog.text
    assert "XsecretXpathX" not in caplog.text


def test_a_fingerprint_with_a_newline_is_refused(make_app):
    forged = 'abc\nts=2026-01-01 level=info msg="breaker reset"'
    body = notification({**alert(), "fingerprint": forged})
    resp = make_app().test_client().post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status_code == 400
    assert resp.json["problems"] == [
        {"path": "alerts[0].fingerprint", "message": "expected 1 to 128 letters, digits, '-' or '_'"}
    ]


def test_allow_patterns_match_ascii_only(make_app, standin):
    from stackmedic.receiver.config import RuleConfig
    from stackmedic.receiver.rules import ParamRejected, Rule

    rule = Rule(RuleConfig(name="r", job="j", match={"a": "b"}, target="svc", allow={"svc": r"^\w+$"}))
    assert rule.allowed("svc", {"svc": "petclinic"}) == "petclinic"
    with pytest.raises(ParamRejected):
        rule.allowed("svc", {"svc": "реtclinic"})  # Cyrillic р and е


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # json.loads turns the escape into a lone surrogate, which no store can encode as
        # UTF-8: a 500 that Alertmanager would send again forever
        ("/api/v1/alerts", json.dumps(notification({**alert(), "annotations": {"summary": "\ud800"}}))),
        ("/api/v1/alerts", json.dumps(notification(alert(), commonAnnotations={"x\udfff": "y"}))),
        ("/api/v1/pause", json.dumps({"target": "*", "duration": "1s", "author": "\udbff"})),
        ("/api/v1/breakers/restart-app:petclinic/reset", json.dumps({"author": "ops", "reason": "\ud800"})),
    ],
)
def test_a_lone_surrogate_escape_is_400_not_500(make_app, path, body):
    app = make_app()
    resp = app.test_client().post(path, data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.data
    if path == "/api/v1/alerts":
        assert resp.json["problems"] == [
            {"path": "(body)", "message": "a string holds a lone UTF-16 surrogate escape: not Unicode text"}
        ]
    # a real pair of surrogate escapes is one character, and fine
    pair = json.dumps({"target": "*", "duration": "1s", "author": "ops \U0001f600"})
    ok = app.test_client().post(
        "/api/v1/pause", data=pair, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert ok.status_code == 200


def test_non_ascii_digits_in_query_parameters_are_refused_not_a_500(make_app):
    # str.isdigit() accepts '²', which int() refuses: the page and the read API answered 500
    client = make_app().test_client()
    resp = client.get("/api/v1/actions?limit=²")
    assert resp.status_code == 400
    assert resp.json == {"error": "limit: expected an integer from 1 to 1000"}
    assert client.get("/api/v1/actions?limit=١٢").status_code == 400  # Arabic-Indic 12
    page = client.get("/?refresh=²")
    assert page.status_code == 200 and 'data-refresh="10"' in page.text


def test_behind_a_web_config_writes_never_ask_a_browser_for_basic_credentials(make_app, serve):
    # the web config's Basic challenge is for the page and the read API; on a write it made a
    # browser posting a cross-site form ask its user for a login (and then keep it)
    hashed = bcrypt.hashpw(b"reader-pw", bcrypt.gensalt(4)).decode()
    url = serve(make_app(), webconfig.parse({"basic_auth_users": {"reader": hashed}}))
    for path in ("/api/v1/alerts", "/api/v1/pause", "/api/v1/resume"):
        for auth in (None, ("reader", "reader-pw"), ("reader", "wrong")):
            r = requests.post(f"{url}{path}", json={}, auth=auth, timeout=5)
            assert r.status_code == 401, (path, auth)
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="stackmedic"', (path, auth)
    # reads still ask for the web config's login
    r = requests.get(f"{url}/api/v1/status", timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
