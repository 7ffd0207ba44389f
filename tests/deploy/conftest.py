"""Fixtures of the alerting tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.alerting import Hook


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook on 127.0.0.1 recording what Alertmanager posts to it."""
    h = Hook()
    yield h
    h.close()
