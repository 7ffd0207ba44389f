"""Failed logins, logged at most once a minute with how many were not: a guesser's
thousands of attempts leave one line a minute, never a credential."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class FailureLog:
    """Log failed logins at most once per `interval` seconds, with how many were not logged."""

    def __init__(
        self,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ):
        self.interval, self.clock = interval, clock
        self.log = logger or log
        self._lock = threading.Lock()
        self._last = -interval
        self._suppressed = 0

    def record(self, reason: str, client: str, path: str, token: str | None = None) -> bool:
        """Log this failure unless one was logged within the interval; True when logged.

        `token`: the name of a revoked token still in use (its name, never the token).
        """
        with self._lock:
            now = self.clock()
            if now - self._last < self.interval:
                self._suppressed += 1
                return False
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        self.log.warning(
            "authentication failed reason=%s%s client=%s path=%s not_logged_since_last=%d",
            reason,
            f" token_name={token}" if token else "",
            client,
            path,
            suppressed,
        )
        return True
