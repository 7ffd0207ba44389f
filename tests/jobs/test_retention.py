"""Retention is a pure function of (backups, now): every edge case with the clock given to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from stackmedic.jobs.config import Retention
from stackmedic.jobs.prune import Candidate, clock_refusal, plan, plan_safety

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


def test_safety_dumps_keep_the_newest_few_and_the_young_ones():
    dumps = [at(f"2026-11-2{i} 10:00:00") for i in range(1, 6)]
    newest_backup = NOW
    assert plan_safety(dumps, keep=2, newest_backup=newest_backup) == names(dumps[2], dumps[1], dumps[0])
    assert plan_safety(dumps, keep=0, newest_backup=newest_backup) == names(
        dumps[3], dumps[2], dumps[1], dumps[0]
    )
    # by age: the last 1.5 days are kept whatever their number
    young = plan_safety(dumps, keep=1, now=NOW, keep_for=1.5 * 86400, newest_backup=newest_backup)
    assert young == names(dumps[1], dumps[0])


def test_a_safety_dump_newer_than_the_newest_backup_is_never_deleted():
    # Issue 10 defect 9: a restore loop deleted the only safety dump holding the newer rows.
    first = at("2026-11-20 10:00:00")  # taken before the first restore: the newer rows
    loop = [at(f"2026-11-20 1{h}:00:00") for h in range(1, 8)]  # restores that kept failing
    newest_backup = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert plan_safety([first, *loop], keep=2, now=NOW, newest_backup=newest_backup) == []
    assert plan_safety([first, *loop], keep=2, now=NOW, newest_backup=None) == []  # no backup at all
    after = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)  # a backup taken since holds those rows
    assert len(plan_safety([first, *loop], keep=2, now=NOW, newest_backup=after)) == 6


def _month_of_backups() -> list[Candidate]:
    """78 backups: six a day (09:30 to 19:30 every two hours) for 13 days, the oldest verified."""
    start = datetime(2026, 11, 11, 9, 30, tzinfo=UTC)
    out = []
    for day in range(13):
        for slot in range(6):
            when = start + timedelta(days=day, hours=2 * slot)
            out.append(Candidate(f"db-{when:%Y%m%dT%H%M%SZ}.sql.gz", when, day == 0 and slot == 0))
    return out


def test_a_clock_30_days_ahead_deletes_nothing_and_says_why():
    # Issue 10 defect 5: one run with the clock 30 days ahead deleted 66 of 78 backups.
    backups = _month_of_backups()
    retention = Retention(keep_last=12, keep_daily_days=14)
    ahead = datetime(2026, 12, 23, 19, 30, tzinfo=UTC)  # newest backup 2026-11-23 19:30, +30 days
    assert len(plan(backups, ahead, 12, 14).delete) == 65  # what the clock alone would do
    assert clock_refusal(backups, ahead, retention) == (
        "the clock (2026-12-23T19:30:00Z) is 30d 0h past the newest backup (db-20261123T193000Z.sql.gz),"
        " more than max_clock_gap 1d 12h: by the clock prune would delete 65 of 78 backups, at the newest"
        " backup's time 54; nothing deleted (check the clock, or take a backup first)"
    )


def test_a_normal_night_is_not_taken_for_a_clock_jump():
    backups = _month_of_backups()
    retention = Retention(keep_last=12, keep_daily_days=14)
    night = datetime(2026, 11, 24, 3, 45, tzinfo=UTC)  # the prune cron, after the day's backups
    assert clock_refusal(backups, night, retention) == ""
    assert clock_refusal(backups, night + timedelta(days=1), retention) == ""  # one day missed
    # a clock that went backwards keeps what it sees in the future: nothing more to delete
    assert clock_refusal(backups, datetime(2026, 11, 1, tzinfo=UTC), retention) == ""
