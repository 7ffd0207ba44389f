"""The statements a webhook costs: each is a round trip to a MySQL store, under the breaker's row lock.

A repeat of a firing alert reads the breaker it finds (no insert first) and marks the incident
decided in the statement that looks it up; the decisions stay the same.
"""

from __future__ import annotations

from tests.receiver.helpers import AUTH, FakeClock, alert, notification


def _statements(app, body) -> list[str]:
    store = app.extensions["stackmedic"].store
    seen: list[str] = []
    store._conn().set_trace_callback(seen.append)  # the test client runs in this thread
    try:
        resp = app.test_client().post("/api/v1/alerts", json=body, headers=AUTH)
        assert resp.status_code == 200, resp.json
    finally:
        store._conn().set_trace_callback(None)
    return [s.split("(")[0].strip() for s in seen]


def test_a_repeated_firing_alert_costs_no_breaker_insert_and_no_separate_decided_update(make_app):
    clock = FakeClock()
    app = make_app(clock=clock, dispatcher={"autostart": False})
    first = _statements(app, notification(alert()))
    assert "INSERT INTO breakers" in first  # the first decision on the target makes its breaker
    clock.advance(5)
    again = _statements(app, notification(alert()))
    assert not [s for s in again if s.startswith("INSERT INTO breakers")], again
    assert not [s for s in again if s.startswith("UPDATE incidents SET decided_at")], again
    store = app.extensions["stackmedic"].store
    [row] = store.atomic(lambda tx: tx.rows("SELECT decided_at, opened_at FROM incidents"))
    assert row["decided_at"] == row["opened_at"] + 5  # the repeat's time, set by the upsert
    decisions = store.atomic(lambda tx: [a.decision for a in tx.list_actions(10)])
    assert decisions == ["duplicate", "triggered"]
