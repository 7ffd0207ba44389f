"""The dispatcher's and the API's queries, on top of the decision-time operations of Tx."""

from __future__ import annotations

from typing import Any

from .base import IN_FLIGHT_STATES, Tx

_IN_FLIGHT = ",".join(f"'{s}'" for s in IN_FLIGHT_STATES)
_STARTED = "'dispatching','queued','building'"


class StoreTx(Tx):
    """Everything a transaction can do."""

    # dispatcher

    def claimable(self, now: float, limit: int) -> list[dict[str, Any]]:
        """Pending actions that are due and first in line for their target (one at a time)."""
        return self.rows(
            "SELECT a.* FROM actions a WHERE a.state='pending' AND a.next_attempt_at <= ?"  # noqa: S608
            f" AND NOT EXISTS (SELECT 1 FROM actions b WHERE b.state IN ({_IN_FLIGHT})"
            " AND b.target=a.target AND b.id < a.id) ORDER BY a.id LIMIT ?",
            (now, limit),
        )

    def next_due(self) -> float | None:
        return self.scalar("SELECT MIN(next_attempt_at) FROM actions WHERE state='pending'")

    def claim(self, action_id: int, owner: str, now: float, lease: float) -> bool:
        """Take a pending action for this replica; False when another one was faster."""
        return (
            self.execute(
                "UPDATE actions SET state='dispatching', owner=?, lease_until=?, updated_at=?"
                " WHERE id=? AND state='pending'",
                (owner, now + lease, now, action_id),
            ).rowcount
            == 1
        )

    def take_over(self, owner: str, now: float, lease: float, own: bool) -> list[dict[str, Any]]:
        """Started actions whose lease ran out, and with `own` those of a previous run of this replica."""
        mine = owner if own else ""  # no action has an empty owner
        candidates = self.rows(
            f"SELECT id FROM actions WHERE state IN ({_STARTED}) AND (owner=? OR lease_until < ?)",  # noqa: S608
            (mine, now),
        )
        taken = []
        for row in candidates:
            cur = self.execute(
                "UPDATE actions SET owner=?, lease_until=? WHERE id=? AND (owner=? OR lease_until < ?)"  # noqa: S608
                f" AND state IN ({_STARTED})",
                (owner, now + lease, row["id"], mine, now),
            )
            if cur.rowcount == 1:
                taken.append(self.action(row["id"]))
        return taken

    def cancel_pending(self, action_id: int, now: float) -> bool:
        """Cancel an action that was never sent to Jenkins; False once it may have been."""
        return (
            self.execute(
                "UPDATE actions SET state='cancelled', updated_at=? WHERE id=? AND state='pending'",
                (now, action_id),
            ).rowcount
            == 1
        )

    def pending_count(self) -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM actions WHERE state IN ({_IN_FLIGHT})"))  # noqa: S608

    def last_results(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT rule, job, result, MAX(finished_at) AS at FROM actions"
            " WHERE result IS NOT NULL GROUP BY rule, job, result"
        )

    def prune(self, before: float) -> int:
        """Forget audit rows older than `before` that no incident or breaker still needs."""
        cur = self.execute(
            "DELETE FROM actions WHERE created_at < ? AND (state IS NULL OR state IN ('done','failed','cancelled'))"
            " AND id NOT IN (SELECT trial_action_id FROM breakers WHERE trial_action_id IS NOT NULL)",
            (before,),
        )
        removed = cur.rowcount
        # open incidents stay: a repeat of a still-firing alert must remain a duplicate
        self.execute("DELETE FROM incidents WHERE opened_at < ? AND resolved_at IS NOT NULL", (before,))
        return removed

    # API

    def list_actions(
        self, limit: int, before: int | None = None, filters: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        where, args = [], []
        if before is not None:
            where.append("id < ?")
            args.append(before)
        for column, value in (filters or {}).items():
            where.append(f"{column}=?")
            args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.rows(f"SELECT * FROM actions{clause} ORDER BY id DESC LIMIT ?", (*args, limit))  # noqa: S608

    def half_open_breakers(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM breakers WHERE state='half_open'")

    def list_breakers(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM breakers ORDER BY bkey")

    def get_breaker(self, key: str) -> dict[str, Any] | None:
        return self.row("SELECT * FROM breakers WHERE bkey=?" + self.d.for_update, (key,))  # noqa: S608

    def list_pauses(self, now: float) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM pauses WHERE expires_at > ? ORDER BY target", (now,))

    def all_pauses(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM pauses ORDER BY target")

    def set_pause(self, target: str, expires_at: float, reason: str, now: float) -> None:
        self.execute("DELETE FROM pauses WHERE target=?", (target,))
        self.execute(
            "INSERT INTO pauses (target, expires_at, reason, created_at) VALUES (?,?,?,?)",
            (target, expires_at, reason, now),
        )

    def delete_pause(self, target: str) -> bool:
        return self.execute("DELETE FROM pauses WHERE target=?", (target,)).rowcount > 0
