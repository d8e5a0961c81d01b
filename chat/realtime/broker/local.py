"""Fan-out inside this process: what a single server needs."""

from __future__ import annotations

import asyncio

from chat.realtime.broker.interface import (
    Event,
    EventListener,
    RevocationListener,
    completed_future,
    deliver,
)


class LocalBroker:
    def __init__(self) -> None:
        self._rooms: dict[str, set[EventListener]] = {}
        self._revocation_listeners: set[RevocationListener] = set()

    async def start(self) -> None:
        pass

    def subscribe(self, room_id: str, listener: EventListener) -> asyncio.Future[bool]:
        """``listener(event)`` is called for every event published to the room."""
        self._rooms.setdefault(room_id, set()).add(listener)
        return completed_future()

    def unsubscribe(self, room_id: str, listener: EventListener) -> None:
        listeners = self._rooms.get(room_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._rooms[room_id]

    def publish(self, room_id: str, event: Event) -> None:
        deliver(self._rooms.get(room_id, ()), event)

    def on_revocation(self, listener: RevocationListener) -> None:
        self._revocation_listeners.add(listener)

    def revoke_token(self, jti: str) -> None:
        deliver(self._revocation_listeners, jti)

    @property
    def healthy(self) -> bool:
        return True

    @property
    def outages(self) -> int:
        return 0

    async def close(self) -> None:
        self._rooms.clear()
