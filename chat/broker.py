"""Fan-out of room events and token revocations to the sockets that want them.

The interface every broker offers:

- ``subscribe(room_id, listener)`` / ``unsubscribe(room_id, listener)``:
  ``listener(event)`` is called with every event published to the room.
- ``publish(room_id, event)``: ``event`` is a JSON-able dict, e.g.
  ``{"type": "message", "message": {...}}`` or
  ``{"type": "member_joined", "roomId": ..., "userId": ...}``.
- ``on_revocation(listener)`` / ``revoke_token(jti)``: a logged-out token, so
  every process can close the sockets opened with it.
- ``healthy``: False while the broker cannot reach its transport.
- ``async close()``.

``LocalBroker`` delivers inside this process. Everything is published only
after the transaction that caused it has committed.
"""

import logging

log = logging.getLogger("chat.broker")


class LocalBroker:
    def __init__(self):
        self._rooms = {}
        self._revocation_listeners = set()

    def subscribe(self, room_id, listener):
        """``listener(event)`` is called for every event published to the room."""
        self._rooms.setdefault(room_id, set()).add(listener)

    def unsubscribe(self, room_id, listener):
        listeners = self._rooms.get(room_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._rooms[room_id]

    def publish(self, room_id, event):
        for listener in list(self._rooms.get(room_id, ())):
            try:
                listener(event)
            except Exception:
                log.exception("room listener failed")

    def on_revocation(self, listener):
        self._revocation_listeners.add(listener)

    def revoke_token(self, jti):
        for listener in list(self._revocation_listeners):
            listener(jti)

    @property
    def healthy(self):
        return True

    async def close(self):
        self._rooms.clear()
