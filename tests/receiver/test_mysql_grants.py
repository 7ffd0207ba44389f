"""The MySQL store runs as a user with exactly the grants docs/receiver.md documents, and needs each."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from stackmedic.receiver.config import StoreConfig
from stackmedic.receiver.store import StoreError, open_store

from harness.services import MariaDB, wait_for
from stackmedic.secrets import Secret
from tests.receiver.helpers import AUTH, actions, alert, notification, settled

pytestmark = pytest.mark.services

DOC = Path(__file__).resolve().parents[2] / "docs" / "receiver.md"
PASSWORD = "receiver-pw"  # noqa: S105 - a throwaway test account


def documented_grants() -> list[str]:
    """The privileges of the GRANT statement in docs/receiver.md."""
    [grant] = re.findall(r"^GRANT (.+) ON stackmedic_receiver\.\* TO", DOC.read_text(), re.MULTILINE)
    return [p.strip() for p in grant.split(",")]


@pytest.fixture
def least_privileged(mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch):
    """account(privileges) -> a store section for a fresh database and a user with only those."""
    monkeypatch.setenv("TEST_STORE_PASSWORD", PASSWORD)
    made: list[tuple[str, str]] = []

    def account(privileges: list[str]) -> dict:
        suffix = uuid.uuid4().hex[:8]
        database, user = f"grants_{suffix}", f"recv_{suffix}"
        mariadb.execute(f"CREATE DATABASE {database}")
        mariadb.create_user(user, PASSWORD, [f"{', '.join(privileges)} ON {database}.*"])
        made.append((database, user))
        return {
            "type": "mysql",
            "host": mariadb.host,
            "port": mariadb.port,
            "user": user,
            "password_env": "TEST_STORE_PASSWORD",
            "database": database,
        }

    yield account
    for database, user in made:
        mariadb.execute(
            f"DROP DATABASE IF EXISTS {database}",
            f"DROP USER IF EXISTS '{user}'@'127.0.0.1'",
            f"DROP USER IF EXISTS '{user}'@'localhost'",
        )


def store_config(section: dict) -> StoreConfig:
    keep = {k: v for k, v in section.items() if k != "password_env"}
    return StoreConfig(**keep, password=Secret(PASSWORD), replica="grants")


def everything_the_store_does(mariadb: MariaDB, section: dict, make_app, standin) -> None:
    """First start on an empty database, an upgrade that adds a column and an index, incidents to builds, pruning."""
    open_store(store_config(section)).close()  # CREATE TABLE
    mariadb.execute(  # as an older release left it
        "ALTER TABLE actions DROP COLUMN fence",
        "ALTER TABLE incidents DROP INDEX incidents_open",
        db=section["database"],
    )
    app = make_app(store={**section, "replica": "a"})  # ALTER TABLE ... ADD, then the replica's rows
    client = app.test_client()
    assert client.post("/api/v1/alerts", json=notification(alert()), headers=AUTH).json["decisions"] == {
        "triggered": 1
    }
    wait_for(lambda: settled(app) and standin.finished(), 15, "the build")
    assert actions(app)[0]["build"]["result"] == "SUCCESS"
    store = app.extensions["stackmedic"].store
    now = time.time()
    store.atomic(lambda tx: tx.set_pause("petclinic", now + 600, "grants", now))
    assert store.atomic(lambda tx: tx.delete_pause("petclinic"))
    assert store.atomic(lambda tx: tx.prune(now + 3600)) == 1  # old audit rows are forgotten


def test_the_documented_grants_are_enough(mariadb, least_privileged, make_app, standin):
    assert documented_grants() == ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER"]
    everything_the_store_does(mariadb, least_privileged(documented_grants()), make_app, standin)


@pytest.mark.parametrize("missing", ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER"])
def test_each_documented_grant_is_needed(mariadb, least_privileged, make_app, standin, missing):
    section = least_privileged([p for p in documented_grants() if p != missing])
    with pytest.raises(StoreError) as failed:
        everything_the_store_does(mariadb, section, make_app, standin)
    assert f"{missing} command denied to user" in str(failed.value)
