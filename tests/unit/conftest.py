"""The unit tier: plain objects and fakes, no database, no Redis, no sockets.

``make test-unit`` runs this folder alone (``--confcutdir=tests/unit``), so
tests/conftest.py and its database fixtures are never loaded; fakes live in
tests/unit/fakes.py. Every test here runs with connecting refused, so a unit
test that reaches for the network fails instead of quietly needing a server.

Async tests run their coroutine with ``unit.fakes.run()``, which makes and
closes a loop of its own. pytest-tornado's ``gen_test``/``io_loop`` are not
for this tier: they leave an asyncio loop behind that is collected during a
later test (an unclosed-socket warning, failing that test instead).
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


@pytest.fixture
def io_loop() -> NoReturn:
    """Refuses pytest-tornado's loop here (see above)."""
    raise AssertionError("unit tests run coroutines with unit.fakes.run(), not gen_test/io_loop")
