"""One action's way from `dispatching` to a result: send once, find again, follow, record.

States (model.ActionState): `dispatching` (a request may be under way) -> `queued` (the
actuator holds it) -> `building` (it runs) -> `done` with a result; or `failed` when it was
refused or every attempt failed. Every step is saved under this replica's ownership; a save
that finds the action owned by another replica raises `Lost` and the worker lets go.

Ownership is proven at the moment of sending: the actuator calls `confirm` once it holds its
connection slot, immediately before the request; `confirm` compares and bumps the action's
fencing version (`fence`) in one transaction, so a replica that lost the action meanwhile
(its lease ran out while it waited for a slot, and another replica took it) sends nothing.

Crash safety: before a request the action is written with `dispatched_at`; the request
carries the action's unique token. An action found `dispatching` with `dispatched_at` set
(after a crash, a timeout or a lost connection) is looked up by its token before it is sent
again, so a build is requested exactly once.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .actuators.base import Actuator, ActuatorError, MaybeSent, NotSent, Ref, Rejected
from .config import DispatcherConfig
from .incident_decisions import credit_resolutions
from .metrics import ReceiverMetrics
from .model import Action, ActionState, Decision
from .store import SqlStore, Tx

log = logging.getLogger(__name__)
MAX_DESCRIPTION = 4000  # a build description kept in the audit


class Lost(Exception):
    """This replica no longer holds the action (its lease was taken over), or it is stopping."""


class ActionFlow:
    """Runs actions to their end for replica `owner`; one `run` per worker thread."""

    # told of every action that ended (notifications); set by the app
    on_finished: Callable[[Action], None] = staticmethod(lambda row: None)

    def __init__(
        self,
        store: SqlStore,
        config: DispatcherConfig,
        metrics: ReceiverMetrics,
        owner: str,
        actuator_for: Callable[[Action], Actuator],
        poll_interval: float,
        grace: float,
        clock: Callable[[], float],
        stopping: threading.Event,
    ):
        self.store = store
        self.config = config
        self.metrics = metrics
        self.owner = owner
        self.actuator_for = actuator_for
        self.poll_interval = poll_interval
        self.grace = grace  # a request older than this is over, whatever happened to it
        self.clock = clock
        self.stopping = stopping

    def run(self, row: Action) -> None:
        """Move the action on until it is finished, lost to another replica, or we stop."""
        steps = {
            ActionState.DISPATCHING: self._dispatch,
            ActionState.QUEUED: self._follow,
            ActionState.BUILDING: self._follow,
        }
        while row.state in steps and not self.stopping.is_set():
            row = steps[row.state](row)

    # saving under ownership

    def _save(self, row: Action, then: Callable[[Tx, Action], Any] | None = None, **fields: Any) -> Action:
        """Write `fields` if the action is still ours (else Lost); `then(tx, saved row)` in the same transaction."""
        now = self.clock()
        fields.update(updated_at=now, lease_until=now + self.config.lease)
        saved = copy.copy(row)
        saved.update(**fields)

        def write(tx: Tx) -> bool:
            if not tx.update_action(row.id, owner=self.owner, fence=row.fence, **fields):
                return False
            if then is not None:
                then(tx, saved)
            return True

        if not self.store.atomic(write):
            raise Lost
        row.update(**fields)
        return row

    def _sleep(self, row: Action, seconds: float) -> None:
        """Wait, keeping the lease; Lost when stopping."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping.wait(min(left, self.config.lease / 3)):
                raise Lost
            self._save(row)

    # endings

    def _backoff(self, attempts: int) -> float:
        return min(self.config.backoff_max, self.config.backoff_initial * 2 ** max(0, attempts - 1))

    def _retry_or_fail(self, row: Action, exc: ActuatorError, sent: bool = True) -> Action:
        """Retry after a backoff, or record the action as failed after `max_attempts`.

        When the request surely did not take effect (`sent` false) the action goes back to
        `pending` until its next attempt, so a resolved alert can still cancel it; otherwise
        this worker keeps it and looks it up by its token before trying again.
        """
        attempts = row.attempts
        if isinstance(exc, Rejected) or attempts >= self.config.max_attempts:
            return self._fail(row, f"{exc} (after {attempts} attempts)")
        delay = self._backoff(attempts)
        log.warning("action id=%s attempt %d failed: %s; retry in %.1fs", row.id, attempts, exc, delay)
        if not sent:
            return self._save(
                row,
                state=ActionState.PENDING,
                dispatched_at=None,
                next_attempt_at=self.clock() + delay,
                error=str(exc),
            )
        self._save(row, error=str(exc))
        self._sleep(row, delay)
        return row

    def _unknown(self, row: Action, exc: ActuatorError) -> Action:
        """A lookup could not tell whether the request arrived: ask again later, never send again.

        After `max_attempts` the action ends `lost` (result LOST) and people are told: a build
        may or may not have been made, and only a person can look.
        """
        if row.attempts < self.config.max_attempts:
            delay = self._backoff(row.attempts)
            log.warning("action id=%s: %s; looking again in %.1fs", row.id, exc, delay)
            self._save(row, error=str(exc))
            self._sleep(row, delay)
            return row
        error = f"{exc} (after {row.attempts} attempts); {self.actuator_for(row).lost_advice}"
        log.error("action id=%s lost rule=%s target=%s: %s", row.id, row.rule, row.target, error)
        self._save(row, state=ActionState.LOST, result="LOST", error=error, finished_at=self.clock())
        self.metrics.builds.labels(row.rule, row.job, "LOST").inc()
        self.on_finished(row)
        return row

    def _fail(self, row: Action, error: str) -> Action:
        log.error("action id=%s failed rule=%s target=%s: %s", row.id, row.rule, row.target, error)
        self._save(
            row,
            state=ActionState.FAILED,
            decision=Decision.FAILED,
            result="ERROR",
            error=error,
            finished_at=self.clock(),
        )
        self.metrics.decisions.labels(Decision.FAILED).inc()
        self.metrics.builds.labels(row.rule, row.job, "ERROR").inc()
        self.on_finished(row)
        return row

    def _finish(self, row: Action, ref: Ref) -> Action:
        result = ref.result or "LOST"
        fields: dict[str, Any] = {"state": ActionState.DONE, "result": result, "finished_at": self.clock()}
        if ref.note:  # otherwise the last problem on the way (a timeout, a 503) stays in the audit
            fields["error"] = ref.note
        if ref.number is not None:
            fields.update(build_number=ref.number, build_url=ref.url)
        if ref.description:
            fields["description"] = ref.description[:MAX_DESCRIPTION]
        level = logging.INFO if result == "SUCCESS" else logging.WARNING
        log.log(
            level,
            "build finished action=%s job=%s build=%s result=%s",
            row.id,
            row.job,
            fields.get("build_number", row.build_number),
            result,
        )
        # incidents that resolved while this build ran say it healed them, in the same transaction
        self._save(row, then=credit_resolutions if result == "SUCCESS" else None, **fields)
        self.metrics.builds.labels(row.rule, row.job, result).inc()
        self.on_finished(row)
        return row

    def _moved(self, row: Action, ref: Ref) -> Action:
        """Record where the request is now: its build, its queue item, or its end."""
        if ref.result is not None:
            return self._finish(row, ref)
        if ref.number is not None:
            return self._save(row, state=ActionState.BUILDING, build_number=ref.number, build_url=ref.url)
        return self._save(row, state=ActionState.QUEUED, queue_id=ref.queue_id)

    # the steps

    def _dispatch(self, row: Action) -> Action:
        actuator = self.actuator_for(row)
        job, token, _ = row.held()
        if row.dispatched_at is not None:
            # a request may have arrived: find it by its token before sending another
            wait = row.dispatched_at + self.grace - self.clock()
            if wait > 0:
                self._sleep(row, wait)
            try:
                found = actuator.find(job, token)
            except ActuatorError as exc:
                return self._unknown(self._save(row, attempts=row.attempts + 1), exc)
            if found is not None:
                log.info(
                    "action id=%s found again: queue item %s build %s", row.id, found.queue_id, found.number
                )
                return self._moved(row, Ref(queue_id=found.queue_id, number=found.number, url=found.url))
        confirmed = []

        def confirm() -> None:
            """Called by the actuator holding its connection slot, right before it sends."""
            now = self.clock()
            fence = row.held()[2]
            if not self.store.atomic(
                lambda tx: tx.confirm_send(row.id, self.owner, fence, now, self.config.lease)
            ):
                log.warning("action id=%s no longer ours at the moment of sending: not sent", row.id)
                raise Lost
            row.update(
                fence=fence + 1,
                dispatched_at=now,
                attempts=row.attempts + 1,
                lease_until=now + self.config.lease,
            )
            confirmed.append(now)

        try:
            ref = actuator.trigger(job, row.params or {}, token, confirm)
        except MaybeSent as exc:
            return self._retry_or_fail(row, exc)
        except NotSent as exc:
            if not confirmed:  # failed before a request was tried (a crumb): still an attempt
                self._save(row, attempts=row.attempts + 1)
            return self._retry_or_fail(row, exc, sent=False)
        except Rejected as exc:
            return self._fail(row, str(exc))
        log.info("action id=%s queued item=%s merged=%s", row.id, ref.queue_id, ref.merged)
        return self._save(row, state=ActionState.QUEUED, queue_id=ref.queue_id, error=None)

    def _gave_up(self, row: Action) -> bool:
        return self.clock() - (row.dispatched_at or self.clock()) > self.config.follow_timeout

    def _follow(self, row: Action) -> Action:
        actuator = self.actuator_for(row)
        job, token, _ = row.held()
        what = "build" if row.state == ActionState.BUILDING else "queue item"
        while True:
            if self._gave_up(row):
                return self._finish(row, Ref(result="LOST", note=f"gave up following the {what}"))
            if row.state == ActionState.BUILDING:
                ref = Ref(number=row.build_number, url=row.build_url)
            else:
                ref = Ref(queue_id=row.queue_id)
            try:
                moved = actuator.follow(job, ref, token)
            except ActuatorError as exc:
                log.warning("action id=%s: following %s: %s", row.id, what, exc)
            else:
                if _progressed(ref, moved):
                    return self._moved(row, moved)
            self._sleep(row, self.poll_interval)


def _progressed(old: Ref, new: Ref) -> bool:
    """A result, a build, or another queue item: something to record (a changed URL alone is not)."""
    if new.result is not None or new.number != old.number:
        return True
    return new.number is None and new.queue_id != old.queue_id
