"""Columns and indexes added after the first release, added to an existing database at start-up.

Both back ends create their tables as first released and then add what is missing here, so
a receiver upgraded in place keeps its audit, incidents and breakers. Each column may be
NULL: rows written before it existed have no value.
"""

from __future__ import annotations

from typing import Any

ADDED: tuple[tuple[str, str, str], ...] = (
    # issue 11: incidents stay open and are worked on; operators' rows; build descriptions
    ("incidents", "summary", "TEXT"),
    ("incidents", "runbook_url", "TEXT"),
    ("incidents", "decided_at", "DOUBLE"),
    ("incidents", "held_at", "DOUBLE"),
    ("incidents", "escalated_at", "DOUBLE"),
    ("actions", "author", "VARCHAR(128)"),
    ("actions", "description", "TEXT"),
    ("breakers", "cooldown_cleared_at", "DOUBLE"),
    ("pauses", "author", "VARCHAR(128)"),
    # issue 12: the fencing version, bumped whenever an action changes hands or is sent
    ("actions", "fence", "BIGINT"),
    # issue 13: the named token whose webhook opened an incident
    ("incidents", "author", "VARCHAR(128)"),
    # the state of the incident's action when its alert resolved, if it was still running
    ("incidents", "resolved_while", "VARCHAR(16)"),
)


def add_missing(tx: Any, existing: Any) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for each column of ADDED that `existing(tx, table)` lacks."""
    added = []
    have: dict[str, set[str]] = {}
    for table, column, kind in ADDED:
        if table not in have:
            have[table] = {c.lower() for c in existing(tx, table)}
        if column not in have[table]:
            tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            added.append(f"{table}.{column}")
    return added


# Indexes that the first release lacked. Without incidents_open every firing notification
# scanned all the incidents of its rule (newest_open_action) while it held the breaker's row
# lock; without incidents_action every resolution scanned the table (open_incidents_of_action).
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("incidents", "incidents_open", "rule, target, resolved_at, action_id"),
    ("incidents", "incidents_action", "action_id"),
)


def add_missing_indexes(
    tx: Any, existing: Any, statement: str = "CREATE INDEX {name} ON {table} ({keys})"
) -> list[str]:
    """`statement` for each index of INDEXES whose name `existing(tx, table)` lacks."""
    added = []
    have: dict[str, set[str]] = {}
    for table, name, keys in INDEXES:
        if table not in have:
            have[table] = {i.lower() for i in existing(tx, table)}
        if name not in have[table]:
            tx.execute(statement.format(table=table, name=name, keys=keys))
            added.append(name)
    return added
