"""Tx: every query of the receiver, inside one transaction, grouped by table.

The SQL is shared by both back ends; each back end (sqlite.py, mysql.py) supplies its
connections, its DDL and a few dialect bits (placeholders, FOR UPDATE, insert-or-ignore).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import fields
from typing import Any

from ..model import (
    FINAL_STATES,
    IN_FLIGHT_STATES,
    STARTED_STATES,
    Action,
    ActionState,
    Breaker,
    BreakerState,
    Decision,
    Incident,
    Pause,
)

_IN_FLIGHT = ",".join(f"'{s}'" for s in IN_FLIGHT_STATES)
_STARTED = ",".join(f"'{s}'" for s in STARTED_STATES)
_FINAL = ",".join(f"'{s}'" for s in FINAL_STATES)
BREAKER_COLUMNS = tuple(f.name for f in fields(Breaker) if f.name != "bkey")


class Tx:
    """Operations inside one transaction (SqlStore.atomic); rows come back typed (model.py)."""

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

    def incident(self, rule: str, fingerprint: str, starts_at: str) -> Incident | None:
        """The incident, locked for the rest of the transaction."""
        return _typed(
            Incident,
            self.row(
                "SELECT * FROM incidents WHERE rule=? AND fingerprint=? AND starts_at=?" + self.d.for_update,  # noqa: S608
                (rule, fingerprint, starts_at),
            ),
        )

    def open_incident(self, **fields: Any) -> Incident:
        """Insert the incident unless its key exists (atomic, also across replicas); return it locked.

        Either way its `decided_at` becomes the one given, in the same statement.
        """
        names = list(fields)
        self.execute(
            f"INSERT INTO incidents ({','.join(names)}) VALUES ({','.join('?' * len(names))})"  # noqa: S608
            + self.d.on_conflict_update("rule, fingerprint, starts_at", "decided_at"),
            (*fields.values(), fields["decided_at"]),
        )
        found = self.incident(fields["rule"], fields["fingerprint"], fields["starts_at"])
        assert found is not None
        return found

    def newest_open_action(self, rule: str, target: str, fingerprint: str) -> int | None:
        """The newest action of the open incidents of rule and target with another fingerprint.

        The same fingerprint with a new startsAt is the same alert firing again: its older
        incident is over, whatever we heard of it, and shares nothing.
        """
        # MAX(action_id) as a walk down the index incidents_open, stopping at the first other
        # fingerprint: MAX() with the fingerprint condition read every open incident of the target
        found = self.row(
            "SELECT action_id FROM incidents WHERE rule=? AND target=? AND resolved_at IS NULL"
            " AND action_id IS NOT NULL AND fingerprint<>? ORDER BY action_id DESC LIMIT 1",
            (rule, target, fingerprint),
        )
        return None if found is None else int(found["action_id"])

    def open_incidents_of_action(self, action_id: int, other_than: int) -> int:
        """How many open incidents besides `other_than` wait on this action."""
        return int(
            self.scalar(
                "SELECT COUNT(*) FROM incidents WHERE action_id=? AND resolved_at IS NULL AND id<>?",
                (action_id, other_than),
            )
        )

    def resolved_while_in_flight(self, action_id: int) -> list[Incident]:
        """Incidents of this action whose alert resolved before it finished."""
        rows = self.rows(
            "SELECT * FROM incidents WHERE action_id=? AND resolved_while IS NOT NULL ORDER BY id",
            (action_id,),
        )
        return [Incident.from_row(r) for r in rows]

    def set_resolution_reason(self, incident_id: int, reason: str) -> int:
        """Rewrite the reason of the incident's `resolved` audit row (a credit decided later)."""
        return self.execute(
            "UPDATE actions SET reason=? WHERE incident_id=? AND decision=?",
            (reason, incident_id, Decision.RESOLVED.value),
        ).rowcount

    def update_incident(self, incident_id: int, **fields: Any) -> None:
        sets = ",".join(f"{k}=?" for k in fields)
        self.execute(f"UPDATE incidents SET {sets} WHERE id=?", (*fields.values(), incident_id))  # noqa: S608

    def incident_attempts(self, incident_id: int) -> int:
        """Actions made (or tried) for the incident."""
        return int(
            self.scalar(
                "SELECT COUNT(*) FROM actions WHERE incident_id=? AND acted_at IS NOT NULL", (incident_id,)
            )
        )

    def clear_escalations(self, rule: str, target: str) -> int:
        """A reset: the open incidents of rule and target are no longer escalated (a new one pages again)."""
        return self.execute(
            "UPDATE incidents SET escalated_at=NULL WHERE rule=? AND target=? AND resolved_at IS NULL"
            " AND escalated_at IS NOT NULL",
            (rule, target),
        ).rowcount

    def open_incidents(self, fresh_after: float, limit: int = 200) -> list[Incident]:
        """Incidents not resolved whose alert was still sent after `fresh_after`, newest first."""
        rows = self.rows(
            "SELECT * FROM incidents WHERE resolved_at IS NULL AND COALESCE(decided_at, opened_at) >= ?"
            " ORDER BY starts_ts DESC, id DESC LIMIT ?",
            (fresh_after, limit),
        )
        return [Incident.from_row(r) for r in rows]

    def incident_actions(self, incident_ids: list[int]) -> list[Action]:
        """The actions (builds, tried or made) of these incidents, oldest first."""
        if not incident_ids:
            return []
        marks = ",".join("?" * len(incident_ids))
        return self.actions(
            f"SELECT * FROM actions WHERE incident_id IN ({marks}) AND acted_at IS NOT NULL ORDER BY id",  # noqa: S608
            tuple(incident_ids),
        )

    def last_decisions(self) -> list[dict[str, Any]]:
        """Per rule and target: when a firing notification was last decided on."""
        return self.rows(
            "SELECT rule, target, MAX(decided_at) AS at FROM incidents"
            " WHERE decided_at IS NOT NULL GROUP BY rule, target"
        )

    def last_finished(self, rule: str, target: str) -> Action | None:
        """The newest action of rule and target that reached its end (done or failed)."""
        return _typed(
            Action,
            self.row(
                "SELECT * FROM actions WHERE rule=? AND target=? AND acted_at IS NOT NULL"
                " AND state IN (?, ?) ORDER BY acted_at DESC, id DESC LIMIT 1",
                (rule, target, ActionState.DONE, ActionState.FAILED),
            ),
        )

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

    def update_action(
        self, action_id: int, *, owner: str | None = None, fence: int | None = None, **fields: Any
    ) -> bool:
        """Update an action; with `owner` and `fence`, only while that worker still holds it."""
        sets = ",".join(f"{k}=?" for k in fields)
        sql, args = f"UPDATE actions SET {sets} WHERE id=?", (*fields.values(), action_id)  # noqa: S608
        if owner is not None:
            sql, args = sql + " AND owner=?", (*args, owner)
        if fence is not None:
            sql, args = sql + " AND fence=?", (*args, fence)
        return self.execute(sql, args).rowcount == 1

    def renew_leases(self, owner: str, ids: Collection[int], until: float) -> int:
        """Extend the leases of started actions `owner` still holds among `ids`; how many."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        return self.execute(
            f"UPDATE actions SET lease_until=? WHERE owner=? AND state IN ({_STARTED}) AND id IN ({marks})",  # noqa: S608
            (until, owner, *ids),
        ).rowcount

    def confirm_send(self, action_id: int, owner: str, fence: int, now: float, lease: float) -> bool:
        """The last word before a request is sent: still ours? Then mark it sent, bump the fence, extend the lease.

        In one statement, so a take-over (which bumps the fence too) is either before it (and
        this fails) or after it (and sees a fresh lease and a `dispatched_at` to look up).
        """
        return (
            self.execute(
                "UPDATE actions SET fence=fence+1, dispatched_at=?, attempts=attempts+1, lease_until=?,"
                " updated_at=? WHERE id=? AND owner=? AND fence=? AND state=?",
                (now, now + lease, now, action_id, owner, fence, ActionState.DISPATCHING),
            ).rowcount
            == 1
        )

    def action(self, action_id: int) -> Action | None:
        return _typed(Action, self.row("SELECT * FROM actions WHERE id=?", (action_id,)))

    def actions(self, sql: str, args: tuple = ()) -> list[Action]:
        return [Action.from_row(r) for r in self.rows(sql, args)]

    # Only actions that call Jenkins have `acted_at`; the index (rule, target, acted_at) holds
    # the other decisions as NULLs that a range never visits, however many duplicates pile up.

    def last_action(self, rule: str, target: str) -> Action | None:
        """The newest action that called (or tried to call) Jenkins for this rule and target."""
        return _typed(
            Action,
            self.row(
                "SELECT * FROM actions WHERE rule=? AND target=? AND acted_at IS NOT NULL"
                " ORDER BY acted_at DESC, id DESC LIMIT 1",
                (rule, target),
            ),
        )

    def count_actions(self, rule: str, target: str, since: float) -> int:
        return int(
            self.scalar(
                "SELECT COUNT(*) FROM actions WHERE rule=? AND target=? AND acted_at >= ?",
                (rule, target, since),
            )
        )

    # breakers and pauses

    def breaker(self, rule: str, target: str, now: float) -> Breaker:
        """The breaker row for rule and target (created closed), locked: one decision at a time.

        Read first: the row nearly always exists, and the insert is then a round trip saved.
        """
        key = breaker_key(rule, target)
        found = self.get_breaker(key)
        if found is None:
            self.execute(
                "INSERT INTO breakers (bkey,rule,target,state,ineffective,updated_at) VALUES (?,?,?,?,0,?)"  # noqa: S608
                + self.d.on_conflict_ignore("bkey"),
                (key, rule, target, BreakerState.CLOSED, now),
            )
            found = self.get_breaker(key)
        assert found is not None
        return found

    def save_breaker(self, row: Breaker) -> None:
        sets = ",".join(f"{k}=?" for k in BREAKER_COLUMNS)
        args = (*(getattr(row, k) for k in BREAKER_COLUMNS), row.bkey)
        self.execute(f"UPDATE breakers SET {sets} WHERE bkey=?", args)  # noqa: S608

    def active_pause(self, target: str, now: float) -> Pause | None:
        return _typed(
            Pause,
            self.row(
                "SELECT * FROM pauses WHERE target IN (?, '*') AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
                (target, now),
            ),
        )

    # the dispatcher

    def claimable(self, now: float, limit: int) -> list[Action]:
        """Pending actions that are due and first in line for their target (one at a time)."""
        return self.actions(
            f"SELECT a.* FROM actions a WHERE a.state='{ActionState.PENDING}' AND a.next_attempt_at <= ?"  # noqa: S608
            f" AND NOT EXISTS (SELECT 1 FROM actions b WHERE b.state IN ({_IN_FLIGHT})"
            " AND b.target=a.target AND b.id < a.id) ORDER BY a.id LIMIT ?",
            (now, limit),
        )

    def next_due(self) -> float | None:
        return self.scalar(f"SELECT MIN(next_attempt_at) FROM actions WHERE state='{ActionState.PENDING}'")  # noqa: S608

    def claim(self, action_id: int, owner: str, now: float, lease: float) -> Action | None:
        """Take a pending action for this replica (a new fence); None when another one was faster."""
        cur = self.execute(
            "UPDATE actions SET state=?, owner=?, fence=COALESCE(fence,0)+1, lease_until=?, updated_at=?"
            " WHERE id=? AND state=?",
            (ActionState.DISPATCHING, owner, now + lease, now, action_id, ActionState.PENDING),
        )
        return self.action(action_id) if cur.rowcount == 1 else None

    def take_over(
        self,
        owner: str,
        now: float,
        lease: float,
        own: bool,
        busy: Collection[int] = (),
        dead_before: float | None = None,
    ) -> list[Action]:
        """Started actions whose lease ran out or whose replica's heartbeat stopped before
        `dead_before`, and with `own` those of a previous run of this replica.

        `busy`: actions this replica's workers hold now; taking them would only fence them out.
        """
        mine = owner if own else ""  # no action has an empty owner
        dead = -1.0 if dead_before is None else dead_before
        # the same condition again in the UPDATE: another replica may have taken it meanwhile
        takeable = (
            f"state IN ({_STARTED}) AND (owner=? OR lease_until < ?"  # noqa: S608
            " OR owner IN (SELECT name FROM replicas WHERE heartbeat_at < ? AND name <> ?))"
        )
        candidates = self.rows(f"SELECT id FROM actions WHERE {takeable}", (mine, now, dead, owner))  # noqa: S608
        taken = []
        for row in candidates:
            if row["id"] in busy:
                continue
            cur = self.execute(
                f"UPDATE actions SET owner=?, fence=COALESCE(fence,0)+1, lease_until=? WHERE id=? AND {takeable}",  # noqa: S608
                (owner, now + lease, row["id"], mine, now, dead, owner),
            )
            if cur.rowcount == 1 and (action := self.action(row["id"])) is not None:
                taken.append(action)
        return taken

    # replicas

    def claim_replica(self, name: str, instance: str, now: float, timeout: float) -> float | None:
        """Hold `name` for `instance` unless a heartbeat newer than `timeout` holds it: then its time."""
        self.execute(
            "INSERT INTO replicas (name, instance, heartbeat_at, started_at) VALUES (?,?,?,?)"  # noqa: S608
            + self.d.on_conflict_ignore("name"),
            (name, instance, now, now),
        )
        row = self.row("SELECT * FROM replicas WHERE name=?" + self.d.for_update, (name,))  # noqa: S608
        assert row is not None
        if row["instance"] != instance and row["heartbeat_at"] >= now - timeout:
            return float(row["heartbeat_at"])
        self.execute(
            "UPDATE replicas SET instance=?, heartbeat_at=?, started_at=? WHERE name=?",
            (instance, now, now, name),
        )
        return None

    def beat_replica(self, name: str, instance: str, now: float) -> bool:
        cur = self.execute(
            "UPDATE replicas SET heartbeat_at=? WHERE name=? AND instance=?", (now, name, instance)
        )
        return cur.rowcount == 1

    def leave_replica(self, name: str, instance: str) -> None:
        """A clean stop: the heartbeat is dead at once, so other replicas resume our actions now."""
        self.execute("UPDATE replicas SET heartbeat_at=0 WHERE name=? AND instance=?", (name, instance))

    def cancel_pending(self, action_id: int, now: float) -> bool:
        """Cancel an action that was never sent to Jenkins; False once it may have been."""
        return (
            self.execute(
                "UPDATE actions SET state=?, updated_at=? WHERE id=? AND state=?",
                (ActionState.CANCELLED, now, action_id, ActionState.PENDING),
            ).rowcount
            == 1
        )

    def pending_count(self) -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM actions WHERE state IN ({_IN_FLIGHT})"))  # noqa: S608

    def last_results(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT rule, target, job, result, MAX(finished_at) AS at FROM actions"
            " WHERE result IS NOT NULL GROUP BY rule, target, job, result"
        )

    def prune(self, before: float) -> int:
        """Forget audit rows older than `before` that no incident or breaker still needs."""
        cur = self.execute(
            f"DELETE FROM actions WHERE created_at < ? AND (state IS NULL OR state IN ({_FINAL}))"  # noqa: S608
            " AND id NOT IN (SELECT trial_action_id FROM breakers WHERE trial_action_id IS NOT NULL)",
            (before,),
        )
        removed = cur.rowcount
        # open incidents stay: a repeat of a still-firing alert must remain a duplicate
        self.execute("DELETE FROM incidents WHERE opened_at < ? AND resolved_at IS NOT NULL", (before,))
        return removed

    # the API and the page

    def list_actions(
        self,
        limit: int,
        before: int | None = None,
        filters: dict[str, str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Action]:
        """Newest first; `filters` are column=value (names checked by the caller), times inclusive."""
        where: list[str] = []
        args: list[Any] = []
        for clause, bound in (("id < ?", before), ("created_at >= ?", since), ("created_at <= ?", until)):
            if bound is not None:
                where.append(clause)
                args.append(bound)
        for column, value in (filters or {}).items():
            where.append(f"{column}=?")
            args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.actions(f"SELECT * FROM actions{clause} ORDER BY id DESC LIMIT ?", (*args, limit))  # noqa: S608

    def half_open_breakers(self) -> list[Breaker]:
        rows = self.rows("SELECT * FROM breakers WHERE state=?", (BreakerState.HALF_OPEN,))
        return [Breaker.from_row(r) for r in rows]

    def list_breakers(self) -> list[Breaker]:
        return [Breaker.from_row(r) for r in self.rows("SELECT * FROM breakers ORDER BY bkey")]

    def get_breaker(self, key: str) -> Breaker | None:
        """The breaker, locked for the rest of the transaction."""
        return _typed(Breaker, self.row("SELECT * FROM breakers WHERE bkey=?" + self.d.for_update, (key,)))  # noqa: S608

    def list_pauses(self, now: float) -> list[Pause]:
        rows = self.rows("SELECT * FROM pauses WHERE expires_at > ? ORDER BY target", (now,))
        return [Pause.from_row(r) for r in rows]

    def all_pauses(self) -> list[Pause]:
        return [Pause.from_row(r) for r in self.rows("SELECT * FROM pauses ORDER BY target")]

    def set_pause(
        self, target: str, expires_at: float, reason: str, now: float, author: str | None = None
    ) -> None:
        self.execute("DELETE FROM pauses WHERE target=?", (target,))
        self.execute(
            "INSERT INTO pauses (target, expires_at, reason, created_at, author) VALUES (?,?,?,?,?)",
            (target, expires_at, reason, now, author),
        )

    def delete_pause(self, target: str) -> bool:
        return self.execute("DELETE FROM pauses WHERE target=?", (target,)).rowcount > 0


def _typed(cls: Any, row: dict[str, Any] | None) -> Any:
    return None if row is None else cls.from_row(row)


def breaker_key(rule: str, target: str) -> str:
    """The breaker's name in the API: rule:target."""
    return f"{rule}:{target}"
