"""The receiver's configuration: a key left out takes the one default written in its dataclass."""

from __future__ import annotations

import dataclasses

import pytest
from stackmedic.receiver import config

from stackmedic.config import ConfigError


def test_keys_left_out_take_the_dataclass_defaults():
    built = config.build(
        {
            "auth": "none",
            "jenkins": {"url": "http://127.0.0.1:1", "user": "u", "api_token_file": "/dev/null"},
            "rules": [{"name": "r", "job": "j", "target": "t", "allow": {"t": ".*"}}],
        }
    )
    assert built.dispatcher == config.DispatcherConfig()
    assert dataclasses.replace(built.jenkins, api_token=None) == config.JenkinsConfig(
        url="http://127.0.0.1:1", user="u"
    )
    assert (built.dry_run, built.threads, built.max_body_bytes) == (False, 4, 1 << 20)
    assert (built.store.type, built.store.port, built.store.retention) == ("sqlite", 3306, 30 * 86400.0)
    assert built.rules[0].breaker == config.BreakerPolicy()
    assert built.rules[0].actuator == "jenkins"


def test_breaker_section_is_the_default_of_every_rule_and_a_rule_overrides_it():
    built = config.build(
        {
            "auth": "none",
            "dry_run": True,
            "breaker": {"cooldown": "1m", "max_actions": 5},
            "rules": [
                {"name": "a", "job": "j", "target": "t", "allow": {"t": ".*"}},
                {"name": "b", "job": "j", "target": "t", "allow": {"t": ".*"}, "breaker": {"cooldown": "2m"}},
            ],
        }
    )
    a, b = built.rules
    assert a.breaker == config.BreakerPolicy(cooldown=60.0, max_actions=5)
    assert b.breaker == config.BreakerPolicy(cooldown=120.0, max_actions=5)


def test_mysql_only_store_keys_are_refused_for_sqlite():
    # store.timeout bounds MySQL statements only: accepted for SQLite, it promised a bound it never kept
    with pytest.raises(ConfigError) as refused:
        config.build({"auth": "none", "dry_run": True, "store": {"timeout": "1s", "host": "db"}})
    assert refused.value.problems == [
        ("store.host", "applies only to the mysql store (store.type is sqlite)"),
        ("store.timeout", "applies only to the mysql store (store.type is sqlite)"),
    ]
    with pytest.raises(ConfigError) as refused:
        config.build(
            {
                "auth": "none",
                "dry_run": True,
                "store": {
                    "type": "mysql",
                    "host": "db",
                    "user": "u",
                    "database": "d",
                    "synchronous": "normal",
                },
            }
        )
    assert refused.value.problems == [
        ("store.synchronous", "applies only to the sqlite store (store.type is mysql)")
    ]
    built = config.build(
        {
            "auth": "none",
            "dry_run": True,
            "store": {"type": "mysql", "host": "db", "user": "u", "database": "d"},
        }
    )
    assert built.store.timeout == 2.0
