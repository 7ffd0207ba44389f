"""Retention is a pure function of (backups, now): every edge case with the clock given to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from stackmedic.jobs.prune import Candidate, plan, plan_safety

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def at(text: str, verified: bool = False) -> Candidate:
    when = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return Candidate(f"db-{when:%Y%m%dT%H%M%SZ}.sql.gz", when, verified)


def names(*cands: Candidate) -> list[str]:
    return [c.name for c in cands]


def test_keeps_the_last_n_and_deletes_older_ones_outside_the_daily_window():
    backups = [at(f"2026-10-0{i} 10:00:00") for i in range(1, 8)]
    p = plan(backups, NOW, keep_last=3, keep_daily_days=0)
    assert sorted(p.keep) == sorted(names(*backups[-3:]))
    assert p.delete == names(*reversed(backups[:-3]))


def test_one_a_day_keeps_the_newest_of_each_day():
    morning, noon, evening = at("2026-11-23 09:30:00"), at("2026-11-23 11:30:00"), at("2026-11-23 19:30:00")
    today = at("2026-11-24 09:30:00")
    p = plan([morning, noon, evening, today], NOW, keep_last=1, keep_daily_days=2)
    assert p.keep == {today.name: ["last", "daily"], evening.name: ["daily"]}
    assert sorted(p.delete) == sorted(names(morning, noon))


def test_daily_window_counts_today_and_stops_at_midnight_utc():
    # keep_daily_days=3 on the 24th: the 24th, 23rd and 22nd; the 21st is outside.
    edge_in = at("2026-11-22 00:00:00")
    edge_out = at("2026-11-21 23:59:59")
    p = plan([edge_in, edge_out, at("2026-11-24 11:00:00")], NOW, keep_last=1, keep_daily_days=3)
    assert edge_in.name in p.keep and p.keep[edge_in.name] == ["daily"]
    assert p.delete == [edge_out.name]


def test_the_newest_verified_backup_is_never_deleted_however_old():
    old_verified = at("2026-01-01 10:00:00", verified=True)
    older_verified = at("2025-12-01 10:00:00", verified=True)
    recent = [at(f"2026-11-24 0{h}:00:00") for h in range(1, 6)]
    p = plan([older_verified, old_verified, *recent], NOW, keep_last=2, keep_daily_days=1)
    assert p.keep[old_verified.name] == ["newest-verified"]
    assert older_verified.name in p.delete


def test_when_the_newest_backups_are_unverified_the_verified_one_stays_too():
    verified = at("2026-11-24 08:00:00", verified=True)
    newer = at("2026-11-24 10:00:00")
    p = plan([verified, newer], NOW, keep_last=1, keep_daily_days=0)
    assert set(p.keep) == {verified.name, newer.name}
    assert p.delete == []


def test_backups_dated_after_now_are_kept_and_take_no_daily_slot():
    future = at("2026-11-25 09:00:00")
    today_a, today_b = at("2026-11-24 08:00:00"), at("2026-11-24 09:00:00")
    p = plan([future, today_a, today_b], NOW, keep_last=1, keep_daily_days=1)
    assert p.keep[future.name] == ["last", "future"]
    assert p.keep[today_b.name] == ["daily"]
    assert p.delete == [today_a.name]


def test_nothing_to_prune_and_fewer_backups_than_keep_last():
    assert plan([], NOW, keep_last=5, keep_daily_days=5).delete == []
    one = at("2020-01-01 00:00:00")
    assert plan([one], NOW, keep_last=5, keep_daily_days=0).delete == []


def test_keep_last_zero_is_refused():
    with pytest.raises(ValueError, match="keep_last must be at least 1"):
        plan([at("2026-11-24 08:00:00")], NOW, keep_last=0, keep_daily_days=0)


def test_now_in_another_timezone_counts_days_in_utc():
    # 03:00 on the 24th at UTC+05:00 is 22:00 on the 23rd in UTC: the window is the 23rd and 22nd.
    east_now = datetime(2026, 11, 24, 3, 0, tzinfo=timezone(timedelta(hours=5)))
    b23 = at("2026-11-23 19:00:00")
    b22 = at("2026-11-22 19:00:00")
    b21 = at("2026-11-21 19:00:00")
    p = plan([b21, b22, b23], east_now, keep_last=1, keep_daily_days=2)
    assert p.keep[b22.name] == ["daily"]
    assert p.delete == [b21.name]


def test_safety_dumps_keep_the_newest_few():
    dumps = [at(f"2026-11-2{i} 10:00:00") for i in range(1, 6)]
    assert plan_safety(dumps, keep=2) == names(dumps[2], dumps[1], dumps[0])
    assert plan_safety(dumps, keep=0) == names(dumps[3], dumps[2], dumps[1], dumps[0])
