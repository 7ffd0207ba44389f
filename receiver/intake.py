"""From a validated notification to decisions, each written to the store before the webhook answers.

Per alert: no rule -> `no_rule` (counted per alert name, logged once per name); a label
value failing its allow pattern -> `rejected_param`; otherwise incident_decisions.py decides
on the firing or resolved alert in one transaction. The intake counts every decision, wakes
the dispatcher and tells people when a breaker opens or an incident is escalated.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .incident_decisions import Decided, Escalation, IncidentDecisions
from .metrics import ReceiverMetrics
from .model import Breaker, Decision
from .payload import Alert, Notification
from .rules import ParamRejected, Rule, find_rule
from .store import SqlStore

log = logging.getLogger(__name__)
MAX_UNMATCHED = 100  # distinct alert names counted; more are "other" (bounded label values)


@dataclass
class Outcome:
    """What one webhook led to: decision counts, and the alerts refused for their label values."""

    decisions: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)


class Intake:
    """Decides on alerts. `on_triggered` wakes the dispatcher; `on_breaker_open` notifies."""

    def __init__(
        self,
        store: SqlStore,
        rules: Sequence[Rule],
        metrics: ReceiverMetrics,
        clock: Callable[[], float],
        dry_run: bool = False,
        on_triggered: Callable[[], None] = lambda: None,
        on_breaker_open: Callable[[Breaker], None] = lambda row: None,
        on_escalated: Callable[[Escalation], None] = lambda escalation: None,
    ):
        self.store = store
        self.rules = list(rules)
        self.metrics = metrics
        self.clock = clock
        self.dry_run = dry_run
        self.decisions = IncidentDecisions(dry_run)
        self.on_triggered = on_triggered
        self.on_breaker_open = on_breaker_open
        self.on_escalated = on_escalated
        self._unmatched_seen: set[str] = set()

    def handle(self, notification: Notification, author: str | None = None) -> Outcome:
        """Decide on every alert; StoreError propagates (the webhook answers 503).

        `author`: the name of the token the webhook came with, kept on every row it causes.
        """
        outcome = Outcome()
        for index, alert in enumerate(notification.alerts):
            self.metrics.alerts.labels(alert.status).inc()
            decided = self._one(alert, index, outcome, author)
            for decision in [*decided.extra, decided.decision]:
                outcome.decisions[decision] += 1
                self.metrics.decisions.labels(decision).inc()
            if decided.decision == Decision.TRIGGERED:
                self.on_triggered()
            if decided.opened:
                self.on_breaker_open(decided.opened)
            if decided.escalation:
                e = decided.escalation
                self.metrics.escalations.labels(e.rule, e.target).inc()
                log.error("escalated rule=%s target=%s: %s", e.rule, e.target, e.reason)
                self.on_escalated(e)
        return outcome

    def _unmatched(self, alertname: str) -> None:
        """Counted per alert name; logged once per name, so a rule that never matches is seen."""
        name = (
            alertname
            if alertname in self._unmatched_seen or len(self._unmatched_seen) < MAX_UNMATCHED
            else "other"
        )
        self.metrics.unmatched.labels(name).inc()
        if name not in self._unmatched_seen:
            self._unmatched_seen.add(name)
            log.warning("no rule matches alertname=%s: nothing is done for it (logged once per name)", name)

    def _base(self, alert: Alert, rule: Rule | None, author: str | None) -> dict[str, Any]:
        return {
            "created_at": self.clock(),
            "author": author,
            "status": alert.status,
            "alertname": alert.labels.get("alertname", "")[:256],
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at,
            "rule": rule.name if rule else None,
            "job": rule.job if rule else None,
        }

    def _one(self, alert: Alert, index: int, outcome: Outcome, author: str | None) -> Decided:
        rule = find_rule(self.rules, alert.labels)
        base = self._base(alert, rule, author)
        if rule is None:
            self._unmatched(base["alertname"])
            return self._record(base, Decision.NO_RULE, "no rule matches the labels")
        try:
            rendered = rule.render(alert.labels)
        except ParamRejected as exc:
            log.warning("label value rejected rule=%s fingerprint=%s: %s", rule.name, alert.fingerprint, exc)
            outcome.rejected.append({"alert": index, "label": exc.label, "reason": str(exc)})
            return self._record(base, Decision.REJECTED_PARAM, str(exc))
        base.update(target=rendered.target, params=rendered.params)
        if alert.status == "resolved":
            decided = self.store.atomic(lambda tx: self.decisions.resolve(tx, alert, rule, base))
            if decided.recovered is not None:
                self.metrics.remediation_seconds.labels(rule.name).observe(decided.recovered)
            return decided
        decided = self.store.atomic(lambda tx: self.decisions.fire(tx, alert, rule, base))
        if decided.decision == Decision.TRIGGERED:
            log.info(
                "action triggered id=%s rule=%s target=%s job=%s",
                decided.action_id,
                rule.name,
                rendered.target,
                rule.job,
            )
        return decided

    def _record(self, base: dict[str, Any], decision: Decision, reason: str) -> Decided:
        action_id = self.store.atomic(lambda tx: tx.insert_action(**base, decision=decision, reason=reason))
        return Decided(decision, action_id)
