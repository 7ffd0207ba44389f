"""Where an open incident stands when its alert fires again: pure judgements, `now` passed in.

An incident stays open until its alert resolves, and each repeat of the alert is a chance to
see whether the last action helped. The action in flight, or finished less than the rule's
`settle` time ago, gets time (a `duplicate`); a build that did not succeed, or one that
succeeded while the alert still fires after `settle`, was `ineffective`, and another action
follows within the breaker; an action that failed (Jenkins unreachable or refusing past the
retries) is tried again too. An action whose settle time overlapped a pause of the target
is not judged: maintenance is not failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .config import BreakerPolicy
from .model import IN_FLIGHT_STATES, Action, ActionState, Incident


class Stage(StrEnum):
    """What the newest action of an open incident means now."""

    NEW = "new"  # nothing tried yet (or only refused: paused, cooldown, breaker)
    IN_PROGRESS = "in_progress"
    SETTLING = "settling"
    INEFFECTIVE = "ineffective"  # judged now: it did not fix it
    FAILED = "failed"  # never built: Jenkins unreachable or refusing
    HELD = "held"  # finished, but a pause came between: act again, judge nothing
    JUDGED = "judged"  # found ineffective at an earlier repeat: act again if the breaker lets it


@dataclass(frozen=True)
class Progress:
    stage: Stage
    reason: str = ""
    until: float | None = None  # SETTLING: when the action may be judged


def build_text(action: Action) -> str:
    """`stackmedic-restart #12 SUCCESS`, or the job and the state when there is no build."""
    if action.build_number is not None:
        return f"{action.job} #{action.build_number} {action.result or action.state}"
    return f"{action.job} {action.result or action.state}"


def progress(incident: Incident, action: Action | None, policy: BreakerPolicy, now: float) -> Progress:
    """The stage of `incident` (still firing at `now`) given its newest action."""
    if action is None or action.state is None or action.state == ActionState.CANCELLED:
        return Progress(Stage.NEW)
    if action.state in IN_FLIGHT_STATES:
        return Progress(Stage.IN_PROGRESS, f"action #{action.id} in progress ({action.state})")
    if action.state == ActionState.FAILED:
        return Progress(Stage.FAILED, f"action #{action.id} failed")
    if action.ineffective == 1:
        return Progress(Stage.JUDGED, f"action #{action.id} did not fix it")
    finished = action.finished_at if action.finished_at is not None else now
    if action.result == "SUCCESS":
        since = now - finished
        if since < policy.settle:
            reason = f"action #{action.id} finished SUCCESS {since:.0f}s ago: settling until {policy.settle:.0f}s have passed"
            return Progress(Stage.SETTLING, reason, until=finished + policy.settle)
        if incident.held_at is not None and incident.held_at >= finished:
            return Progress(Stage.HELD, f"action #{action.id} was followed by a pause")
        return Progress(
            Stage.INEFFECTIVE,
            f"action #{action.id} ({build_text(action)}) did not fix it: still firing {since:.0f}s after",
        )
    return Progress(Stage.INEFFECTIVE, f"action #{action.id} ({build_text(action)}) did not fix it")


def healed(incident: Incident, action: Action | None, policy: BreakerPolicy, now: float) -> bool:
    """At the resolution: did `action` fix it (a successful build the alert went away after)?"""
    if action is None or action.state != ActionState.DONE or action.result != "SUCCESS":
        return False
    if action.ineffective or (incident.held_at is not None and incident.held_at >= (action.finished_at or 0)):
        return False
    finished = action.finished_at if action.finished_at is not None else now
    # a repeat after `settle` would have judged it; this bounds a receiver that heard nothing
    return now - finished <= max(policy.settle, policy.ineffective_after)


def credited(incident: Incident, action: Action) -> str | None:
    """The resolution's new words once `action`, running when the alert resolved, has finished.

    A restart job brings the service back and then waits for it to settle: the alert often
    resolves before the build ends. A build that was running then and ends SUCCESS healed it;
    one still queued when the alert resolved did not (the service came back by itself).
    """
    if incident.resolved_while != ActionState.BUILDING or action.result != "SUCCESS":
        return None
    ended = incident.ends_ts if incident.ends_ts is not None else incident.resolved_at or incident.starts_ts
    took = f"{max(0.0, ended - incident.starts_ts):.0f}s"
    return (
        f"healed by action #{action.id} ({action.job} #{action.build_number}): resolved {took} after it fired,"
        " while the build was finishing"
    )


def resolution(
    incident: Incident, action: Action | None, policy: BreakerPolicy, now: float, ended: float
) -> str:
    """The audit's words for a resolution: healed by stackmedic, or resolved without it."""
    took = f"{max(0.0, ended - incident.starts_ts):.0f}s"
    if healed(incident, action, policy, now):
        assert action is not None
        return f"healed by action #{action.id} ({action.job} #{action.build_number}): resolved {took} after it fired"
    if action is None or action.state is None:
        why = "no action was taken"
    elif action.state == ActionState.FAILED:
        why = f"action #{action.id} failed"
    elif action.state == ActionState.CANCELLED:
        why = f"action #{action.id} cancelled before dispatch"
    elif action.state == ActionState.BUILDING:
        why = f"action #{action.id} ({build_text(action)}) was still running; credited to it if it succeeds"
    elif action.state in IN_FLIGHT_STATES:
        why = f"action #{action.id} was still in progress"
    else:
        why = f"action #{action.id} did not fix it"
    return f"resolved {took} after it fired, without stackmedic: {why}"
