"""Chores of the dispatcher's loop that belong to no action: close proven breakers, prune the audit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping

from . import breaker
from .config import BreakerPolicy
from .rules import Rule
from .store import SqlStore, Tx

log = logging.getLogger(__name__)
MAINTAIN_EVERY = 5.0
PRUNE_EVERY = 3600.0


class Housekeeping:
    """Run `due()` often; it does its work every MAINTAIN_EVERY / PRUNE_EVERY seconds."""

    def __init__(
        self, store: SqlStore, rules: Mapping[str, Rule], retention: float, clock: Callable[[], float]
    ):
        self.store = store
        self.rules = rules
        self.retention = retention
        self.clock = clock
        self._last_maintain = self._last_prune = 0.0

    def due(self) -> None:
        """Close half-open breakers whose trial proved itself; now and then forget old audit rows."""
        now = self.clock()
        if now - self._last_maintain < MAINTAIN_EVERY:
            return
        self._last_maintain = now
        for row in self.store.atomic(lambda tx: tx.half_open_breakers()):
            rule = self.rules.get(row.rule)
            if rule:
                self.store.atomic(
                    functools.partial(
                        self._close_if_proven, rule=row.rule, target=row.target, policy=rule.policy
                    )
                )
        if now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            removed = self.store.atomic(lambda tx: tx.prune(now - self.retention))
            log.debug("pruned %d audit rows", removed)

    def _close_if_proven(self, tx: Tx, rule: str, target: str, policy: BreakerPolicy) -> None:
        now = self.clock()
        row = tx.breaker(rule, target, now)
        trial = tx.action(row.trial_action_id) if row.trial_action_id else None
        if breaker.close_proven_trial(row, trial, policy, now):
            tx.save_breaker(row)
            log.info("breaker closed after a successful trial key=%s", row.bkey)
