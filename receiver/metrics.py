"""The receiver's metrics: counters of what happened here, and gauges read from the store per scrape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from . import breaker
from .model import ALERT_DECISIONS
from .rules import Rule
from .store import SqlStore, StoreError

# `_created` series double every counter and histogram and tell Prometheus nothing it uses;
# the Go exporters people compare us with have none. (Process-wide, like the setting itself.)
prometheus_client.disable_created_metrics()

log = logging.getLogger(__name__)

OUTCOMES = ALERT_DECISIONS  # operators' rows (pause, resume, reset) are no decision on an alert
RESULTS = ("SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "NOT_BUILT", "LOST", "ERROR")
AUTH_FAILURE_REASONS = ("missing", "malformed", "bad_credentials", "basic_not_allowed", "revoked", "busy")
ENDPOINTS = ("build", "queue_item", "build_info", "job_builds", "queue", "crumb")


class ReceiverMetrics:
    """Counters and histograms of this process; every label combination known up front is exposed at 0."""

    def __init__(self, registry: CollectorRegistry, rules: Sequence[Rule]):
        p = "stackmedic_receiver_"
        self.alerts = Counter(
            p + "alerts_received", "Alerts received in webhooks.", ["status"], registry=registry
        )
        self.decisions = Counter(
            p + "decisions", "Decisions on alerts, by outcome.", ["outcome"], registry=registry
        )
        self.builds = Counter(
            p + "builds",
            "Jenkins builds by rule, Jenkins job and result.",
            ["rule", "jenkins_job", "result"],
            registry=registry,
        )
        self.jenkins_seconds = Histogram(
            p + "jenkins_request_duration_seconds",
            "Time of Jenkins remote API requests.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.kubernetes_seconds = Histogram(
            p + "kubernetes_request_duration_seconds",
            "Time of Kubernetes API requests (the kubernetes actuator).",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.remediation_seconds = Histogram(
            p + "remediation_duration_seconds",
            "Time from an incident's start to its resolution.",
            ["rule"],
            buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400),
            registry=registry,
        )
        self.escalations = Counter(
            p + "escalations",
            "Open incidents the automation gave up on (the breaker opened): a person was paged.",
            ["rule", "target"],
            registry=registry,
        )
        self.unmatched = Counter(
            p + "unmatched_alerts",
            "Alerts no rule matched (decision no_rule), by alert name.",
            ["alertname"],
            registry=registry,
        )
        self.store_errors = Counter(
            p + "store_errors", "Webhooks answered 503 because the store failed.", registry=registry
        )
        self.auth_failures = Counter(
            p + "auth_failures",
            "Requests refused for their credentials, by reason (missing, malformed, bad_credentials, "
            "basic_not_allowed, revoked; busy: a web config login refused because another was being checked).",
            ["reason"],
            registry=registry,
        )
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        for status in ("firing", "resolved"):
            self.alerts.labels(status)
        for outcome in OUTCOMES:
            self.decisions.labels(outcome)
        for endpoint in ENDPOINTS:
            self.jenkins_seconds.labels(endpoint)
        for rule in rules:
            self.remediation_seconds.labels(rule.name)
            for result in RESULTS:
                self.builds.labels(rule.name, rule.job, result)


class StateCollector:
    """Gauges read from the store at every scrape.

    stackmedic_receiver_breaker_open{rule="restart-app",target="petclinic"} 0.0
    stackmedic_receiver_paused{target="*"} 0.0
    stackmedic_receiver_queue_depth 0.0
    stackmedic_receiver_last_action_timestamp_seconds{rule="restart-app",target="petclinic",jenkins_job="stackmedic-restart",result="SUCCESS"} 1.7e9
    """

    def __init__(self, store: SqlStore, clock: Callable[[], float]):
        self.store = store
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        p = "stackmedic_receiver_"
        now = self.clock()
        try:
            breakers, pauses, depth, last = self.store.atomic(
                lambda tx: (tx.list_breakers(), tx.all_pauses(), tx.pending_count(), tx.last_results())
            )
        except StoreError as exc:
            log.error("metrics: store unavailable: %s", exc)
            return
        opened = GaugeMetricFamily(
            p + "breaker_open", "1 open, 0.5 half-open, 0 closed.", labels=["rule", "target"]
        )
        for row in breakers:
            opened.add_metric([row.rule, row.target], breaker.gauge_value(row.state))
        yield opened
        paused = GaugeMetricFamily(
            p + "paused", "1 while automation is paused (target * is everything).", labels=["target"]
        )
        targets = {row.target: row.expires_at > now for row in pauses}
        targets.setdefault("*", False)
        for target, active in sorted(targets.items()):
            paused.add_metric([target], 1.0 if active else 0.0)
        yield paused
        yield GaugeMetricFamily(
            p + "queue_depth", "Actions not finished yet (pending to building).", value=depth
        )
        stamp = GaugeMetricFamily(
            p + "last_action_timestamp_seconds",
            "When the last build of each result finished.",
            labels=["rule", "target", "jenkins_job", "result"],
        )
        for done in last:
            stamp.add_metric([done["rule"], done["target"] or "", done["job"], done["result"]], done["at"])
        yield stamp
