"""Gauges of incidents, read from the store at every scrape (the alert rules' view of healing).

    stackmedic_receiver_last_decision_timestamp_seconds{rule="restart-app",target="petclinic"} 1.8e9
    stackmedic_receiver_escalated{rule="restart-app",target="petclinic"} 0.0
    stackmedic_receiver_incident_attempts{rule="restart-app",target="petclinic"} 0.0
    stackmedic_receiver_last_action_info{rule="restart-app",target="petclinic",jenkins_job="stackmedic-restart",result="SUCCESS",build="12",summary="..."} 1.0

Every rule and target the receiver ever decided on (its breakers) is emitted, 0 when no
incident of it is open. An incident whose alert has not been sent for `stale_after` is
left out: Alertmanager repeats a firing alert every few minutes, so it was resolved while
the receiver did not hear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from . import job_result
from .store import SqlStore, StoreError

log = logging.getLogger(__name__)


class IncidentCollector:
    """See the module docstring."""

    def __init__(self, store: SqlStore, clock: Callable[[], float], stale_after: float = 3600.0):
        self.store = store
        self.clock = clock
        self.stale_after = stale_after

    def describe(self) -> list[Metric]:
        return []

    def _read(self, tx):
        breakers = tx.list_breakers()
        incidents = tx.open_incidents(self.clock() - self.stale_after)
        attempts = {i.id: tx.incident_attempts(i.id) for i in incidents}
        finished = {(b.rule, b.target): tx.last_finished(b.rule, b.target) for b in breakers}
        return breakers, incidents, attempts, tx.last_decisions(), finished

    def collect(self) -> Iterator[Metric]:
        p = "stackmedic_receiver_"
        try:
            breakers, incidents, attempts, decided, finished = self.store.atomic(self._read)
        except StoreError as exc:
            log.error("metrics: store unavailable: %s", exc)
            return
        stamp = GaugeMetricFamily(
            p + "last_decision_timestamp_seconds",
            "When a firing alert of the rule and target was last decided on.",
            labels=["rule", "target"],
        )
        for row in decided:
            stamp.add_metric([row["rule"], row["target"]], row["at"])
        yield stamp
        keys = {(b.rule, b.target) for b in breakers} | {(i.rule, i.target) for i in incidents}
        escalated = dict.fromkeys(keys, 0.0)
        tried = dict.fromkeys(keys, 0.0)
        for i in incidents:
            key = (i.rule, i.target)
            if i.escalated_at is not None:
                escalated[key] = 1.0
            tried[key] = max(tried[key], float(attempts[i.id]))
        yield _family(
            p + "escalated", "1 while an open incident of the rule and target is escalated.", escalated
        )
        yield _family(p + "incident_attempts", "Actions made for the open incident (0: none open).", tried)
        info = GaugeMetricFamily(
            p + "last_action_info",
            "The newest finished action of each rule and target: its build and what it did.",
            labels=["rule", "target", "jenkins_job", "result", "build", "summary"],
        )
        for (rule, target), action in sorted(finished.items()):
            if action is None:
                continue
            build = "" if action.build_number is None else str(action.build_number)
            summary = job_result.summary(action.description) or (action.error or "")[:300]
            info.add_metric([rule, target, action.job or "", action.result or "", build, summary], 1.0)
        yield info


def _family(name: str, help_text: str, values: dict[tuple[str, str], float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["rule", "target"])
    for (rule, target), value in sorted(values.items()):
        family.add_metric([rule, target], value)
    return family
