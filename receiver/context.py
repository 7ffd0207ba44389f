"""The services a running receiver is made of, and `current()` to reach them from a request.

Kept apart from `app.py` so that the blueprints (`api.py`, `web.py`) can import `current()`
without importing the module that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from prometheus_client import CollectorRegistry

from .config import Config
from .dispatcher import Dispatcher
from .intake import Intake
from .metrics import ReceiverMetrics
from .notify import Notifier
from .replicas import Replica
from .rules import Rule
from .store import SqlStore

EXTENSION = "stackmedic"


@dataclass
class Services:
    """What the request handlers use; `current()` finds them on the running app."""

    config: Config
    store: SqlStore
    rules: list[Rule]
    metrics: ReceiverMetrics
    registry: CollectorRegistry
    intake: Intake
    notifier: Notifier
    dispatcher: Dispatcher | None
    clock: Callable[[], float]
    replica: Replica | None = None

    @property
    def dry_run(self) -> bool:
        return self.dispatcher is None

    def close(self) -> None:
        """Stop the dispatcher and close the store (tests, shutdown)."""
        if self.dispatcher:
            self.dispatcher.stop()
        if self.replica:
            self.replica.stop()
        self.notifier.join()
        self.store.close()


def current() -> Services:
    """The services of the app handling the current request."""
    return current_app.extensions[EXTENSION]
