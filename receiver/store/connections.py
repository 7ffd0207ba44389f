"""Connections (one per thread), transactions retried on deadlocks, errors turned into StoreError."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from .errors import StoreError
from .transaction import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


class SqlStore:
    """Connection handling and the queries that need no transaction logic of their own."""

    for_update = ""
    transient_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    # back end hooks

    def connect(self) -> Any:
        raise NotImplementedError

    def create_schema(self) -> None:
        raise NotImplementedError

    def serialized(self) -> AbstractContextManager[Any]:
        """Held around each transaction; a back end with a single writer queues its threads here."""
        return nullcontext()

    def begin(self, cur: Any) -> None:
        cur.execute("BEGIN")

    def sql(self, text: str) -> str:
        return text

    def on_conflict_ignore(self, column: str) -> str:
        raise NotImplementedError

    def on_conflict_update(self, key: str, column: str) -> str:
        """An insert whose row exists (unique `key`) sets `column` to one more parameter instead."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        return False

    def errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def describe(self, exc: BaseException) -> str:
        """What a failed statement or connection means, for the error message."""
        return str(exc)

    # connections: one per thread (neither sqlite3 nor PyMySQL connections are thread-safe)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                log.debug("closing a broken store connection failed")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - other threads' connections, best effort
                log.debug("closing a store connection failed")

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        conn = self._conn()
        cur = conn.cursor()
        self.begin(cur)
        try:
            yield Tx(cur, self)
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cur.close()

    def atomic(self, fn: Callable[[Tx], T], attempts: int = 5) -> T:
        """Run fn(tx) in one transaction, retried on deadlocks; StoreError when it cannot."""
        for attempt in range(attempts):
            try:
                with self.serialized(), self._transaction() as tx:
                    return fn(tx)
            except self.errors() as exc:
                if self.is_transient(exc) and attempt + 1 < attempts:
                    log.debug("store transaction retried: %s", exc)
                    continue
                self._drop_conn()
                raise StoreError(f"store failed: {self.describe(exc)}") from exc
        raise StoreError("store failed: too many retries")

    def server_time(self) -> float | None:
        """The store server's clock, when it has one of its own (None: the local clock is the store's)."""
        return None

    def ping(self) -> None:
        """StoreError unless a query goes through."""
        self.atomic(lambda tx: tx.scalar("SELECT 1"))
