"""The WebSockets of this process and the rooms they listen to.

Per room with at least one subscribed socket, the process holds one
``Channel``: a single broker subscription however many sockets listen, and a
``Sequencer`` (chat/realtime/sequencer.py). The sequencer remembers the last
seq it delivered; a message with that seq or lower is a duplicate and
dropped, and a message that jumps ahead
waits while the missing seqs are read from the database. They are there: a
room's seq N+1 is only taken once N's transaction has released the room row,
and a message is published only after its commit. So every socket sees each
room's messages once, in seq order, without gaps, whatever order the broker
hands them over in. A message is encoded once per process, not per socket.

After the broker lost its transport for a while it sends a ``resync``
event; the channel then reads every stored message above its last seq, so
the sockets get what was published meanwhile.

A new subscription is held in a backlog while the stored messages it asked
for (``after``) are replayed from the database up to the point where the
channel feeds it, then switched to live delivery, so nothing is missed or
repeated at the seam.

What the hub needs of a socket is ``Socket``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from chat import errors
from chat.actions import messages
from chat.api import views
from chat.ops import metrics
from chat.realtime.sequencer import Sequencer
from chat.util import ids
from chat.util.compact_json import encode
from chat.util.tasks import background

if TYPE_CHECKING:
    from chat.context import Context

log = logging.getLogger("chat.hub")

# Pauses between attempts to read missing messages when the database fails.
FILL_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)


class Socket(Protocol):
    """What the hub needs of a WebSocket (``chat.web.socket.SocketHandler``)."""

    @property
    def user_id(self) -> str: ...

    # The login token's claims; None until the socket has authenticated.
    claims: dict[str, Any] | None
    # Bytes of output that may wait for the client before it is dropped.
    max_pending: int

    def send_frame(self, frame: bytes) -> asyncio.Future[None] | None:
        """Queue one encoded text frame; the write's future, or None when not sent."""

    def drop_slow(self) -> None:
        """Disconnect a client that does not read what it is sent."""

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


def message_frame(message_json: dict[str, Any]) -> bytes:
    """The frame of a ``message`` event, from the message's JSON form."""
    return encode(views.message_event(message_json))


class Subscription:
    """One socket's subscription to one room."""

    __slots__ = (
        "socket",
        "channel",
        "user_key",
        "start",
        "verified",
        "active",
        "sent",
        "backlog",
        "backlog_bytes",
    )

    def __init__(self, socket: Socket, channel: Channel) -> None:
        self.socket = socket
        self.channel = channel
        self.user_key = ids.fold(socket.user_id)
        # The channel feeds this subscription every message above ``start``;
        # None until the channel knows where the room stands.
        self.start: int | None = channel.last
        self.verified = False  # membership checked
        self.active = True
        self.sent = 0  # the last seq handed to the socket, once live
        # (seq or None, frame) held until go_live(); then None
        self.backlog: list[tuple[int | None, bytes]] | None = []
        self.backlog_bytes = 0

    def deliver(self, seq: int | None, frame: bytes) -> None:
        if not self.active:
            return
        if self.backlog is not None:
            self.backlog.append((seq, frame))
            self.backlog_bytes += len(frame)
            if self.backlog_bytes > self.socket.max_pending:
                self.socket.drop_slow()
            return
        if seq is not None:
            if seq <= self.sent:
                return
            self.sent = seq
            metrics.message_delivered()
        self.socket.send_frame(frame)

    def go_live(self, sent: int) -> None:
        """Everything up to ``sent`` has reached the socket; deliver the backlog and go live."""
        self.sent = sent
        backlog, self.backlog = self.backlog or [], None
        for seq, frame in backlog:
            self.deliver(seq, frame)


class Channel:
    """This process's listener to one room: a broker subscription and a sequencer."""

    def __init__(self, hub: Hub, room_id: str) -> None:
        self.hub = hub
        self.room_id = room_id
        self.subs: dict[Socket, Subscription] = {}
        self.sequencer: Sequencer[dict[str, Any]] = Sequencer(self._deliver)
        self.closed = False
        self._filling: asyncio.Future[None] | None = None
        self._listener = self.on_event
        # Completes once the subscription is in effect; nobody reads the
        # room's state before then, or messages published meanwhile would slip by.
        self.listening = asyncio.ensure_future(hub.broker.subscribe(room_id, self._listener))

    @property
    def last(self) -> int | None:
        """The last seq delivered here; None until start()."""
        return self.sequencer.last

    def start(self, last_seq: int) -> None:
        """The room's latest seq, read after the broker subscription took effect."""
        if not self.sequencer.start(last_seq):
            return
        for sub in self.subs.values():
            if sub.start is None:
                sub.start = last_seq
        self._advance()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message":
            message = event["message"]
            if self.sequencer.offer(message["seq"], message) and self.sequencer.started:
                self._advance()
        elif kind == "typing":
            frame = encode({"type": "typing", "roomId": self.room_id, "userId": event["userId"]})
            typist = ids.fold(event["userId"])
            for sub in list(self.subs.values()):
                if sub.user_key != typist:
                    sub.deliver(None, frame)
        elif kind == "resync":
            self.sequencer.resync()
            if self.sequencer.started:
                self._advance()
        elif kind in ("member_joined", "member_left"):
            frame = encode({"type": kind, "roomId": self.room_id, "userId": event["userId"]})
            leaver = ids.fold(event["userId"]) if kind == "member_left" else None
            for sub in list(self.subs.values()):
                if sub.user_key == leaver:
                    # Sent even in the middle of a replay: it says why nothing more comes.
                    sub.socket.send_frame(frame)
                    self.hub.end(sub)
                else:
                    sub.deliver(None, frame)

    def _deliver(self, seq: int, message: dict[str, Any]) -> None:
        frame = message_frame(message)  # encoded once for every socket of this process
        for sub in list(self.subs.values()):
            sub.deliver(seq, frame)

    def _advance(self) -> None:
        self.sequencer.drain()
        if self.sequencer.missing and self._filling is None and not self.closed:
            self._filling = background(self._fill(), f"filling a gap in room {self.room_id}", log)

    async def _fill(self) -> None:
        """Read what the sequencer misses from the database, until nothing is missing.

        Missing are the messages before the earliest one held, or after a
        resync every one stored above the last delivered.
        """
        failures = 0
        try:
            while (gap := self.sequencer.gap()) is not None and not self.closed:
                before, upto = gap
                try:
                    found = await messages.messages_between(
                        self.hub.ctx,
                        self.room_id,
                        before,
                        messages.NO_UPPER_BOUND - 1 if upto is None else upto,
                    )
                except Exception as exc:
                    log.warning(
                        "room %s: cannot read the messages after seq %d yet: %s",
                        self.room_id,
                        before,
                        exc,
                    )
                    found = None
                if found is not None and not self.closed:
                    self.sequencer.filled(
                        ((message.seq, views.message(message)) for message in found),
                        caught_up=upto is None and len(found) < messages.MAX_LIMIT,
                    )
                if (self.sequencer.last or 0) > before or not self.sequencer.missing:
                    failures = 0
                    continue
                await asyncio.sleep(FILL_BACKOFF[min(failures, len(FILL_BACKOFF) - 1)])
                failures += 1
        finally:
            self._filling = None

    def close(self) -> None:
        self.closed = True
        self.sequencer.clear()
        self.hub.broker.unsubscribe(self.room_id, self._listener)


class Hub:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.broker = ctx.broker
        self._channels: dict[str, Channel] = {}
        self._sockets: set[Socket] = set()  # every open socket, authenticated or not
        self._subs: dict[Socket, dict[str, Subscription]] = {}  # authenticated ones' rooms
        self._by_jti: dict[str, set[Socket]] = {}  # session id -> sockets opened with its tokens
        self._revocations = ctx.revocations
        self._revocations.subscribe(self._on_revocation)
        self.frames_in_flight = 0  # client frames being handled (shutdown waits for their replies)
        self.accepting = True  # False once shutting down: new frames are refused

    # Sockets

    def add(self, socket: Socket) -> None:
        self._sockets.add(socket)

    def open_sockets(self) -> int:
        """How many sockets are open now (the metrics' gauge)."""
        return len(self._sockets)

    def attach(self, socket: Socket) -> bool:
        """Register an authenticated socket; False when its token was revoked meanwhile."""
        assert socket.claims is not None
        jti: str = socket.claims["sid"]
        if self._revocations.known_revoked(jti):
            return False
        self._subs[socket] = {}
        sockets = self._by_jti.setdefault(jti, set())
        if not sockets:
            # Re-checked now and then, in case the broker loses its revocation.
            self._revocations.watch(jti)
        sockets.add(socket)
        return True

    def remove(self, socket: Socket) -> None:
        """Forget a socket that closed; ends its subscriptions. Safe to repeat."""
        self._sockets.discard(socket)
        for sub in list(self._subs.pop(socket, {}).values()):
            self.end(sub)
        if socket.claims is not None:
            sockets = self._by_jti.get(socket.claims["sid"])
            if sockets is not None:
                sockets.discard(socket)
                if not sockets:
                    del self._by_jti[socket.claims["sid"]]
                    self._revocations.unwatch(socket.claims["sid"])

    def close_all(self, code: int, reason: str) -> None:
        """Close every socket of this process (server shutdown)."""
        for socket in list(self._sockets):
            socket.close(code, reason)

    def _on_revocation(self, jti: str) -> None:
        for socket in list(self._by_jti.get(jti, ())):
            socket.close(4001, "token revoked")

    # Subscriptions

    async def subscribe(self, socket: Socket, room_id: str) -> Subscription:
        """Subscribe ``socket`` to a room it is a member of; returns the Subscription.

        The subscription holds live messages in its backlog until
        ``catch_up`` runs; ``sub.start`` is the seq it is fed from.
        """
        subs = self._subs[socket]
        if room_id in subs:
            self.end(subs[room_id])
        channel = self._channels.get(room_id)
        if channel is None:
            channel = self._channels[room_id] = Channel(self, room_id)
        sub = subs[room_id] = channel.subs[socket] = Subscription(socket, channel)
        try:
            await asyncio.shield(channel.listening)
            # Checked after joining the channel: a leave committed from here
            # on reaches this subscription as a member_left event.
            room_last = await self.ctx.room_access.check(socket.user_id, room_id)
            if not sub.active:
                raise errors.NotRoomMember()
        except BaseException:
            self.end(sub)
            raise
        channel.start(room_last)
        sub.verified = True
        return sub

    async def catch_up(self, sub: Subscription, after: int | None) -> None:
        """Send the stored messages with seq > ``after`` (if given), then go live."""
        start = sub.start
        assert start is not None, "subscribe() has set where the channel feeds it from"
        sent = start if after is None else after
        room_id = sub.channel.room_id
        while sub.active and sent < start:
            found = await messages.messages_between(self.ctx, room_id, sent, start)
            if not found:
                log.error("room %s: seqs %d-%d missing from the database", room_id, sent + 1, start)
                break
            written = None
            for message in found:
                if not sub.active:
                    return
                written = sub.socket.send_frame(message_frame(views.message(message)))
                sent = message.seq
            # Let the client take this page before reading the next one.
            if written is not None:
                try:
                    await written
                except Exception:
                    return
        if sub.active:
            sub.go_live(max(sent, start))

    def unsubscribe(self, socket: Socket, room_id: str) -> None:
        sub = self._subs.get(socket, {}).get(room_id)
        if sub is not None:
            self.end(sub)

    def is_subscribed(self, socket: Socket, room_id: str) -> bool:
        """True when the socket holds a checked, live subscription to the room."""
        sub = self._subs.get(socket, {}).get(room_id)
        return sub is not None and sub.active and sub.verified

    def end(self, sub: Subscription) -> None:
        """End one subscription; the room's channel goes when its last one does."""
        sub.active = False
        sub.backlog = None
        subs = self._subs.get(sub.socket)
        if subs is not None and subs.get(sub.channel.room_id) is sub:
            del subs[sub.channel.room_id]
        channel = sub.channel
        if channel.subs.get(sub.socket) is sub:
            del channel.subs[sub.socket]
            if not channel.subs and self._channels.get(channel.room_id) is channel:
                del self._channels[channel.room_id]
                channel.close()
