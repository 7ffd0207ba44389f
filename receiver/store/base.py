"""SQL shared by both back ends; each back end supplies connections, DDL and a few dialect bits."""

from __future__ import annotations

import json
from typing import Any

IN_FLIGHT_STATES = ("pending", "dispatching", "queued", "building")
FINAL_STATES = ("done", "failed", "cancelled")
BREAKER_COLUMNS = (
    "rule",
    "target",
    "state",
    "opened_at",
    "reason",
    "ineffective",
    "reset_at",
    "trial_action_id",
) + ("updated_at",)


class StoreError(Exception):
    """The store cannot be read or written; the webhook answers 5xx so Alertmanager retries."""


class Tx:
    """Operations inside one transaction (SqlStore.atomic); rows are dicts."""

    def __init__(self, cursor: Any, dialect: Any):
        self.cur = cursor
        self.d = dialect

    def execute(self, sql: str, args: tuple = ()) -> Any:
        self.cur.execute(self.d.sql(sql), args)
        return self.cur

    def rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, args)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def row(self, sql: str, args: tuple = ()) -> dict[str, Any] | None:
        found = self.rows(sql, args)
        return found[0] if found else None

    def scalar(self, sql: str, args: tuple = ()) -> Any:
        return self.execute(sql, args).fetchone()[0]

    # incidents

    def incident(self, rule: str, fingerprint: str, starts_at: str) -> dict[str, Any] | None:
        """The incident, locked for the rest of the transaction."""
        return self.row(
            "SELECT * FROM incidents WHERE rule=? AND fingerprint=? AND starts_at=?" + self.d.for_update,  # noqa: S608
            (rule, fingerprint, starts_at),
        )

    def open_incident(self, **fields: Any) -> dict[str, Any]:
        """Insert the incident unless its key exists (atomic, also across replicas); return it locked."""
        names = list(fields)
        self.execute(
            f"INSERT INTO incidents ({','.join(names)}) VALUES ({','.join('?' * len(names))})"  # noqa: S608
            + self.d.on_conflict_ignore("id"),
            tuple(fields.values()),
        )
        found = self.incident(fields["rule"], fields["fingerprint"], fields["starts_at"])
        assert found is not None
        return found

    def update_incident(self, incident_id: int, **fields: Any) -> None:
        sets = ",".join(f"{k}=?" for k in fields)
        self.execute(f"UPDATE incidents SET {sets} WHERE id=?", (*fields.values(), incident_id))  # noqa: S608

    # actions (every decision is a row; triggered ones carry a token and a dispatch state)

    def insert_action(self, **fields: Any) -> int:
        if isinstance(fields.get("params"), dict):
            fields["params"] = json.dumps(fields["params"], sort_keys=True)
        names = list(fields)
        cur = self.execute(
            f"INSERT INTO actions ({','.join(names)}) VALUES ({','.join('?' * len(names))})",  # noqa: S608
            tuple(fields.values()),
        )
        return int(cur.lastrowid)

    def update_action(self, action_id: int, *, owner: str | None = None, **fields: Any) -> bool:
        """Update an action; with `owner`, only while that replica still holds it."""
        sets = ",".join(f"{k}=?" for k in fields)
        sql, args = f"UPDATE actions SET {sets} WHERE id=?", (*fields.values(), action_id)  # noqa: S608
        if owner is not None:
            sql, args = sql + " AND owner=?", (*args, owner)
        return self.execute(sql, args).rowcount == 1

    def action(self, action_id: int) -> dict[str, Any] | None:
        return self.row("SELECT * FROM actions WHERE id=?", (action_id,))

    # Only actions that call Jenkins have `acted_at`; the index (rule, target, acted_at) holds
    # the other decisions as NULLs that a range never visits, however many duplicates pile up.

    def last_action(self, rule: str, target: str) -> dict[str, Any] | None:
        """The newest action that called (or tried to call) Jenkins for this rule and target."""
        return self.row(
            "SELECT * FROM actions WHERE rule=? AND target=? AND acted_at IS NOT NULL"
            " ORDER BY acted_at DESC, id DESC LIMIT 1",
            (rule, target),
        )

    def count_actions(self, rule: str, target: str, since: float) -> int:
        return int(
            self.scalar(
                "SELECT COUNT(*) FROM actions WHERE rule=? AND target=? AND acted_at >= ?",
                (rule, target, since),
            )
        )

    # breakers and pauses

    def breaker(self, rule: str, target: str, now: float) -> dict[str, Any]:
        """The breaker row for rule and target (created closed), locked: one decision at a time."""
        key = breaker_key(rule, target)
        self.execute(
            "INSERT INTO breakers (bkey,rule,target,state,ineffective,updated_at) VALUES (?,?,?,'closed',0,?)"  # noqa: S608
            + self.d.on_conflict_ignore("bkey"),
            (key, rule, target, now),
        )
        found = self.row("SELECT * FROM breakers WHERE bkey=?" + self.d.for_update, (key,))  # noqa: S608
        assert found is not None
        return found

    def save_breaker(self, row: dict[str, Any]) -> None:
        sets = ",".join(f"{k}=?" for k in BREAKER_COLUMNS)
        args = (*(row[k] for k in BREAKER_COLUMNS), row["bkey"])
        self.execute(f"UPDATE breakers SET {sets} WHERE bkey=?", args)  # noqa: S608

    def active_pause(self, target: str, now: float) -> dict[str, Any] | None:
        return self.row(
            "SELECT * FROM pauses WHERE target IN (?, '*') AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
            (target, now),
        )


def breaker_key(rule: str, target: str) -> str:
    """The breaker's name in the API: rule:target."""
    return f"{rule}:{target}"
