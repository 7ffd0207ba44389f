"""Progress lines on stderr: as `pv` shows them, at most every 5 s, with a fake clock."""

from __future__ import annotations

import io

import pytest
from stackmedic.jobs import errors
from stackmedic.jobs.cli import main
from stackmedic.jobs.progress import Progress

from tests.jobs.test_cli import EXAMPLE


def test_a_line_every_five_seconds_with_rate_and_eta():
    now = [100.0]
    out = io.StringIO()
    p = Progress("restore petclinic: load", total=100 * 1024 * 1024, stream=out, clock=lambda: now[0])
    p.add(10 * 1024 * 1024)
    now[0] += 4.9
    p.add(10 * 1024 * 1024)
    assert out.getvalue() == ""  # not yet 5 s
    now[0] += 0.1
    p.add(5 * 1024 * 1024)
    assert out.getvalue() == "restore petclinic: load 25.0 MiB / 100.0 MiB 25% 5.0 MiB/s ETA 0:00:15\n"
    now[0] += 5
    p.finish()
    assert out.getvalue().splitlines()[-1].startswith("restore petclinic: load 25.0 MiB / 100.0 MiB 25%")


def test_events_without_a_total_show_the_elapsed_time():
    now = [0.0]
    out = io.StringIO()
    p = Progress("restore petclinic: replay", unit="events", stream=out, clock=lambda: now[0])
    now[0] = 6.0
    p.add(300)
    assert out.getvalue() == "restore petclinic: replay 300 events 50 events/s elapsed 0:00:06\n"


@pytest.mark.parametrize(
    ("argv", "status", "code"),
    [
        (["restore", "--database", "mysql"], "refused", errors.USAGE),
        (["backup", "--database", "mysql"], "refused", errors.USAGE),
        (["rollback", "--database", "mysql"], "refused", errors.USAGE),
    ],
)
def test_every_failure_still_prints_exactly_one_json_line(capsys, argv, status, code):
    import json

    assert main(["--config.file", EXAMPLE, *argv]) == code
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["status"] == status and record["command"] == argv[0] and record["exit_code"] == code
    assert record["error"] == "unknown database 'mysql': configured are petclinic, wordpress"
    assert "restored_from" not in record
