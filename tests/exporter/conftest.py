"""Fixtures of the exporter's tests: real HTTP targets and TCP listeners on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from tests.exporter.http_servers import HungServer, TargetServer


@pytest.fixture(scope="session")
def web_target() -> Iterator[TargetServer]:
    """One HTTP server answering /ok, /error, /nokeyword, /redirect, /huge, /drip..."""
    server = TargetServer()
    yield server
    server.stop()


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    """Accepts connections and never answers."""
    server = HungServer()
    yield server
    server.stop()


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    """A listening socket of this test process on 127.0.0.1:<port>."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() sets up logging to the stderr of the moment (pytest's capture): undo it, so
    that a check thread finishing later does not write to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
