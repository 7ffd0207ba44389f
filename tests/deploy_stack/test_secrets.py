"""secrets/generate.sh: every secret compose.yaml names, random, kept, private, never committed."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import bcrypt
import yaml

from tests.deploy_stack.conftest import REPO, generate_secrets


def compose_secret_files() -> set[str]:
    secrets = yaml.safe_load((REPO / "compose.yaml").read_text())["secrets"]
    return {Path(s["file"]).name for s in secrets.values()}


def test_it_writes_every_secret_of_compose_yaml(tmp_path: Path):
    out = tmp_path / "s"
    generate_secrets(out)
    assert {p.name for p in out.iterdir()} == compose_secret_files()
    for path in out.glob("*.txt"):
        value = path.read_text()
        assert value == value.strip() and len(value) >= 24, path.name
        if path.stem == "jenkins_token":
            # the format Jenkins accepts for a fixed API token
            assert re.fullmatch(r"11[0-9a-f]{32}", value)
        else:
            assert re.fullmatch(r"[A-Za-z0-9]+", value), path.name


def test_values_are_random_and_distinct(tmp_path: Path):
    generate_secrets(tmp_path / "a")
    generate_secrets(tmp_path / "b")
    a = {p.name: p.read_text() for p in (tmp_path / "a").glob("*.txt")}
    b = {p.name: p.read_text() for p in (tmp_path / "b").glob("*.txt")}
    assert all(a[name] != b[name] for name in a)
    assert len(set(a.values())) == len(a)


def test_existing_secrets_are_kept(tmp_path: Path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "mysql_root_password.txt").write_text("chosen-by-the-operator")
    run = generate_secrets(out)
    assert (out / "mysql_root_password.txt").read_text() == "chosen-by-the-operator"
    assert "mysql_root_password" not in run.stdout
    again = generate_secrets(out)
    assert "all present" in again.stdout


def test_the_folder_is_private_and_the_files_readable_by_container_users(tmp_path: Path):
    out = tmp_path / "s"
    generate_secrets(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in out.glob("*.txt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_generated_secrets_are_ignored_by_git(tmp_path: Path):
    # what generate.sh writes into the checkout must never be committable
    probe = REPO / "secrets" / "mysql_root_password.txt"
    run = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(probe.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
    )
    assert run.returncode == 0, "secrets/*.txt is not ignored by git"
    for kept in ("README.md", "generate.sh", ".gitignore"):
        run = subprocess.run(["git", "check-ignore", "--no-index", "-q", f"secrets/{kept}"], cwd=REPO)
        assert run.returncode == 1, f"secrets/{kept} would be ignored"


def web_config_user(path: Path) -> tuple[str, str]:
    ((user, hashed),) = yaml.safe_load(path.read_text())["basic_auth_users"].items()
    return user, hashed


def test_the_receiver_web_config_has_prometheus_and_admin(tmp_path: Path):
    out = tmp_path / "s"
    generate_secrets(out)
    users = yaml.safe_load((out / "receiver_web.yml").read_text())["basic_auth_users"]
    assert set(users) == {"prometheus", "admin"}
    for user, password in (("prometheus", "metrics_password"), ("admin", "receiver_admin_password")):
        secret = (out / f"{password}.txt").read_text()
        assert secret not in (out / "receiver_web.yml").read_text()
        assert bcrypt.checkpw(secret.encode(), users[user].encode()), user


def test_the_web_configs_hold_a_bcrypt_hash_of_their_password_never_the_password(tmp_path: Path):
    out = tmp_path / "s"
    generate_secrets(out)
    for web, password, want in (
        ("prometheus_web.yml", "prometheus_password", "admin"),
        ("alertmanager_web.yml", "alertmanager_password", "admin"),
        ("exporter_web.yml", "metrics_password", "prometheus"),
    ):
        text = (out / web).read_text()
        secret = (out / f"{password}.txt").read_text()
        assert secret not in text
        user, hashed = web_config_user(out / web)
        assert user == want
        assert bcrypt.checkpw(secret.encode(), hashed.encode()), web
        assert stat.S_IMODE((out / web).stat().st_mode) == 0o644


def test_a_rotated_password_gets_a_new_web_config_and_a_kept_one_keeps_it(tmp_path: Path):
    out = tmp_path / "s"
    generate_secrets(out)
    before = (out / "alertmanager_web.yml").read_text()
    generate_secrets(out)
    assert (out / "alertmanager_web.yml").read_text() == before
    os.utime(out / "alertmanager_web.yml", (1, 1))  # older than any password file
    (out / "alertmanager_password.txt").write_text("rotated-by-the-operator")
    run = generate_secrets(out)
    assert "alertmanager_web.yml" in run.stdout
    _, hashed = web_config_user(out / "alertmanager_web.yml")
    assert bcrypt.checkpw(b"rotated-by-the-operator", hashed.encode())
