"""Plain stand-ins for what the units under test talk to: no database, Redis or sockets."""

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run an async test body on a fresh loop; a hang fails the test instead of the run.

    The bound is generous (nothing here waits on time): it only turns a
    deadlock into a failure.
    """

    async def bounded() -> T:
        return await asyncio.wait_for(scenario, 10)

    return asyncio.run(bounded())


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeBroker:
    """What Revocations needs of a broker: revocation listeners, outages, health."""

    def __init__(self) -> None:
        self.outages = 0  # times the transport was lost
        self.healthy = True
        self.listeners: list[Callable[[str], None]] = []

    def on_revocation(self, listener: Callable[[str], None]) -> None:
        self.listeners.append(listener)

    def revoke(self, jti: str) -> None:
        """A logout somewhere, delivered to this process."""
        for listener in self.listeners:
            listener(jti)

    def lose_connection(self) -> None:
        self.outages += 1


class FakeDatabase:
    """``fetch_all(query, **params)`` answered by ``answer(query, params)``.

    Every call (``execute`` too) is recorded in ``calls``. While ``gate`` is set to an unset
    asyncio.Event, reads wait on it: a test can act while a read is in flight.
    """

    def __init__(self, answer: Callable[[str, dict[str, Any]], Iterable[dict[str, Any]]]) -> None:
        self._answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.gate: asyncio.Event | None = None
        self.started = 0  # reads begun (including ones waiting on the gate)
        self.fail: Exception | None = None  # raised by the next reads when set

    async def fetch_all(self, query: str, **params: Any) -> list[dict[str, Any]]:
        self.started += 1
        if self.gate is not None:
            await self.gate.wait()
        self.calls.append((query, params))
        if self.fail is not None:
            raise self.fail
        return [dict(row) for row in self._answer(query, params)]

    async def execute(self, query: str, **params: Any) -> int:
        self.calls.append((query, params))
        return 0


class FakeHasher:
    """A PasswordHasher whose hash of ``p`` is ``"hash:" + p``, counting checks.

    While ``gate`` is an unset asyncio.Event, checks wait on it; ``fail``
    makes the next checks raise it.
    """

    def __init__(self) -> None:
        self.checks = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def verify(self, password: str, hashed: str | None) -> bool:
        self.checks += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return hashed is not None and hashed == "hash:" + password


async def settle() -> None:
    """Let every task that can run, run (a few turns of the loop)."""
    for _ in range(10):
        await asyncio.sleep(0)
