"""The receiver's page in a real headless Chromium: built around incidents, readable on a phone.

The page is served by waitress like in production and loaded in Debian's Chromium
(harness/browser.py); assertions read the DOM after the page's own script ran. Screenshots
are kept under the test's tmp folder (the path is printed).
"""

from __future__ import annotations

import time

import pytest

from harness.services import wait_for
from tests.receiver.helpers import AUTH, actions, alert, notification, settled

pytestmark = pytest.mark.services

LINKS = {
    "prometheus": "http://prometheus.example:9090",
    "alertmanager": "http://alertmanager.example:9093",
    "grafana": "http://grafana.example:3000/d/stackmedic",
}


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def with_runbook(a: dict) -> dict:
    a["annotations"] = {
        "summary": "petclinic does not answer (HTTP keyword missing)",
        "runbook_url": "https://example.org/runbooks/StackAppDown.md",
    }
    return a


@pytest.fixture
def page_app(make_app, standin):
    """A live app whose restart job always 'succeeds' without helping, with links configured."""
    return make_app(
        breaker={
            "cooldown": "5m",
            "max_actions": 3,
            "window": "1h",
            "ineffective_after": "15m",
            "max_ineffective": 2,
            "settle": "1h",
        },
        web={"links": LINKS},
    )


def test_open_incidents_come_first_with_what_was_tried_and_what_happens_next(
    page_app, standin, serve, chromium, tmp_path
):
    client = page_app.test_client()
    started = time.time() - 300
    firing = with_runbook(alert("petclinic", starts_at=iso(started)))
    assert client.post("/api/v1/alerts", json=notification(firing), headers=AUTH).status_code == 200
    old = alert("wordpress", starts_at=iso(started - 600))
    client.post("/api/v1/alerts", json=notification(old), headers=AUTH)
    wait_for(lambda: settled(page_app) and len(standin.finished()) == 2, 10, "both builds")
    client.post(
        "/api/v1/alerts", json=notification(alert("wordpress", "resolved", iso(started - 600))), headers=AUTH
    )
    body = {"target": "*", "duration": "2h", "author": "ana", "reason": "database upgrade"}
    assert client.post("/api/v1/pause", json=body, headers=AUTH).status_code == 200

    url = serve(page_app) + "/?refresh=1"
    page = chromium.page(width=1280, height=900)
    page.goto(url)
    page.wait("document.body.dataset.refreshed >= 1", 10, "a refresh without reload")

    # the open one first: target, summary, since when, what was tried, what next, runbook
    card = page.evaluate(
        "(() => { const c = document.querySelector('#open article');"
        " return {target: c.querySelector('.target').innerText, text: c.innerText,"
        " runbook: c.querySelector('a[href*=runbook]').href}; })()"
    )
    assert card["target"] == "petclinic"
    assert "petclinic does not answer (HTTP keyword missing)" in card["text"]
    assert "5 min ago" in card["text"]  # since when, in the reader's terms
    assert "stackmedic-restart #" in card["text"] and "SUCCESS" in card["text"]
    assert "paused" in card["text"].lower()  # next: nothing until the pause ends
    assert card["runbook"] == "https://example.org/runbooks/StackAppDown.md"
    assert page.evaluate("document.querySelectorAll('#open article').length") == 1
    # the pause: a banner, and an audit row with its author and reason
    banners = page.text("#banners")
    assert "Automation is paused for everything" in banners and "ana" in banners
    history = page.text("#history")
    assert "ana: database upgrade" in history
    # times are local and relative, not UTC ISO strings
    assert "UTC" not in page.text("#open")
    links = page.evaluate(
        "[...document.querySelectorAll('header nav a')].map(a => a.innerText + ' ' + a.href)"
    )
    assert links[:3] == [
        "Prometheus http://prometheus.example:9090/",
        "Alertmanager http://alertmanager.example:9093/",
        "Grafana http://grafana.example:3000/d/stackmedic",
    ]
    shot = page.screenshot(tmp_path / "page-desktop.png")
    print(f"screenshot: {shot}")

    # refresh without a reload: a marker set on the page survives while new data arrives
    page.evaluate("window.__kept = 42")
    client.post(
        "/api/v1/resume", json={"target": "*", "author": "bo", "reason": "upgrade done"}, headers=AUTH
    )
    page.wait("!document.querySelector('#banners').innerText.includes('paused')", 10, "the banner to go")
    assert page.evaluate("window.__kept") == 42
    assert "bo: upgrade done" in page.text("#history")
    assert page.errors == []
    page.close()


def test_the_page_is_readable_on_a_phone(page_app, standin, serve, chromium, tmp_path):
    client = page_app.test_client()
    firing = with_runbook(alert("petclinic", starts_at=iso(time.time() - 90)))
    client.post("/api/v1/alerts", json=notification(firing), headers=AUTH)
    wait_for(lambda: settled(page_app) and actions(page_app), 10, "the build")
    page = chromium.page(width=375, height=740, mobile=True)
    page.goto(serve(page_app) + "/")
    page.wait("document.querySelector('#open time').innerText.includes('ago')", 10, "local times")
    # nothing sticks out sideways: no horizontal scrolling of the page itself
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#open article')).fontSize)")
    assert font >= 14
    shot = page.screenshot(tmp_path / "page-phone.png")
    print(f"screenshot: {shot}")
    assert page.errors == []
    page.close()


def test_dry_run_has_a_banner_and_nothing_open_says_so(make_app, serve, chromium, tmp_path):
    app = make_app(dry_run=True, jenkins=None)
    page = chromium.page()
    page.goto(serve(app) + "/")
    assert "Dry-run" in page.text("#banners")
    assert "Nothing open" in page.text("#open")
    print(f"screenshot: {page.screenshot(tmp_path / 'page-dry-run.png')}")
    assert page.errors == []
    page.close()
