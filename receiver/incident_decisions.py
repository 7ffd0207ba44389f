"""Decisions on one incident, inside one store transaction: a firing repeat, or the resolution.

An incident (rule, fingerprint, startsAt) stays open until its alert resolves. Each firing
notification is judged by lifecycle.py: the action in progress or settling -> `duplicate`;
finished and still firing after `settle` -> an `ineffective` row, then another action within
the breaker (`triggered`); a failed action is tried again. Pause, dry-run and the breaker
decide between `paused`, `dry_run`, `breaker_open`, `cooldown` and `triggered`; the breaker
opening on an open incident makes it `escalated` (a person is paged, once per incident). The
resolution cancels an action not yet sent and says whether stackmedic healed it.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import breaker, lifecycle
from .lifecycle import Stage
from .model import IN_FLIGHT_STATES, Action, ActionState, Breaker, Decision, Incident
from .payload import Alert
from .rules import Rule
from .store import Tx


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
class Decided:
    """One alert's decision (the row written last) and what the intake must do about it."""

    decision: Decision
    action_id: int | None = None
    opened: Breaker | None = None  # the breaker row, when it opened just now
    recovered: float | None = None
    extra: list[Decision] = field(default_factory=list)  # rows written before this one
    escalation: Escalation | None = None


class IncidentDecisions:
    """The firing and resolved halves of the intake's work on rules that matched."""

    def __init__(self, dry_run: bool = False):
        self.dry_run = dry_run

    def fire(self, tx: Tx, alert: Alert, rule: Rule, base: dict[str, Any]) -> Decided:
        """A firing notification of `alert`: open its incident or work on it (module docstring)."""
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
            author=base.get("author"),  # the token whose webhook opened it
            decided_at=now,  # also when it exists: the newest decision on it
        )
        base["incident_id"] = incident.id
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
        shared = _share_the_outage(tx, incident, rule, base["target"], now)
        last = tx.action(incident.action_id) if incident.action_id is not None else None
        step = lifecycle.progress(incident, last, rule.policy, now)
        if shared and step.stage in (Stage.IN_PROGRESS, Stage.SETTLING):
            reason = f"same rule and target as an open incident: {step.reason}"
            return self._row(tx, base, Decision.DUPLICATE, reason)
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

    def _row(self, tx: Tx, base: dict[str, Any], decision: Decision, reason: str, **more: Any) -> Decided:
        return Decided(decision, tx.insert_action(**base, decision=decision, reason=reason, **more))

    def _breaker_decides(
        self, tx: Tx, rule: Rule, base: dict[str, Any], incident: Incident, step: lifecycle.Progress
    ) -> Decided:
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
    ) -> Decided:
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

    def resolve(self, tx: Tx, alert: Alert, rule: Rule, base: dict[str, Any]) -> Decided:
        """A resolved notification: the incident closes; the audit says who healed it."""
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
        # resolved before it was sent to Jenkins: nothing left to heal (unless another open
        # incident of the same outage, from another Prometheus replica, still needs it)
        sharing = last is not None and tx.open_incidents_of_action(last.id, incident.id) > 0
        if last is not None and not sharing and tx.cancel_pending(last.id, now):
            last = tx.action(last.id)
        if last is not None and last.state in IN_FLIGHT_STATES:
            # its result decides who healed it: ActionFlow credits it when it finishes SUCCESS
            tx.update_incident(incident.id, resolved_while=last.state)
        reason = lifecycle.resolution(incident, last, rule.policy, now, ended)
        decided = self._row(tx, base, Decision.RESOLVED, reason)
        decided.recovered = max(0.0, ended - alert.starts_ts)
        return decided


def credit_resolutions(tx: Tx, action: Action) -> int:
    """After `action` finished: the incidents that resolved while it ran say it healed them."""
    credited = 0
    for incident in tx.resolved_while_in_flight(action.id):
        reason = lifecycle.credited(incident, action)
        if reason:
            credited += tx.set_resolution_reason(incident.id, reason)
    return credited


def _share_the_outage(tx: Tx, incident: Incident, rule: Rule, target: str, now: float) -> bool:
    """One outage, one action: take on the newest action of another open incident of this rule and target.

    Two Prometheus replicas that label their alerts apart (`replica`) send one outage as two
    alerts with two fingerprints: two incidents. Under the breaker's row lock (which orders the
    decisions of one rule and target, across receivers too) the later incident adopts the
    action the other has, so it waits for that action instead of starting a second one.
    """
    tx.breaker(rule.name, target, now)  # the lock; the breaker decides later in this transaction
    newest = tx.newest_open_action(rule.name, target, incident.fingerprint)
    if newest is None or (incident.action_id is not None and incident.action_id >= newest):
        return False
    tx.update_incident(incident.id, action_id=newest)
    incident.action_id = newest
    return True


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
