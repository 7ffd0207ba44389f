"""The background dispatcher: claims pending actions, takes over abandoned ones, runs each in a worker.

One worker thread per action in flight (at most `max_in_flight`), one action at a time per
target (the store only hands out the oldest unfinished action of a target). What a worker
does with its action is `action_flow.py`; the actuator bounds its own concurrent requests.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping

from .action_flow import ActionFlow, Lost
from .actuators.base import Actuator
from .config import DispatcherConfig
from .housekeeping import Housekeeping
from .metrics import ReceiverMetrics
from .model import Action
from .rules import Rule
from .store import SqlStore, StoreError, Tx

log = logging.getLogger(__name__)
DEFAULT_ACTUATOR = "jenkins"


class Dispatcher:
    """Runs the actions the intake wrote, for replica `owner`."""

    # a replica whose heartbeat is older than this loses its started actions (replicas.py)
    heartbeat_timeout: float = DispatcherConfig.heartbeat_timeout

    def __init__(
        self,
        store: SqlStore,
        actuators: Mapping[str, Actuator],
        config: DispatcherConfig,
        metrics: ReceiverMetrics,
        rules: Mapping[str, Rule],
        owner: str,
        poll_interval: float,
        grace: float,
        retention: float,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.actuators = actuators
        self.config = config
        self.rules = rules
        self.owner = owner
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._loop: threading.Thread | None = None
        # the loop renews its workers' leases on every pass: at least three passes per lease
        self._period = min(1.0, config.lease / 3)
        self.flow = ActionFlow(
            store, config, metrics, owner, self._actuator, poll_interval, grace, clock, self._stop
        )
        self.housekeeping = Housekeeping(store, rules, retention, clock)

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
                self._renew()
                self._claim()
                self.housekeeping.due()
                due = self.store.atomic(lambda tx: tx.next_due())
            except StoreError as exc:
                log.error("dispatcher: store unavailable: %s", exc)
                due = None
            wait = self._period if due is None else min(self._period, max(0.0, due - self.clock()))
            self._wake.wait(wait)

    def _take_over(self, own: bool) -> None:
        now = self.clock()
        with self._lock:
            busy = set(self._active)
        dead_before = now - self.heartbeat_timeout
        for row in self.store.atomic(
            lambda tx: tx.take_over(self.owner, now, self.config.lease, own, busy, dead_before)
        ):
            if row.id not in self._active:
                log.info("resuming action id=%s state=%s", row.id, row.state)
                self._spawn(row)

    def _renew(self) -> None:
        """Keep the leases of the actions our workers hold while this loop lives.

        A worker may wait for a connection slot (or in a slow request) longer than a lease;
        without this, a live replica's action passed to another replica, which waited in turn,
        and under a slow Jenkins no action ever finished. A stalled loop or a dead process
        stops renewing, and the lease (or the heartbeat) hands the actions on.
        """
        with self._lock:
            busy = list(self._active)
        if busy:
            until = self.clock() + self.config.lease
            self.store.atomic(lambda tx: tx.renew_leases(self.owner, busy, until))

    def _claim(self) -> None:
        free = self.config.max_in_flight - self.busy()
        if free <= 0:
            return
        now = self.clock()
        for row in self.store.atomic(lambda tx: tx.claimable(now, free)):
            claimed = self.store.atomic(
                functools.partial(
                    Tx.claim, action_id=row.id, owner=self.owner, now=now, lease=self.config.lease
                )
            )
            if claimed is not None:
                self._spawn(claimed)

    def _actuator(self, row: Action) -> Actuator:
        """The actuator of the action's rule (`actuator:`, default jenkins)."""
        rule = self.rules.get(row.rule or "")
        return self.actuators[rule.config.actuator if rule else DEFAULT_ACTUATOR]

    def _spawn(self, row: Action) -> None:
        thread = threading.Thread(target=self._work, args=(row,), name=f"action-{row.id}", daemon=True)
        with self._lock:
            self._active[row.id] = thread
        thread.start()

    def _work(self, row: Action) -> None:
        """A worker thread's edge: log once whatever ends the flow; the lease hands it on."""
        try:
            self.flow.run(row)
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
