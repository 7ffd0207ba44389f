"""The loop breaker for one rule and target: cooldown, at most N actions in W, ineffective fixes.

Pure decisions on the breaker row and the last action, with `now` passed in: the caller
holds the breaker's row lock and persists what changed. States: `closed` (actions allowed),
`open` (none until an operator resets it, or until `reset_timeout` allows one trial), and
`half_open` (that trial is under way).

An action is *ineffective* when its own incident still fires after the rule's `settle` time
(lifecycle.py judges that and passes it in as a `retry`), when its build did not succeed,
or when a new incident of its rule and target starts within `ineffective_after` of the
build finishing - unless that incident is maintenance: decided during a pause (`held`), or
heard of long after it started (held back by a silence or an inhibition). Consecutive
ineffective actions, or too many actions in the window, open the breaker. A retry within
one incident is paced by `settle`, not by the cooldown, which is between incidents.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import BreakerPolicy
from .model import IN_FLIGHT_STATES, Action, ActionState, Breaker, BreakerState, Decision

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass
class Verdict:
    """What the breaker says about a new incident."""

    allow: bool
    decision: Decision = Decision.TRIGGERED  # or breaker_open, cooldown
    reason: str = ""
    opened: bool = False  # the breaker opened just now: log, metric, notification
    trial: bool = False  # this action is the half-open trial
    judged: tuple[int, int] | None = None  # (action id, 1 ineffective / 0 effective) to persist


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def judge(last: Action | None, policy: BreakerPolicy, now: float, maintenance: bool = False) -> int | None:
    """At a new incident: 1 when the last action proved ineffective, 0 when effective, None when not judged.

    `maintenance`: the new incident began in a pause or a silence, so it says nothing about
    the last action.
    """
    if not last or last.state != ActionState.DONE or last.ineffective is not None:
        return None
    if last.result != "SUCCESS":
        return 1
    if maintenance:
        return 0
    return 1 if now - _or(last.finished_at, now) <= policy.ineffective_after else 0


def _open(row: Breaker, now: float, reason: str) -> Verdict:
    row.update(state=OPEN, opened_at=now, reason=reason, trial_action_id=None, updated_at=now)
    return Verdict(False, Decision.BREAKER_OPEN, reason, opened=True)


def evaluate(
    row: Breaker,
    policy: BreakerPolicy,
    last: Action | None,
    recent: int,
    now: float,
    *,
    retry: bool = False,
    judged: int | None = None,
    maintenance: bool = False,
) -> Verdict:
    """Decide on an incident; updates `row` (the breaker) in place.

    `last` is the newest action of this rule and target, `recent` the number of actions
    since max(now - window, the last reset). A `retry` is another action for an incident
    that already had one, whose judgement (`judged`) the caller made; otherwise `last` is
    judged here (see judge(); `maintenance` as there).
    """
    verdict_judged = None
    if not retry:
        judged = judge(last, policy, now, maintenance)
    if judged is not None and last is not None:
        verdict_judged = (last.id, judged)
        row.ineffective = row.ineffective + 1 if judged else 0
        row.updated_at = now
    verdict = _decide(row, policy, last, recent, now, judged, retry)
    verdict.judged = verdict_judged if not retry else None
    return verdict


def _decide(
    row: Breaker,
    policy: BreakerPolicy,
    last: Action | None,
    recent: int,
    now: float,
    judged: int | None,
    retry: bool = False,
) -> Verdict:
    state = row.state
    if state == OPEN:
        if policy.reset_timeout and now >= _or(row.opened_at, now) + policy.reset_timeout:
            row.update(state=HALF_OPEN, updated_at=now)
            return Verdict(True, reason=f"trial after {_human(policy.reset_timeout)} open", trial=True)
        return Verdict(False, Decision.BREAKER_OPEN, f"breaker open since {row.opened_at:.0f}: {row.reason}")
    if last and last.state in IN_FLIGHT_STATES:
        what = "trial" if state == HALF_OPEN else "previous"
        return Verdict(
            False,
            Decision.BREAKER_OPEN if state == HALF_OPEN else Decision.COOLDOWN,
            f"{what} action #{last.id} still in progress",
        )
    if state == HALF_OPEN:
        if judged == 0 or (last and last.ineffective == 0):
            row.update(
                state=CLOSED, ineffective=0, reset_at=now, trial_action_id=None, reason="", updated_at=now
            )
            recent = 0  # the window starts again with the closing
        else:
            return _open(row, now, "the trial action did not fix it")
    if policy.max_ineffective and row.ineffective >= policy.max_ineffective:
        return _open(row, now, f"{row.ineffective} consecutive actions did not fix it")
    if policy.max_actions and recent >= policy.max_actions:
        return _open(row, now, f"{recent} actions within {_human(policy.window)}")
    until = None if retry else cooldown_until(row, policy, last)
    if last and until is not None and now < until:
        return Verdict(False, Decision.COOLDOWN, f"cooldown: {until - now:.0f}s left after action #{last.id}")
    return Verdict(True)


def cooldown_until(row: Breaker, policy: BreakerPolicy, last: Action | None) -> float | None:
    """When the cooldown after `last` ends; None when there is none (or a reset cleared it)."""
    if not last or not policy.cooldown:
        return None
    if row.cooldown_cleared_at is not None and last.created_at <= row.cooldown_cleared_at:
        return None
    return last.created_at + policy.cooldown


def next_action(
    row: Breaker, policy: BreakerPolicy, last: Action | None, now: float
) -> tuple[str, float | None]:
    """For people: when the next action for this rule and target may run, and why then."""
    if row.state == OPEN:
        if policy.reset_timeout:
            return "one trial after the reset timeout,", _or(row.opened_at, now) + policy.reset_timeout
        return "none until a person resets the breaker", None
    if last and last.state in IN_FLIGHT_STATES:
        return f"after action #{last.id} finishes", None
    until = cooldown_until(row, policy, last)
    if until is not None and until > now:
        return "after the cooldown,", until
    return "at the next alert", None


def close_proven_trial(row: Breaker, trial: Action | None, policy: BreakerPolicy, now: float) -> bool:
    """Close a half-open breaker whose trial succeeded and stayed fixed for `ineffective_after`."""
    if row.state != HALF_OPEN or not trial or trial.state != ActionState.DONE or trial.result != "SUCCESS":
        return False
    if now - _or(trial.finished_at, now) <= policy.ineffective_after:
        return False
    row.update(state=CLOSED, ineffective=0, reset_at=now, trial_action_id=None, reason="", updated_at=now)
    return True


def reset(row: Breaker, now: float, keep_cooldown: bool = False) -> None:
    """An operator's reset: closed, counters cleared, the window starts again now.

    It clears the cooldown too (an alert still firing is acted on at its next repeat),
    unless `keep_cooldown`.
    """
    row.update(
        state=CLOSED,
        ineffective=0,
        reset_at=now,
        trial_action_id=None,
        opened_at=None,
        reason="reset by operator",
        updated_at=now,
    )
    if not keep_cooldown:
        row.cooldown_cleared_at = now


def window_start(row: Breaker, policy: BreakerPolicy, now: float) -> float:
    """Actions count towards the limit from here: the window, but never before the last reset."""
    return max(now - policy.window, _or(row.reset_at, 0.0))


def gauge_value(state: BreakerState) -> float:
    """stackmedic_receiver_breaker_open: 1 open, 0.5 half-open, 0 closed."""
    return {OPEN: 1.0, HALF_OPEN: 0.5}.get(state, 0.0)
