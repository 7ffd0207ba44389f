"""A build's description (the job's JSON result line) summarised for the audit and notifications."""

from __future__ import annotations

import json

from stackmedic.receiver import job_result


def test_a_restore_says_which_backup_how_old_what_came_back_and_where_to_roll_back():
    line = {
        "status": "ok",
        "command": "restore",
        "database": "petclinic",
        "restored_from": "petclinic-20261124T093000Z.sql.gz",
        "backup_created": "2026-11-24T09:30:00Z",
        "backup_age_seconds": 7500,
        "tables": {"owners": 11, "pets": 13, "visits": 4},
        "replayed_events": 12,
        "lost_window": "2026-11-24T11:35:02Z..2026-11-24T11:35:09Z",
        "rollback_point": "safety/petclinic-20261124T113510Z.sql.gz",
    }
    assert job_result.summary(json.dumps(line)) == (
        "restored petclinic from petclinic-20261124T093000Z.sql.gz (2h05m old); "
        "3 table(s): owners, pets, visits; replayed 12; "
        "lost 2026-11-24T11:35:02Z..2026-11-24T11:35:09Z; "
        "rollback point safety/petclinic-20261124T113510Z.sql.gz"
    )


def test_a_refused_job_gives_its_reason_and_plain_text_stays_as_it_is():
    refused = {"status": "refused", "command": "restore", "error": "database server down"}
    assert job_result.summary(json.dumps(refused)) == "restore refused; database server down"
    assert job_result.summary("restarted by hand\nsecond line") == "restarted by hand"
    assert job_result.summary(None) == ""
    assert job_result.parse("[1, 2]") is None


def test_a_restart_gives_its_message():
    line = {
        "job": "restart",
        "service": "petclinic",
        "status": "ok",
        "message": "petclinic restarted on image 1a2b",
    }
    assert job_result.summary(json.dumps(line)) == "restart ok; petclinic restarted on image 1a2b"
    line = {**line, "status": "failed", "error": "no container", "message": "ignored: the error comes first"}
    assert job_result.summary(json.dumps(line)) == "restart failed; no container"
