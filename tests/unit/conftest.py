"""The unit tier: plain objects and fakes, no database, no Redis, no sockets.

``make test-unit`` runs this folder alone (``--confcutdir=tests/unit``), so
tests/conftest.py and its database fixtures are never loaded; fakes live in
tests/unit/fakes.py. Every test here runs with connecting refused, so a unit
test that reaches for the network fails instead of quietly needing a server.
"""

import socket
from typing import Any, NoReturn

import pytest


@pytest.fixture(autouse=True)
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a unit test tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
