"""Defect 12: a secret pasted into a `*_env`/`*_file` key, or a mistyped URL that carries a
password, is never printed back by --config.check (nor by a job that reads the password)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from stackmedic.exporter import cli as exporter_cli
from stackmedic.jobs import cli as jobs_cli
from stackmedic.jobs import config as jobs_config
from stackmedic.receiver import cli as receiver_cli

from stackmedic.config import redact_url

# what an operator's password looks like (secrets/generate.sh makes [A-Za-z0-9]):
# also a valid environment variable name and a valid relative file name
SECRET = "Qx7pLm2Rv9TzK4wNs8Yb"


def check(main, config: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    code = main([f"--config.file={path}", "--config.check"])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("key", ["password_env", "password_file"])
def test_exporter_never_prints_a_secret_pasted_as_a_name(key: str, tmp_path: Path, capsys):
    config = {"mysql": [{"name": "db", "user": "u", key: SECRET}]}
    code, output = check(exporter_cli.main, config, tmp_path, capsys)
    assert code == 2
    assert f"config error: mysql[0].{key}: " in output
    assert SECRET not in output


@pytest.mark.parametrize("key", ["bearer_token_env", "bearer_token_file"])
def test_receiver_never_prints_a_secret_pasted_as_a_name(key: str, tmp_path: Path, capsys):
    code, output = check(receiver_cli.main, {"auth": {key: SECRET}}, tmp_path, capsys)
    assert code == 2
    assert "config error: auth.bearer_token: " in output
    assert SECRET not in output


@pytest.mark.parametrize(
    "mistyped",
    [
        f"htps://admin:{SECRET}@jenkins:8080",
        f"http://admin:{SECRET}@jenkins:80800",
        f"http//admin:{SECRET}@jenkins",
    ],
)
def test_a_mistyped_url_with_a_password_is_not_printed_back(mistyped: str, tmp_path: Path, capsys):
    config = {"auth": "none", "jenkins": {"url": mistyped, "user": "u", "api_token_env": "X"}}
    code, output = check(receiver_cli.main, config, tmp_path, capsys)
    assert code == 2
    assert "config error: jenkins.url: invalid URL (not shown)" in output
    assert SECRET not in output
    code, output = check(exporter_cli.main, {"http": [{"name": "app", "url": mistyped}]}, tmp_path, capsys)
    assert code == 2 and "config error: http[0].url: invalid URL (not shown)" in output
    assert SECRET not in output


def test_jobs_never_print_a_secret_pasted_as_a_name(tmp_path: Path, capsys, monkeypatch):
    config = yaml.safe_load((Path(__file__).parents[2] / "examples" / "jobs.yml").read_text())
    config["databases"]["petclinic"]["backup_user"] = {"user": "b", "password_file": SECRET}
    code, output = check(jobs_cli.main, config, tmp_path, capsys)
    assert code == 2
    assert "config error: databases.petclinic.backup_user.password_file: expected an absolute path" in output
    assert SECRET not in output
    monkeypatch.delenv(SECRET, raising=False)
    for user in (
        jobs_config.User("b", password_env=SECRET),
        jobs_config.User("b", password_file=f"/{SECRET}"),
    ):
        with pytest.raises(jobs_config.UsageError) as info:
            user.password()
        assert SECRET not in str(info.value)


def test_redact_url_hides_the_password_only():
    assert redact_url(f"http://admin:{SECRET}@jenkins:8080/x?y=1") == "http://admin:***@jenkins:8080/x?y=1"
    assert redact_url("http://jenkins:8080/") == "http://jenkins:8080/"
    assert redact_url("http://admin@jenkins/") == "http://admin@jenkins/"


def test_a_listen_address_with_a_non_ascii_digit_is_a_config_error():
    import voluptuous as vol

    from stackmedic.config import listen_address

    with pytest.raises(vol.Invalid, match="bad port"):
        listen_address("127.0.0.1:²")
