"""The Actuator protocol: trigger a job once, find it again by its token, follow it to a result.

Exactly once rests on three promises an actuator makes:

- `trigger` calls `confirm()` right before it sends (the caller proves it still owns the
  action there), and tells apart "surely not sent" (`NotSent`: retrying is safe), "may have been
  carried out" (`MaybeSent`: look it up with `find` before sending again) and "refused for good"
  (`Rejected`).
- The action's `token` travels with the request, so `find(job, token)` can tell whether a
  request arrived. `find` answers None only when it is sure nothing with that token exists;
  when it cannot tell (not found where it should be, 5xx, timeout) it raises `LookupUncertain`,
  never None: "unknown" must never be read as "absent", or a second request is sent.
- `follow(job, ref, token)` moves a `Ref` on: queued -> running (`number` set) -> finished
  (`result` set). Problems that may pass raise `ActuatorError`; the caller polls again.

An actuator is called from several worker threads at once and bounds its own concurrency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import requests
import urllib3.exceptions


class ActuatorError(Exception):
    """The actuator could not do what was asked; a subclass says what that means."""


class NotSent(ActuatorError):
    """The request surely did not take effect (refused connection, 5xx): trying again is safe."""


class MaybeSent(ActuatorError):
    """A timeout or a connection lost after sending: the request may have been carried out."""


class Rejected(ActuatorError):
    """Refused for good (unknown job, bad credentials, no permission): trying again will not help."""


class LookupUncertain(ActuatorError):
    """A lookup could not tell whether the request exists; it must not be taken as absent."""


def request_failure(
    exc: requests.RequestException,
    endpoint: str,
    timeout: float,
    unavailable: type[ActuatorError],
    uncertain: type[ActuatorError],
) -> ActuatorError:
    """The actuator's error for a request that got no answer.

    `unavailable` (NotSent) when the request surely never reached the server: the connection
    was refused or timed out. `uncertain` (MaybeSent) when it may have arrived and been acted on:
    no answer in time, or the connection dropped after it was sent.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):  # before Timeout: it is both
        return unavailable(f"{endpoint}: connect timeout")
    if isinstance(exc, requests.exceptions.Timeout):
        return uncertain(f"{endpoint}: no answer within {timeout:g}s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError):
            return unavailable(f"{endpoint}: cannot connect")
        return uncertain(f"{endpoint}: connection lost: {exc}")
    return unavailable(f"{endpoint}: {exc}")


@dataclass(frozen=True)
class Ref:
    """Where a request stands: queued (`queue_id`), running (`number`), or finished (`result`)."""

    queue_id: int | None = None
    number: int | None = None
    url: str | None = None
    result: str | None = None  # SUCCESS, FAILURE, ABORTED, UNSTABLE, NOT_BUILT, LOST; None until finished
    note: str | None = None  # why it finished without a run (cancelled, gone), for the audit
    # what the run reported once finished, kept in the audit: the job's JSON result line
    # (docs/jobs.md; Jenkins: the build's description, Kubernetes: the Job's log or the rollout)
    description: str | None = None
    merged: bool = False  # the actuator merged the request into an identical one already queued


class Actuator(Protocol):
    """What the action flow needs from Jenkins, Kubernetes or anything that runs a job."""

    # what a person is told to check when the flow could not tell whether a run was requested
    lost_advice: str

    def trigger(
        self, job: str, params: Mapping[str, str], token: str, confirm: Callable[[], None] = lambda: None
    ) -> Ref:
        """Request one run of `job` with `params`, carrying `token`; NotSent, MaybeSent or Rejected.

        `confirm()` is called immediately before each request that could start a run, after
        whatever bounds the actuator's concurrency is held; when it raises, nothing is sent and
        its exception goes to the caller.
        """
        ...

    def find(self, job: str, token: str) -> Ref | None:
        """The request carrying `token`; None only when surely absent; LookupUncertain otherwise."""
        ...

    def follow(self, job: str, ref: Ref, token: str) -> Ref:
        """The newer state of `ref`; ActuatorError when it cannot be read now (poll again)."""
        ...
