"""The receiver's words and rows: decisions, action and breaker states, and typed store rows.

The enums' values are the words stored in the database, shown by the API and used as metric
labels, so a `StrEnum` member can go anywhere its word went. Rows are decoded once, in the
store (`store/transaction.py`): `params` arrive as a dict, states as enum members.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Self


class Decision(StrEnum):
    """What the receiver decided on one alert (one audit row each)."""

    TRIGGERED = "triggered"
    DUPLICATE = "duplicate"
    NO_RULE = "no_rule"
    REJECTED_PARAM = "rejected_param"
    BREAKER_OPEN = "breaker_open"
    COOLDOWN = "cooldown"
    PAUSED = "paused"
    DRY_RUN = "dry_run"
    FAILED = "failed"
    RESOLVED = "resolved"
    INEFFECTIVE = "ineffective"  # the incident's action finished and it still fires after settle
    ESCALATED = "escalated"  # the breaker opened on an open incident: a person is paged
    # an operator's writes, kept in the audit with their author
    PAUSE = "pause"
    RESUME = "resume"
    RESET = "reset"


ALERT_DECISIONS = tuple(d for d in Decision if d not in (Decision.PAUSE, Decision.RESUME, Decision.RESET))


class ActionState(StrEnum):
    """Where a triggered action is: pending -> dispatching -> queued -> building -> done."""

    PENDING = "pending"
    DISPATCHING = "dispatching"  # a POST may be under way or may have reached Jenkins
    QUEUED = "queued"
    BUILDING = "building"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # whether a build was made cannot be established: a person is told


# not finished yet; STARTED: Jenkins may know of it, so it is owned by one replica under a lease
IN_FLIGHT_STATES = (ActionState.PENDING, ActionState.DISPATCHING, ActionState.QUEUED, ActionState.BUILDING)
STARTED_STATES = (ActionState.DISPATCHING, ActionState.QUEUED, ActionState.BUILDING)
FINAL_STATES = (ActionState.DONE, ActionState.FAILED, ActionState.CANCELLED, ActionState.LOST)


class BreakerState(StrEnum):
    """The loop breaker of one rule and target (see breaker.py)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class _Row:
    """A row of one table: built from the database's columns, changed in place by name."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The typed row from a column mapping; columns this version does not know are ignored."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})  # type: ignore[arg-type]

    def update(self, **changes: Any) -> None:
        for name, value in changes.items():
            if not hasattr(self, name):
                raise AttributeError(f"{type(self).__name__} has no column {name!r}")
            setattr(self, name, value)


@dataclass
class Action(_Row):
    """One decision on one alert; triggered ones also carry a token and a dispatch state."""

    id: int
    created_at: float
    decision: Decision
    reason: str | None = None
    status: str | None = None  # the alert's: firing or resolved
    alertname: str | None = None
    fingerprint: str | None = None
    starts_at: str | None = None
    rule: str | None = None
    target: str | None = None
    job: str | None = None
    params: dict[str, str] | None = None
    incident_id: int | None = None
    token: str | None = None
    state: ActionState | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    owner: str | None = None
    lease_until: float | None = None
    dispatched_at: float | None = None
    queue_id: int | None = None
    build_number: int | None = None
    build_url: str | None = None
    result: str | None = None
    finished_at: float | None = None
    error: str | None = None
    updated_at: float | None = None
    ineffective: int | None = None  # 1 ineffective, 0 effective, None not judged yet
    trial: bool = False
    acted_at: float | None = None
    fence: int | None = None  # bumped by every claim, take-over and send: proves ownership
    author: str | None = None  # who: the operator (pause, resume, reset), else the webhook's named token
    description: str | None = None  # the build's description: the job's JSON result line

    def __post_init__(self) -> None:
        self.decision = Decision(self.decision)
        if self.state is not None:
            self.state = ActionState(self.state)
        if isinstance(self.params, str):
            self.params = json.loads(self.params) if self.params else None
        self.trial = bool(self.trial)

    def held(self) -> tuple[str, str, int]:
        """(job, token, fence) of a claimed triggered action; ValueError for a row that has none."""
        if self.job is None or self.token is None or self.fence is None:
            raise ValueError(f"action id={self.id} is not a claimed triggered action")
        return self.job, self.token, self.fence


@dataclass
class Incident(_Row):
    """One firing of one alert for one rule: (rule, fingerprint, starts_at) is unique."""

    id: int
    rule: str
    fingerprint: str
    starts_at: str
    target: str
    alertname: str | None
    starts_ts: float
    opened_at: float
    action_id: int | None = None
    resolved_at: float | None = None
    ends_ts: float | None = None
    summary: str | None = None  # the alert's summary annotation, for the page
    runbook_url: str | None = None
    decided_at: float | None = None  # the newest decision on a firing notification of it
    held_at: float | None = None  # the newest decision made while paused: no judging before it
    escalated_at: float | None = None  # when a person was paged about it
    author: str | None = None  # the named token whose webhook opened it
    resolved_while: str | None = None  # its action's state when the alert resolved, if still in flight


@dataclass
class Breaker(_Row):
    """The loop breaker of one rule and target; `bkey` is rule:target."""

    bkey: str
    rule: str
    target: str
    state: BreakerState = BreakerState.CLOSED
    opened_at: float | None = None
    reason: str | None = None
    ineffective: int = 0  # consecutive ineffective actions
    reset_at: float | None = None
    trial_action_id: int | None = None
    updated_at: float | None = None
    cooldown_cleared_at: float | None = None  # a reset: actions before it start no cooldown

    def __post_init__(self) -> None:
        self.state = BreakerState(self.state)


@dataclass
class Pause(_Row):
    """No actions for `target` (or everything, `*`) until `expires_at`."""

    target: str
    expires_at: float
    reason: str | None = None
    created_at: float | None = None
    author: str | None = None
