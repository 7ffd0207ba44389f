"""The command line: configuration check, usage errors and their exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stackmedic.jobs import errors
from stackmedic.jobs.cli import CONFIG_ENV, main
from stackmedic.jobs.db import client_options
from stackmedic.jobs.dump import dump_argv

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "jobs.yml")


def test_config_check_accepts_the_example(capsys):
    assert main(["--config.file", EXAMPLE, "--config.check"]) == errors.OK
    assert capsys.readouterr().err == f"config ok: {EXAMPLE}\n"


def test_config_file_comes_from_the_environment_and_flags_work_after_the_subcommand(monkeypatch, capsys):
    monkeypatch.setenv(CONFIG_ENV, EXAMPLE)
    assert main(["--config.check"]) == errors.OK
    monkeypatch.setenv(CONFIG_ENV, "/nonexistent.yml")
    assert main(["list", "--config.file", EXAMPLE, "--database", "petclinic"]) == errors.OK


def test_an_invalid_config_lists_every_problem_and_exits_2(tmp_path: Path, capsys):
    bad = tmp_path / "jobs.yml"
    bad.write_text("databases:\n  petclinic:\n    backup_dir: relative\nservices: {x: {}}\nfoo: 1\n")
    assert main(["--config.file", str(bad), "backup", "--database", "petclinic"]) == errors.USAGE
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "status": "refused",
            "command": "backup",
            "error": "invalid configuration",
            "exit_code": errors.USAGE,
        }
    ], "a job prints its one result line even when its configuration is invalid"
    assert err.splitlines() == [
        "config error: databases.petclinic.backup_dir: expected an absolute path, got 'relative'",
        "config error: databases.petclinic.backup_user: required key missing",
        "config error: databases.petclinic.connection: required key missing",
        "config error: databases.petclinic.required_tables: required key missing",
        "config error: databases.petclinic.restore_user: required key missing",
        "config error: databases.petclinic.verify_user: required key missing",
        "config error: foo: unknown key",
        "config error: services.x: give either container or compose_service (with optional compose_project)",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["backup", "--database", "mysql"],
            "stackmedic-job backup: unknown database 'mysql': configured are petclinic, wordpress",
        ),
        (["restore", "--database", "../etc"], "stackmedic-job restore: unknown database '../etc'"),
        (["restart", "petclinic; reboot"], "stackmedic-job restart: unknown service 'petclinic; reboot'"),
    ],
)
def test_names_outside_the_configuration_exit_2(argv, message, capsys):
    assert main(["--config.file", EXAMPLE, *argv]) == errors.USAGE
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)


def test_usage_errors_exit_2_and_help_exits_0(capsys):
    assert main(["--config.file", EXAMPLE]) == errors.USAGE
    assert main(["--config.file", EXAMPLE, "explode"]) == errors.USAGE
    assert main(["--config.file", EXAMPLE, "restore"]) == errors.USAGE  # --database is required
    assert main(["--help"]) == errors.OK


def test_the_password_is_never_on_a_command_line(monkeypatch):
    from stackmedic.jobs.config import Connection, User

    monkeypatch.setenv("PW_UNDER_TEST", 'p#ss "word"\\')
    user = User("backup", password_env="PW_UNDER_TEST")
    argv = dump_argv("mariadb-dump", "--defaults-extra-file=/dev/fd/7", "petclinic")
    assert argv[1] == "--defaults-extra-file=/dev/fd/7"  # must come first
    assert not any("p#ss" in a for a in argv)
    options = client_options(Connection(port=3316), user).decode()
    assert 'password="p#ss \\"word\\"\\\\"' in options and "port=3316" in options
