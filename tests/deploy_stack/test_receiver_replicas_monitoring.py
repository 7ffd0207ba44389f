"""Rules and dashboards give the same answer for one receiver and for two replicas (issue 12 defect 7).

Two real Prometheus servers scrape canned receiver metrics: one scrapes a single receiver,
the other two replicas of it. The replicas export what replicas export: the series read
from the shared store (breakers, pauses, incidents, last actions, queue depth) alike, and
each its own share of the counters (a build is counted by the replica that owned it). Every
alert rule expression and every dashboard query over receiver series is evaluated on both,
at the same instant, and must give the same series (the `instance` label aside) and values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from harness.services import Prometheus, wait_for
from tests.deploy_stack.dashboards import REPO, all_dashboards, annotation_queries, queries, substitute

RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
NOW = int(time.time())

# read from the store: every replica exports exactly these
STORE = f"""
stackmedic_receiver_breaker_open{{rule="restart-app",target="petclinic"}} 1
stackmedic_receiver_breaker_open{{rule="restart-app",target="wordpress"}} 0.5
stackmedic_receiver_breaker_open{{rule="restore-database",target="petclinic"}} 0
stackmedic_receiver_paused{{target="*"}} 0
stackmedic_receiver_paused{{target="petclinic"}} 1
stackmedic_receiver_queue_depth 2
stackmedic_receiver_escalated{{rule="restart-app",target="petclinic"}} 1
stackmedic_receiver_escalated{{rule="restart-app",target="wordpress"}} 0
stackmedic_receiver_incident_attempts{{rule="restart-app",target="petclinic"}} 3
stackmedic_receiver_last_decision_timestamp_seconds{{rule="restart-app",target="petclinic"}} {NOW - 20}
stackmedic_receiver_last_action_timestamp_seconds{{rule="restart-app",target="petclinic",jenkins_job="stackmedic-restart",result="SUCCESS"}} {NOW - 30}
stackmedic_receiver_last_action_timestamp_seconds{{rule="restart-app",target="wordpress",jenkins_job="stackmedic-restart",result="FAILURE"}} {NOW - 40}
stackmedic_receiver_last_action_info{{rule="restart-app",target="petclinic",jenkins_job="stackmedic-restart",result="SUCCESS",build="7",summary="restarted"}} 1
"""

# counters of each process: replica 1's share and replica 2's; one receiver counts both
COUNTERS = [
    {
        'stackmedic_receiver_builds_total{rule="restart-app",jenkins_job="stackmedic-restart",result="SUCCESS"}': 2,
        'stackmedic_receiver_decisions_total{outcome="triggered"}': 2,
        'stackmedic_receiver_decisions_total{outcome="duplicate"}': 5,
        'stackmedic_receiver_remediation_duration_seconds_bucket{rule="restart-app",le="60.0"}': 1,
        'stackmedic_receiver_remediation_duration_seconds_bucket{rule="restart-app",le="+Inf"}': 2,
        'stackmedic_receiver_remediation_duration_seconds_sum{rule="restart-app"}': 150,
        'stackmedic_receiver_remediation_duration_seconds_count{rule="restart-app"}': 2,
    },
    {
        'stackmedic_receiver_builds_total{rule="restart-app",jenkins_job="stackmedic-restart",result="SUCCESS"}': 1,
        'stackmedic_receiver_builds_total{rule="restart-app",jenkins_job="stackmedic-restart",result="FAILURE"}': 1,
        'stackmedic_receiver_decisions_total{outcome="duplicate"}': 3,
        'stackmedic_receiver_unmatched_alerts_total{alertname="StackSomethingNew"}': 1,
        'stackmedic_receiver_remediation_duration_seconds_bucket{rule="restart-app",le="60.0"}': 1,
        'stackmedic_receiver_remediation_duration_seconds_bucket{rule="restart-app",le="+Inf"}': 1,
        'stackmedic_receiver_remediation_duration_seconds_sum{rule="restart-app"}': 30,
        'stackmedic_receiver_remediation_duration_seconds_count{rule="restart-app"}': 1,
    },
]
TYPES = """
# TYPE stackmedic_receiver_builds_total counter
# TYPE stackmedic_receiver_decisions_total counter
# TYPE stackmedic_receiver_unmatched_alerts_total counter
# TYPE stackmedic_receiver_remediation_duration_seconds histogram
"""


def exposition(counters: list[dict[str, int]]) -> str:
    total: dict[str, int] = {}
    for share in counters:
        for series, value in share.items():
            total[series] = total.get(series, 0) + value
    return TYPES + "".join(f"{s} {v}\n" for s, v in total.items()) + STORE.lstrip()


class Metrics:
    """A /metrics endpoint on 127.0.0.1 serving fixed text."""

    def __init__(self, text: str):
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[Callable[[str], Metrics]]:
    made: list[Metrics] = []

    def make(text: str) -> Metrics:
        made.append(Metrics(text))
        return made[-1]

    yield make
    for m in made:
        m.close()


def prometheus_config(targets: list[str]) -> str:
    job = {
        "job_name": "stackmedic-receiver",
        "scrape_interval": "1s",
        "static_configs": [{"targets": targets}],
    }
    return yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})


def receiver_queries() -> list[tuple[str, str]]:
    """(where, expr) of every alert rule and dashboard query that reads receiver series."""
    found = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "stackmedic_receiver_" in rule["expr"]:
                    found.append((f"{path.name} {rule.get('alert') or rule.get('record')}", rule["expr"]))
    values = {"datasource": "x", "instance": ".+", "database": ".+", "runbooks": "x"}
    for name, dashboard in all_dashboards().items():
        exprs = [(q.id, q.expr) for q in queries(name, dashboard)]
        exprs += [(f"{name} annotation {n}", e) for n, e in annotation_queries(dashboard)]
        found += [(where, substitute(e, values)) for where, e in exprs if "stackmedic_receiver_" in e]
    return found


def answer(prom: Prometheus, expr: str, at: float) -> list[tuple]:
    """The result without `instance` (which names the replica), sorted: duplicates stay visible."""
    out = []
    for r in prom.query(expr, at):
        labels = tuple(sorted((k, v) for k, v in r["metric"].items() if k != "instance"))
        out.append((labels, r["value"][1]))
    return sorted(out)


def scraped_twice(prom: Prometheus, replicas: int) -> bool:
    got = prom.query("count_over_time(stackmedic_receiver_queue_depth[1m])")
    return len(got) == replicas and all(float(r["value"][1]) >= 2 for r in got)


@pytest.mark.services
def test_rules_and_dashboards_answer_alike_for_one_receiver_and_two_replicas(prometheus_factory, endpoints):
    single = endpoints(exposition(COUNTERS))
    replicas = [endpoints(exposition([share])) for share in COUNTERS]
    one = prometheus_factory(prometheus_config([single.address]))
    two = prometheus_factory(prometheus_config([r.address for r in replicas]))
    wait_for(lambda: scraped_twice(one, 1) and scraped_twice(two, 2), 60, "both to scrape every target twice")
    at = time.time()
    checked = receiver_queries()
    assert len(checked) >= 15, checked
    differ = {}
    for where, expr in checked:
        a, b = answer(one, expr, at), answer(two, expr, at)
        if a != b:
            differ[where] = {"one receiver": a, "two replicas": b}
    assert not differ, "a second replica changes:\n" + "\n".join(f"{w}: {d}" for w, d in differ.items())
    # the comparison can tell a doubled answer: the raw breaker gauge is two series with two replicas
    assert len(two.query("stackmedic_receiver_breaker_open > 0", at)) == 2 * len(
        one.query("stackmedic_receiver_breaker_open > 0", at)
    )
