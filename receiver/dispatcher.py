"""The background dispatcher: pending actions become Jenkins builds, followed to their result.

One worker thread per action in flight (at most `max_in_flight`), one action at a time per
target (the store only hands out the oldest unfinished action of a target), and at most
`max_concurrent_requests` Jenkins calls at once (the client's semaphore).

Crash safety: before a POST the action is written as `dispatching` with `dispatched_at`; the
POST carries the action's unique token as a build parameter. An action found in that state
(after a crash, a timeout or a lost connection) is looked up in Jenkins' builds and queue by
its token before it is sent again, so a build is requested exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import breaker
from .config import DispatcherConfig
from .jenkins import (
    Build,
    JenkinsClient,
    JenkinsError,
    JenkinsRejected,
    JenkinsUnavailable,
    JenkinsUncertain,
)
from .metrics import ReceiverMetrics
from .model import Action, ActionState, Decision
from .rules import Rule
from .store import SqlStore, StoreError

log = logging.getLogger(__name__)
MAINTAIN_EVERY = 5.0
PRUNE_EVERY = 3600.0


class Lost(Exception):
    """This replica no longer holds the action (its lease was taken over), or it is stopping."""


class Dispatcher:
    """Runs the actions the intake wrote, for replica `owner`."""

    def __init__(
        self,
        store: SqlStore,
        client: JenkinsClient,
        config: DispatcherConfig,
        metrics: ReceiverMetrics,
        rules: Mapping[str, Rule],
        owner: str,
        token_param: str = "STACKMEDIC_ACTION_ID",  # noqa: S107 - a parameter name
        poll_interval: float = 2.0,
        grace: float = 10.0,
        retention: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.client = client
        self.config = config
        self.metrics = metrics
        self.rules = rules
        self.owner = owner
        self.token_param = token_param
        self.poll_interval = poll_interval
        self.grace = grace  # a POST older than this is over, whatever happened to it
        self.retention = retention
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._loop: threading.Thread | None = None
        self._last_maintain = self._last_prune = 0.0

    # life cycle

    def start(self) -> None:
        self._loop = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._loop.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop taking work; actions under way stay in the store for the next start."""
        self._stop.set()
        self._wake.set()
        if self._loop:
            self._loop.join(timeout)
        for thread in list(self._active.values()):
            thread.join(timeout)

    def busy(self) -> int:
        with self._lock:
            return len(self._active)

    # main loop

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._take_over(own=first)
                first = False
                self._claim()
                self._maintain()
                due = self.store.atomic(lambda tx: tx.next_due())
            except StoreError as exc:
                log.error("dispatcher: store unavailable: %s", exc)
                due = None
            wait = 1.0 if due is None else min(1.0, max(0.0, due - self.clock()))
            self._wake.wait(wait)

    def _take_over(self, own: bool) -> None:
        now = self.clock()
        for row in self.store.atomic(lambda tx: tx.take_over(self.owner, now, self.config.lease, own)):
            if row.id not in self._active:
                log.info("resuming action id=%s state=%s", row.id, row.state)
                self._spawn(row)

    def _claim(self) -> None:
        free = self.config.max_in_flight - self.busy()
        if free <= 0:
            return
        now = self.clock()
        for row in self.store.atomic(lambda tx: tx.claimable(now, free)):
            if self.store.atomic(lambda tx, i=row.id: tx.claim(i, self.owner, now, self.config.lease)):
                row.update(state=ActionState.DISPATCHING, owner=self.owner)
                self._spawn(row)

    def _spawn(self, row: Action) -> None:
        thread = threading.Thread(target=self._work, args=(row,), name=f"action-{row.id}", daemon=True)
        with self._lock:
            self._active[row.id] = thread
        thread.start()

    def _maintain(self) -> None:
        now = self.clock()
        if now - self._last_maintain < MAINTAIN_EVERY:
            return
        self._last_maintain = now
        for row in self.store.atomic(lambda tx: tx.half_open_breakers()):
            rule = self.rules.get(row.rule)
            if rule:
                self.store.atomic(
                    lambda tx, r=row, p=rule.policy: self._close_if_proven(tx, r.rule, r.target, p)
                )
        if now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            removed = self.store.atomic(lambda tx: tx.prune(now - self.retention))
            log.debug("pruned %d audit rows", removed)

    def _close_if_proven(self, tx: Any, rule: str, target: str, policy: Any) -> None:
        now = self.clock()
        row = tx.breaker(rule, target, now)
        trial = tx.action(row.trial_action_id) if row.trial_action_id else None
        if breaker.close_proven_trial(row, trial, policy, now):
            tx.save_breaker(row)
            log.info("breaker closed after a successful trial key=%s", row.bkey)

    # one action

    def _work(self, row: Action) -> None:
        try:
            steps = {
                ActionState.DISPATCHING: self._dispatch,
                ActionState.QUEUED: self._wait_queue,
                ActionState.BUILDING: self._wait_build,
            }
            while row.state in steps and not self._stop.is_set():
                row = steps[row.state](row)
        except Lost:
            log.info("action id=%s left for another run or replica", row.id)
        except StoreError as exc:
            log.error("action id=%s: store unavailable, retried after the lease: %s", row.id, exc)
        except Exception:  # noqa: BLE001 - the edge of a worker thread: log once, the lease hands it on
            log.exception("action id=%s: unexpected error", row.id)
        finally:
            with self._lock:
                self._active.pop(row.id, None)
            self._wake.set()

    def _save(self, row: Action, **fields: Any) -> Action:
        now = self.clock()
        fields.update(updated_at=now, lease_until=now + self.config.lease)
        if not self.store.atomic(lambda tx: tx.update_action(row.id, owner=self.owner, **fields)):
            raise Lost
        row.update(**fields)
        return row

    def _sleep(self, row: Action, seconds: float) -> None:
        """Wait, keeping the lease; Lost when stopping."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, self.config.lease / 3)):
                raise Lost
            self._save(row)

    def _backoff(self, attempts: int) -> float:
        return min(self.config.backoff_max, self.config.backoff_initial * 2 ** max(0, attempts - 1))

    def _retry_or_fail(self, row: Action, exc: JenkinsError, sent: bool = True) -> Action:
        """Retry after a backoff, or record the action as failed after `max_attempts`.

        When the request surely did not reach Jenkins (`sent` false) the action goes back to
        `pending` until its next attempt, so a resolved alert can still cancel it; otherwise
        this worker keeps it and looks it up in Jenkins before trying again.
        """
        attempts = row.attempts
        if isinstance(exc, JenkinsRejected) or attempts >= self.config.max_attempts:
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
        return row

    def _finish(self, row: Action, result: str, build: Build | None = None, error: str | None = None):
        fields: dict[str, Any] = {"state": ActionState.DONE, "result": result, "finished_at": self.clock()}
        if error:  # otherwise the last problem on the way (a timeout, a 503) stays in the audit
            fields["error"] = error
        if build:
            fields.update(build_number=build.number, build_url=build.url)
        level = logging.INFO if result == "SUCCESS" else logging.WARNING
        log.log(
            level,
            "build finished action=%s job=%s build=%s result=%s",
            row.id,
            row.job,
            fields.get("build_number", row.build_number),
            result,
        )
        self._save(row, **fields)
        self.metrics.builds.labels(row.rule, row.job, result).inc()
        return row

    def _params(self, row: Action) -> dict[str, str]:
        return {**(row.params or {}), self.token_param: row.token or ""}

    def _dispatch(self, row: Action) -> Action:
        if row.dispatched_at is not None:
            # a POST may have reached Jenkins: find it by its token before sending another
            wait = row.dispatched_at + self.grace - self.clock()
            if wait > 0:
                self._sleep(row, wait)
            try:
                found = self.client.find(row.job, self.token_param, row.token)
            except JenkinsError as exc:
                return self._retry_or_fail(self._save(row, attempts=row.attempts + 1), exc)
            if found and found.build:
                log.info("action id=%s found as build %s", row.id, found.build.number)
                return self._save(
                    row,
                    state=ActionState.BUILDING,
                    build_number=found.build.number,
                    build_url=found.build.url,
                )
            if found and found.queue_id is not None:
                log.info("action id=%s found in the queue as item %s", row.id, found.queue_id)
                return self._save(row, state=ActionState.QUEUED, queue_id=found.queue_id)
        self._save(row, dispatched_at=self.clock(), attempts=row.attempts + 1)
        try:
            ref = self.client.trigger(row.job, self._params(row))
        except JenkinsUncertain as exc:
            return self._retry_or_fail(row, exc)
        except JenkinsUnavailable as exc:
            return self._retry_or_fail(row, exc, sent=False)
        except JenkinsRejected as exc:
            return self._fail(row, str(exc))
        log.info("action id=%s queued item=%s merged=%s", row.id, ref.id, ref.merged)
        return self._save(row, state=ActionState.QUEUED, queue_id=ref.id, error=None)

    def _gave_up(self, row: Action) -> bool:
        return self.clock() - (row.dispatched_at or self.clock()) > self.config.follow_timeout

    def _wait_queue(self, row: Action) -> Action:
        while True:
            if self._gave_up(row):
                return self._finish(row, "LOST", error="gave up following the queue item")
            try:
                item = self.client.queue_item(row.queue_id)
                if item is None:  # forgotten: the build, if any, carries our token
                    found = self.client.find(row.job, self.token_param, row.token)
                    if found and found.build:
                        return self._save(
                            row,
                            state=ActionState.BUILDING,
                            build_number=found.build.number,
                            build_url=found.build.url,
                        )
                    if found and found.queue_id is not None:
                        return self._save(row, state=ActionState.QUEUED, queue_id=found.queue_id)
                    return self._finish(row, "LOST", error=f"queue item {row.queue_id} gone, no build found")
                if item.cancelled:
                    return self._finish(row, "NOT_BUILT", error="queue item cancelled")
                if item.build_number is not None:
                    return self._save(
                        row,
                        state=ActionState.BUILDING,
                        build_number=item.build_number,
                        build_url=item.build_url,
                    )
            except JenkinsError as exc:
                log.warning("action id=%s: following queue item %s: %s", row.id, row.queue_id, exc)
            self._sleep(row, self.poll_interval)

    def _wait_build(self, row: Action) -> Action:
        while True:
            if self._gave_up(row):
                return self._finish(row, "LOST", error="gave up following the build")
            try:
                build = self.client.build(row.job, row.build_number)
                if build is None:
                    return self._finish(row, "LOST", error=f"build {row.build_number} not found")
                if build.result is not None:
                    return self._finish(row, build.result, build)
            except JenkinsError as exc:
                log.warning("action id=%s: following build %s: %s", row.id, row.build_number, exc)
            self._sleep(row, self.poll_interval)
