"""The job configuration: the example validates, mistakes are all reported with their key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from stackmedic.jobs import config as jc
from stackmedic.jobs.errors import USAGE, UsageError

from stackmedic.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_example_seed_stack_configuration_validates():
    config = jc.load(REPO / "examples" / "jobs.yml")
    assert sorted(config.databases) == ["petclinic", "wordpress"]
    assert sorted(config.services) == ["petclinic", "wordpress"]
    pc = config.database("petclinic")
    assert pc.connection.port == 3316
    assert pc.directory == Path("/var/backups/stackmedic/petclinic")
    assert "owners" in pc.required_tables
    assert config.service("petclinic").compose_service == "petclinic"


def test_every_problem_is_reported_at_once_with_its_path():
    data = {
        "databases": {
            "petclinic": {
                "connection": {"port": 70000, "hots": "x"},
                "backup_user": {"user": "b", "password_env": "A", "password_file": "/p"},
                "restore_user": {"user": "r"},
                "backup_dir": "relative/dir",
                "required_tables": ["owners; DROP TABLE x"],
                "retention": {"keep_last": 0},
            },
            "Bad Name": {},
        },
        "services": {"petclinic": {"image": "x"}},
        "extra": 1,
    }
    with pytest.raises(ConfigError) as info:
        jc.parse(data)
    lines = info.value.lines()
    assert "config error: extra: unknown key" in lines
    assert "config error: databases.petclinic.connection.port: port 70000 out of range 1..65535" in lines
    assert "config error: databases.petclinic.connection.hots: unknown key" in lines
    assert (
        "config error: databases.petclinic.backup_dir: expected an absolute path, got 'relative/dir'" in lines
    )
    assert "config error: databases.petclinic.retention.keep_last: expected an integer >= 1" in lines
    assert (
        "config error: databases.petclinic.backup_user: give password_env or password_file, not both" in lines
    )
    assert any(
        line.startswith("config error: databases.petclinic.required_tables[0]: invalid table name")
        for line in lines
    )
    assert any(line.startswith("config error: databases.Bad Name: invalid name 'Bad Name'") for line in lines)
    assert (
        "config error: services.petclinic: give either container or compose_service (with optional compose_project)"
        in lines
    )


def test_only_configured_names_are_accepted():
    config = jc.load(REPO / "examples" / "jobs.yml")
    for bad in ("../petclinic", "petclinic; rm -rf /", "mysql", ""):
        with pytest.raises(UsageError, match="unknown database") as info:
            config.database(bad)
        assert info.value.exit_code == USAGE
        with pytest.raises(UsageError, match="unknown service"):
            config.service(bad)


def test_passwords_come_from_file_or_environment_and_never_show(tmp_path: Path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text('s3cr#t "x"\n')
    user = jc.User("backup", password_file=str(secret))
    assert user.password() == 's3cr#t "x"'
    assert "s3cr" not in repr(user)
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(
        UsageError, match=r"password of backup: the environment variable is not set \(name not shown\)"
    ):
        jc.User("backup", password_env="NOPE_PW").password()


def _one_database(**changes) -> dict:
    db = {
        "connection": {"port": 3306},
        "backup_user": {"user": "b"},
        "restore_user": {"user": "r"},
        "verify_user": {"user": "v"},
        "backup_dir": "/var/backups/stackmedic",
        "required_tables": ["owners"],
    }
    return {"databases": {"petclinic": {**db, **changes}}}


def test_required_tables_cannot_be_empty_for_a_database_restore_acts_on():
    # Issue 10 defect 6: with [] restore "succeeded" from a backup that lacked owners.
    with pytest.raises(ConfigError) as info:
        jc.parse(_one_database(required_tables=[]))
    assert info.value.lines() == [
        "config error: databases.petclinic.required_tables: must name at least one table: restore acts on"
        " this database and checks these tables in every backup before it trusts one"
    ]


def test_trust_and_retention_settings_are_checked():
    with pytest.raises(ConfigError) as info:
        jc.parse(
            _one_database(trust={"max_row_drop": 1.5, "future_skew": "soon"}, retention={"max_clock_gap": -1})
        )
    assert sorted(info.value.lines()) == [
        "config error: databases.petclinic.retention.max_clock_gap: duration must not be negative",
        "config error: databases.petclinic.trust.future_skew: invalid duration 'soon': expected e.g. 500ms, 10s, 5m, 1h",
        "config error: databases.petclinic.trust.max_row_drop: expected a ratio between 0 and 1 (exclusive), got 1.5",
    ]
    db = jc.parse(_one_database(trust={"future_skew": "1m"})).database("petclinic")
    assert (db.trust.future_skew, db.trust.max_row_drop, db.retention.max_clock_gap) == (
        60.0,
        0.5,
        36 * 3600.0,
    )
    assert db.binlog_user is None and db.verify_user.user == "v"
