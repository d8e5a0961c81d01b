"""The broker interface: fan-out of room events and token revocations.

Every broker (``Broker``, a ``typing.Protocol``) offers:

- ``subscribe(room_id, listener)`` / ``unsubscribe(room_id, listener)``:
  ``listener(event)`` is called with every event published to the room.
  ``subscribe`` returns an awaitable that completes once the subscription is
  in effect for events published by any process (at once for LocalBroker, and
  at once while the transport is down). A caller about to read history for a
  resume awaits it first, so that nothing published after the read is missed.
- ``publish(room_id, event)``: ``event`` is a JSON-able dict, e.g.
  ``{"type": "message", "message": {...}}`` or
  ``{"type": "member_joined", "roomId": ..., "userId": ...}``. It never
  raises and never blocks.
- ``on_revocation(listener)`` / ``revoke_token(jti)``: a logged-out token, so
  every process can close the sockets opened with it.
- ``healthy``: False while the broker cannot reach its transport;
  ``outages``: how many times it has lost it (revocations published meanwhile
  may never arrive).
- After the transport was down, each room's listeners get
  ``{"type": "resync", "roomId": ...}`` once the room's subscription is back
  in effect: events published meanwhile may be lost, and a listener that must
  not miss any reads what it missed from the database then.
- ``async start()`` once the event loop runs, and ``async close()``.

``local.LocalBroker`` delivers inside this process; ``redis_broker.RedisBroker``
through Redis pub/sub, so that several server processes serve one set of
rooms. Everything is published only after the transaction that caused it has
committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

log = logging.getLogger("chat.broker")

Event = dict[str, Any]
EventListener = Callable[[Event], None]
RevocationListener = Callable[[str], None]
T = TypeVar("T")


class Broker(Protocol):
    async def start(self) -> None: ...

    def subscribe(self, room_id: str, listener: EventListener) -> asyncio.Future[bool]: ...

    def unsubscribe(self, room_id: str, listener: EventListener) -> None: ...

    def publish(self, room_id: str, event: Event) -> None: ...

    def on_revocation(self, listener: RevocationListener) -> None: ...

    def revoke_token(self, jti: str) -> None: ...

    @property
    def healthy(self) -> bool: ...

    @property
    def outages(self) -> int: ...

    async def close(self) -> None: ...


def deliver(listeners: Iterable[Callable[[T], None]], event: T) -> None:
    """Call every listener with ``event``; one failing does not stop the others."""
    for listener in list(listeners):
        try:
            listener(event)
        except Exception:
            log.exception("broker listener failed")


def completed_future() -> asyncio.Future[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(True)
    return future
