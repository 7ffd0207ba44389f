"""From a validated notification to decisions, each written to the store before the webhook answers.

Per alert: no rule -> `no_rule`; a label value failing its allow pattern -> `rejected_param`;
firing -> the incident (rule, fingerprint, startsAt) is opened atomically; an incident that
already has an action -> `duplicate`; otherwise dry-run, pause and breaker decide between
`dry_run`, `paused`, `breaker_open`, `cooldown` and `triggered` (a pending action for the
dispatcher). An incident that got no action (paused, cooldown, breaker) is decided again on
the next notification. Resolved -> `resolved`: the incident closes, a not yet sent action is
cancelled, and the time to recover is observed.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import breaker
from .metrics import ReceiverMetrics
from .model import ActionState, Breaker, Decision
from .payload import Alert, Notification
from .rules import ParamRejected, Rule, find_rule
from .store import SqlStore, Tx

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one webhook led to: decision counts, and the alerts refused for their label values."""

    decisions: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Decided:
    decision: Decision
    action_id: int | None = None
    opened: Breaker | None = None  # the breaker row, when it opened just now
    recovered: float | None = None


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
    ):
        self.store = store
        self.rules = list(rules)
        self.metrics = metrics
        self.clock = clock
        self.dry_run = dry_run
        self.on_triggered = on_triggered
        self.on_breaker_open = on_breaker_open

    def handle(self, notification: Notification) -> Outcome:
        """Decide on every alert; StoreError propagates (the webhook answers 503)."""
        outcome = Outcome()
        for index, alert in enumerate(notification.alerts):
            self.metrics.alerts.labels(alert.status).inc()
            decided = self._one(alert, index, outcome)
            outcome.decisions[decided.decision] += 1
            self.metrics.decisions.labels(decided.decision).inc()
            if decided.decision == Decision.TRIGGERED:
                self.on_triggered()
            if decided.opened:
                self.on_breaker_open(decided.opened)
        return outcome

    def _base(self, alert: Alert, rule: Rule | None) -> dict[str, Any]:
        return {
            "created_at": self.clock(),
            "status": alert.status,
            "alertname": alert.labels.get("alertname", "")[:256],
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at,
            "rule": rule.name if rule else None,
            "job": rule.job if rule else None,
        }

    def _one(self, alert: Alert, index: int, outcome: Outcome) -> _Decided:
        rule = find_rule(self.rules, alert.labels)
        base = self._base(alert, rule)
        if rule is None:
            return self._record(base, Decision.NO_RULE, "no rule matches the labels")
        try:
            rendered = rule.render(alert.labels)
        except ParamRejected as exc:
            log.warning("label value rejected rule=%s fingerprint=%s: %s", rule.name, alert.fingerprint, exc)
            outcome.rejected.append({"alert": index, "label": exc.label, "reason": str(exc)})
            return self._record(base, Decision.REJECTED_PARAM, str(exc))
        base.update(target=rendered.target, params=rendered.params)
        if alert.status == "resolved":
            decided = self.store.atomic(lambda tx: self._resolve(tx, alert, rule, base))
            if decided.recovered is not None:
                self.metrics.remediation_seconds.labels(rule.name).observe(decided.recovered)
            return decided
        decided = self.store.atomic(lambda tx: self._fire(tx, alert, rule, base))
        if decided.decision == Decision.TRIGGERED:
            log.info(
                "action triggered id=%s rule=%s target=%s job=%s",
                decided.action_id,
                rule.name,
                rendered.target,
                rule.job,
            )
        return decided

    def _record(self, base: dict[str, Any], decision: Decision, reason: str) -> _Decided:
        action_id = self.store.atomic(lambda tx: tx.insert_action(**base, decision=decision, reason=reason))
        return _Decided(decision, action_id)

    def _fire(self, tx: Tx, alert: Alert, rule: Rule, base: dict[str, Any]) -> _Decided:
        now = base["created_at"]
        target = base["target"]
        incident = tx.open_incident(
            rule=rule.name,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            target=target,
            alertname=base["alertname"],
            starts_ts=alert.starts_ts,
            opened_at=now,
        )
        base["incident_id"] = incident.id
        if incident.action_id is not None:
            reason = f"incident already handled by action #{incident.action_id}"
            return _Decided(
                Decision.DUPLICATE, tx.insert_action(**base, decision=Decision.DUPLICATE, reason=reason)
            )
        if incident.resolved_at is not None:
            # a late or re-sent firing notification of an incident that is over
            return _Decided(
                Decision.DUPLICATE,
                tx.insert_action(**base, decision=Decision.DUPLICATE, reason="incident resolved"),
            )
        if self.dry_run:
            action_id = tx.insert_action(
                **base, decision=Decision.DRY_RUN, reason="dry-run mode: Jenkins not called"
            )
            tx.update_incident(incident.id, action_id=action_id)
            return _Decided(Decision.DRY_RUN, action_id)
        pause = tx.active_pause(target, now)
        if pause:
            reason = f"paused ({pause.target}) until {pause.expires_at:.0f}: {pause.reason or ''}".rstrip()
            return _Decided(
                Decision.PAUSED, tx.insert_action(**base, decision=Decision.PAUSED, reason=reason)
            )
        return self._breaker_decides(tx, rule, base, incident.id)

    def _breaker_decides(self, tx: Tx, rule: Rule, base: dict[str, Any], incident_id: int) -> _Decided:
        now, target = base["created_at"], base["target"]
        row = tx.breaker(rule.name, target, now)
        last = tx.last_action(rule.name, target)
        recent = tx.count_actions(rule.name, target, breaker.window_start(row, rule.policy, now))
        verdict = breaker.evaluate(row, rule.policy, last, recent, now)
        if verdict.judged:
            tx.update_action(verdict.judged[0], ineffective=verdict.judged[1])
        if not verdict.allow:
            tx.save_breaker(row)
            action_id = tx.insert_action(**base, decision=verdict.decision, reason=verdict.reason)
            return _Decided(
                verdict.decision, action_id, opened=dataclasses.replace(row) if verdict.opened else None
            )
        action_id = tx.insert_action(
            **base,
            decision=Decision.TRIGGERED,
            reason=verdict.reason or "new incident",
            token=uuid.uuid4().hex,
            acted_at=now,
            state=ActionState.PENDING,
            next_attempt_at=now,
            updated_at=now,
            trial=1 if verdict.trial else 0,
        )
        if verdict.trial:
            row.trial_action_id = action_id
        tx.save_breaker(row)
        tx.update_incident(incident_id, action_id=action_id)
        return _Decided(Decision.TRIGGERED, action_id)

    def _resolve(self, tx: Tx, alert: Alert, rule: Rule, base: dict[str, Any]) -> _Decided:
        now = base["created_at"]
        incident = tx.incident(rule.name, alert.fingerprint, alert.starts_at)
        if incident is None:
            return _Decided(
                Decision.RESOLVED,
                tx.insert_action(**base, decision=Decision.RESOLVED, reason="no incident on record"),
            )
        base["incident_id"] = incident.id
        if incident.resolved_at is not None:
            return _Decided(
                Decision.DUPLICATE,
                tx.insert_action(**base, decision=Decision.DUPLICATE, reason="already resolved"),
            )
        ended = alert.ends_ts if alert.ends_ts and alert.ends_ts >= alert.starts_ts else now
        tx.update_incident(incident.id, resolved_at=now, ends_ts=ended)
        reason = f"recovered after {ended - alert.starts_ts:.0f}s"
        action_id = incident.action_id
        # resolved before it was sent to Jenkins: nothing left to heal
        if action_id is not None and tx.cancel_pending(action_id, now):
            reason += f"; action #{action_id} cancelled before dispatch"
        decided = _Decided(
            Decision.RESOLVED, tx.insert_action(**base, decision=Decision.RESOLVED, reason=reason)
        )
        decided.recovered = max(0.0, ended - alert.starts_ts)
        return decided
