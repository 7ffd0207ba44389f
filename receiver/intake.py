"""From a validated notification to decisions, each written to the store before the webhook answers.

Per alert: no rule -> `no_rule` (counted per alert name, logged once per name); a label
value failing its allow pattern -> `rejected_param`; firing -> the incident (rule,
fingerprint, startsAt) is opened atomically and stays open until its alert resolves. Each
repeat is judged by lifecycle.py: the action in progress or settling -> `duplicate`; the
action finished and the alert still fires after `settle` -> `ineffective`, then another
action within the breaker (`triggered`); a failed action is tried again too. Pause, dry-run
and the breaker decide between `paused`, `dry_run`, `breaker_open`, `cooldown` and
`triggered`; when the breaker opens on an open incident it is `escalated` (a person is
paged, once per incident). Resolved -> `resolved`: the incident closes, a not yet sent
action is cancelled, and the audit says whether stackmedic healed it or something else did.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import breaker, lifecycle
from .lifecycle import Stage
from .metrics import ReceiverMetrics
from .model import Action, ActionState, Breaker, Decision, Incident
from .payload import Alert, Notification
from .rules import ParamRejected, Rule, find_rule
from .store import SqlStore, Tx

log = logging.getLogger(__name__)
MAX_UNMATCHED = 100  # distinct alert names counted; more are "other" (bounded label values)


@dataclass
class Outcome:
    """What one webhook led to: decision counts, and the alerts refused for their label values."""

    decisions: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Escalation:
    """An open incident the automation gives up on: what the person paged is told."""

    rule: str
    target: str
    alertname: str
    reason: str
    attempts: int
    last: Action | None
    incident_id: int


@dataclass
class _Decided:
    decision: Decision
    action_id: int | None = None
    opened: Breaker | None = None  # the breaker row, when it opened just now
    recovered: float | None = None
    extra: list[Decision] = field(default_factory=list)  # rows written before this one
    escalation: Escalation | None = None


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
        self.on_triggered = on_triggered
        self.on_breaker_open = on_breaker_open
        self.on_escalated = on_escalated
        self._unmatched_seen: set[str] = set()

    def handle(self, notification: Notification) -> Outcome:
        """Decide on every alert; StoreError propagates (the webhook answers 503)."""
        outcome = Outcome()
        for index, alert in enumerate(notification.alerts):
            self.metrics.alerts.labels(alert.status).inc()
            decided = self._one(alert, index, outcome)
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
        incident = tx.open_incident(
            rule=rule.name,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            target=base["target"],
            alertname=base["alertname"],
            starts_ts=alert.starts_ts,
            opened_at=now,
            summary=_annotation(alert, "summary", 1000),
            runbook_url=_runbook(alert),
        )
        base["incident_id"] = incident.id
        tx.update_incident(incident.id, decided_at=now)
        if incident.resolved_at is not None:
            # a late or re-sent firing notification of an incident that is over
            return self._row(tx, base, Decision.DUPLICATE, "incident resolved")
        if self.dry_run:
            if incident.action_id is not None:
                reason = f"incident already handled by action #{incident.action_id}"
                return self._row(tx, base, Decision.DUPLICATE, reason)
            decided = self._row(tx, base, Decision.DRY_RUN, "dry-run mode: Jenkins not called")
            tx.update_incident(incident.id, action_id=decided.action_id)
            return decided
        last = tx.action(incident.action_id) if incident.action_id is not None else None
        step = lifecycle.progress(incident, last, rule.policy, now)
        if step.stage in (Stage.IN_PROGRESS, Stage.SETTLING):
            return self._row(tx, base, Decision.DUPLICATE, step.reason)
        pause = tx.active_pause(base["target"], now)
        if pause:
            # maintenance: nothing is judged, and what ran before the pause is not judged later
            tx.update_incident(incident.id, held_at=now)
            reason = f"paused ({pause.target}) until {pause.expires_at:.0f}: {pause.reason or ''}".rstrip()
            return self._row(tx, base, Decision.PAUSED, reason)
        extra = []
        if step.stage == Stage.INEFFECTIVE:
            assert last is not None
            tx.update_action(last.id, ineffective=1)
            extra.append(self._row(tx, dict(base), Decision.INEFFECTIVE, step.reason).decision)
        decided = self._breaker_decides(tx, rule, base, incident, step)
        decided.extra = extra
        return decided

    def _row(self, tx: Tx, base: dict[str, Any], decision: Decision, reason: str, **more: Any) -> _Decided:
        return _Decided(decision, tx.insert_action(**base, decision=decision, reason=reason, **more))

    def _breaker_decides(
        self, tx: Tx, rule: Rule, base: dict[str, Any], incident: Incident, step: lifecycle.Progress
    ) -> _Decided:
        now, target = base["created_at"], base["target"]
        row = tx.breaker(rule.name, target, now)
        last = tx.last_action(rule.name, target)
        recent = tx.count_actions(rule.name, target, breaker.window_start(row, rule.policy, now))
        retry = step.stage != Stage.NEW
        verdict = breaker.evaluate(
            row,
            rule.policy,
            last,
            recent,
            now,
            retry=retry,
            judged=1 if step.stage == Stage.INEFFECTIVE else None,
            maintenance=incident.held_at is not None or not _prompt(incident, rule),
        )
        if verdict.judged:
            tx.update_action(verdict.judged[0], ineffective=verdict.judged[1])
        attempts = tx.incident_attempts(incident.id)
        if not verdict.allow:
            tx.save_breaker(row)
            opened = dataclasses.replace(row) if verdict.opened else None
            if verdict.opened and incident.escalated_at is None:
                return self._escalate(tx, base, incident, verdict.reason, attempts, opened)
            decided = self._row(tx, base, verdict.decision, verdict.reason)
            decided.opened = opened
            return decided
        reason = verdict.reason or "new incident"
        if retry:
            reason = f"attempt {attempts + 1} for this incident"
            if step.stage in (Stage.FAILED, Stage.HELD, Stage.JUDGED):
                reason += f": {step.reason}"
        decided = self._row(
            tx,
            base,
            Decision.TRIGGERED,
            reason,
            token=uuid.uuid4().hex,
            acted_at=now,
            state=ActionState.PENDING,
            next_attempt_at=now,
            updated_at=now,
            trial=1 if verdict.trial else 0,
        )
        if verdict.trial:
            row.trial_action_id = decided.action_id
        tx.save_breaker(row)
        tx.update_incident(incident.id, action_id=decided.action_id)
        return decided

    def _escalate(
        self,
        tx: Tx,
        base: dict[str, Any],
        incident: Incident,
        why: str,
        attempts: int,
        opened: Breaker | None,
    ) -> _Decided:
        """The breaker opened on this open incident: a person is paged, once per incident."""
        now = base["created_at"]
        last = tx.action(incident.action_id) if incident.action_id is not None else None
        reason = f"a person is needed: {why}"
        if attempts:
            reason += f"; {attempts} attempt{'' if attempts == 1 else 's'}"
            if last is not None:
                reason += f", last {lifecycle.build_text(last)}"
        tx.update_incident(incident.id, escalated_at=now)
        decided = self._row(tx, base, Decision.ESCALATED, reason)
        decided.opened = opened
        decided.escalation = Escalation(
            rule=base["rule"],
            target=base["target"],
            alertname=base["alertname"],
            reason=reason,
            attempts=attempts,
            last=last,
            incident_id=incident.id,
        )
        return decided

    def _resolve(self, tx: Tx, alert: Alert, rule: Rule, base: dict[str, Any]) -> _Decided:
        now = base["created_at"]
        incident = tx.incident(rule.name, alert.fingerprint, alert.starts_at)
        if incident is None:
            return self._row(tx, base, Decision.RESOLVED, "no incident on record")
        base["incident_id"] = incident.id
        if incident.resolved_at is not None:
            return self._row(tx, base, Decision.DUPLICATE, "already resolved")
        ended = alert.ends_ts if alert.ends_ts and alert.ends_ts >= alert.starts_ts else now
        tx.update_incident(incident.id, resolved_at=now, ends_ts=ended)
        last = tx.action(incident.action_id) if incident.action_id is not None else None
        # resolved before it was sent to Jenkins: nothing left to heal
        if last is not None and tx.cancel_pending(last.id, now):
            last = tx.action(last.id)
        reason = lifecycle.resolution(incident, last, rule.policy, now, ended)
        decided = self._row(tx, base, Decision.RESOLVED, reason)
        decided.recovered = max(0.0, ended - alert.starts_ts)
        return decided


def _annotation(alert: Alert, name: str, limit: int) -> str | None:
    value = alert.annotations.get(name)
    return value[:limit] if isinstance(value, str) and value else None


def _runbook(alert: Alert) -> str | None:
    """The alert's runbook_url, when it is a web address (it becomes a link on the page)."""
    url = _annotation(alert, "runbook_url", 2000)
    return url if url and url.startswith(("https://", "http://")) else None


def _prompt(incident: Incident, rule: Rule) -> bool:
    """Heard of soon after it began: not held back by a silence or an inhibition."""
    return incident.opened_at - incident.starts_ts <= max(rule.policy.settle, 60.0)
