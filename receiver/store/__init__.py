"""The durable store: incidents, the audit of every decision, actions, breakers and pauses.

Two back ends with the same semantics: SQLite (WAL, the default, one receiver) and MySQL
(several replicas sharing state). Deduplication is atomic through the unique key
(rule, fingerprint, starts_at) on incidents; breaker and action decisions for one rule and
target are serialised by a row lock on the breaker.

connections.py: SqlStore, connections per thread and transactions; transaction.py: Tx, every
query; errors.py: StoreError; sqlite.py and mysql.py: the back ends.
"""

from __future__ import annotations

from ..config import StoreConfig
from .connections import SqlStore
from .errors import StoreError
from .transaction import Tx

__all__ = ["SqlStore", "StoreError", "Tx", "open_store"]


def open_store(config: StoreConfig) -> SqlStore:
    """The configured store, with its schema created."""
    if config.type == "mysql":
        from .mysql import MySQLStore

        store: SqlStore = MySQLStore(config)
    else:
        from .sqlite import SQLiteStore

        store = SQLiteStore(config.path, synchronous=config.synchronous)
    store.create_schema()
    return store
