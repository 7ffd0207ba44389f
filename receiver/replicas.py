"""Replica identity and liveness in the store, and the store's clock for every replica.

Each receiver process registers its replica name in the `replicas` table with a random
instance id and beats its heartbeat every `heartbeat` seconds. A name held by a live process
(a heartbeat that keeps moving) is refused at start-up: two replicas with one name would take
each other's actions and count each build twice. A replica whose heartbeat stopped for
`heartbeat_timeout` loses its started actions to the others at once, not after a full lease.

One clock: every time that replicas compare (leases, heartbeats, cooldowns, windows) is the
store's. `StoreClock` is the local clock plus the offset to the database server's clock,
measured at registration and at each heartbeat (half the round trip is the error), so the
skew between replicas' own clocks does not matter.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .store import SqlStore, StoreError, Tx

log = logging.getLogger(__name__)


class ReplicaNameTaken(Exception):
    """A live receiver already holds this replica name."""


def persisted_name(state_dir: str) -> str:
    """The replica name of this state directory: `<host>-<random>`, generated once and kept."""
    path = Path(state_dir) / "replica-name"
    try:
        name = path.read_text(encoding="utf-8").strip()
        if name:
            return name
    except OSError:  # none yet (or the folder is unusable: then it cannot be kept either)
        pass
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:48] or "receiver"
    name = f"{host}-{uuid.uuid4().hex[:8]}"
    try:
        os.makedirs(path.parent, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(name + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        # a read-only file system (a container's): still a unique name, just not the same
        # after a restart, which costs nothing but a takeover of our own started actions
        log.warning(
            "replica name=%s is not kept (%s): set store.replica, or STACKMEDIC_RECEIVER_STATE_DIR"
            " to a writable folder",
            name,
            exc,
        )
    return name


class StoreClock:
    """The store server's time, read through the local clock and a measured offset."""

    def __init__(self, local: Callable[[], float] = time.time):
        self.local = local
        self.offset = 0.0

    def __call__(self) -> float:
        return self.local() + self.offset

    def measure(self, store: SqlStore) -> None:
        """Set the offset from one reading of the server's clock (StoreError when it cannot)."""
        before = self.local()
        server = store.server_time()
        after = self.local()
        if server is not None:
            self.offset = server - (before + after) / 2


class Replica:
    """This process's registration under `name`; `start()` registers and beats in a thread."""

    def __init__(
        self,
        store: SqlStore,
        name: str,
        clock: Callable[[], float],
        heartbeat: float,
        heartbeat_timeout: float,
        store_clock: StoreClock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.name = name
        self.clock = clock
        self.heartbeat = heartbeat
        self.heartbeat_timeout = heartbeat_timeout
        self.store_clock = store_clock
        self.instance = uuid.uuid4().hex
        self.sleep = sleep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        """Hold the name, waiting out a heartbeat that may be a dead process's; ReplicaNameTaken if it lives."""
        if self.store_clock:
            self.store_clock.measure(self.store)
        seen = None
        deadline = time.monotonic() + self.heartbeat_timeout + self.heartbeat
        while True:
            now = self.clock()
            holder = self.store.atomic(
                functools.partial(
                    Tx.claim_replica,
                    name=self.name,
                    instance=self.instance,
                    now=now,
                    timeout=self.heartbeat_timeout,
                )
            )
            if holder is None:
                log.info("replica registered name=%s instance=%s", self.name, self.instance)
                return
            if seen is not None and holder != seen:
                break  # the heartbeat moved: a live process holds the name
            seen = holder
            if time.monotonic() >= deadline:
                break
            self.sleep(self.heartbeat / 2)
        raise ReplicaNameTaken(
            f"replica name {self.name!r} is held by a live receiver (its heartbeat moves);"
            " give each replica its own store.replica, or leave it unset for a generated one"
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> bool:
        """Move the heartbeat; False when another process took the name (after ours stopped)."""
        if self.store_clock:
            self.store_clock.measure(self.store)
        now = self.clock()
        return self.store.atomic(lambda tx: tx.beat_replica(self.name, self.instance, now))

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                if not self.beat():
                    log.error(
                        "replica name=%s was taken over by another process: its actions are no longer ours",
                        self.name,
                    )
            except StoreError as exc:
                log.error("heartbeat: store unavailable: %s", exc)

    def stop(self) -> None:
        """Stop beating and give the name up, so the others take our actions at once."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        try:
            self.store.atomic(lambda tx: tx.leave_replica(self.name, self.instance))
        except StoreError as exc:
            log.warning("could not give up replica name=%s: %s", self.name, exc)
