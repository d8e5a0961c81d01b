"""Fan-out through Redis pub/sub, so that several server processes serve one set of rooms."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import random
import secrets
import socket
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chat.realtime.broker.interface import (
    Event,
    EventListener,
    RevocationListener,
    deliver,
)
from chat.util.compact_json import encode

log = logging.getLogger("chat.broker")


class RedisBroker:
    """Room events through one Redis channel per room, revocations through one more.

    Every Redis subscription goes through the one ``PubSub`` made in ``start()``,
    and only while holding ``_lock``: redis-py's concurrent first
    ``subscribe()`` calls would each open a connection and orphan all but one,
    silently losing their messages. Subscriptions are reconciled in batches:
    any number of rooms subscribed in one loop iteration cost one SUBSCRIBE.

    Room events reach the listeners of this process the same way they reach
    every other process, from the reader task, so each room's events are seen
    in the one order Redis gives them everywhere. ``publish`` only queues; a
    writer task sends whatever was queued in one pipeline per round, in order.

    When Redis goes away, events queue (at most ``max_pending`` room events,
    the oldest dropped first) and are sent once the subscriptions are back, so
    an event may arrive late, and one caught in a failing round may arrive
    twice; listeners order and deduplicate messages by ``seq`` and fill gaps
    from the database. Revocations also reach this process's listeners at
    once, so a logout closes local sockets even while Redis is down.
    """

    PING_INTERVAL = 5.0

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "chat:",
        max_pending: int = 10000,
        retry_min: float = 0.1,
        retry_max: float = 3.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._revocation_channel = (prefix + "revocations").encode()
        self._origin = secrets.token_hex(8)  # tells our own revocations apart
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._rooms: dict[str, set[EventListener]] = {}  # room id -> listeners here
        self._channel_rooms: dict[bytes, str] = {}  # channel -> room id, for every room
        self._ready: dict[str, asyncio.Future[bool]] = {}  # room id -> future of subscribe()
        self._revocation_listeners: set[RevocationListener] = set()
        # What the current PubSub connection was told, and SUBSCRIBEs not yet confirmed.
        self._subscribed: set[bytes] = set()
        self._unconfirmed: collections.Counter[bytes] = collections.Counter()
        self._resync: set[bytes] = set()  # room channels subscribed anew after being down
        self._room_outbox: collections.deque[tuple[bytes, bytes]] = collections.deque(
            maxlen=max_pending
        )
        self._revocation_outbox: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._dropped = 0
        self._sub_ok = False
        self._pub_ok = True
        self._was_healthy: bool | None = None
        self._outages = 0
        self._closing = False
        self._sync_pending = False
        self._started = False
        # The Redis clients and the subscription, made by start().
        self._redis: Any = None
        self._sub_redis: Any = None
        self._pubsub: Any = None
        self._lock = asyncio.Lock()
        self._wake_writer = asyncio.Event()
        self._first_attempt: asyncio.Future[bool] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the broker interface ------------------------------------------------

    async def start(self) -> None:
        """Start the reader and the writer; returns once Redis answered or failed once."""
        options: dict[str, Any] = dict(
            socket_connect_timeout=3, socket_timeout=5, socket_keepalive=True
        )
        # Named so that CLIENT LIST shows which process holds which connection.
        who = f"{socket.gethostname()}:{os.getpid()}"
        # One retry replaces a pooled connection that went stale in an outage.
        self._redis = aioredis.Redis.from_url(
            self._url, retry=Retry(NoBackoff(), 1), client_name=f"chat-publish:{who}", **options
        )
        # No retries: redis-py would reconnect the subscription behind our back.
        self._sub_redis = aioredis.Redis.from_url(
            self._url, retry=Retry(NoBackoff(), 0), client_name=f"chat-subscribe:{who}", **options
        )
        self._pubsub = self._sub_redis.pubsub()
        self._started = True
        first_attempt = self._first_attempt = asyncio.get_running_loop().create_future()
        self._spawn(self._read_forever())
        self._spawn(self._write_forever())
        await first_attempt

    def subscribe(self, room_id: str, listener: EventListener) -> asyncio.Future[bool]:
        listeners = self._rooms.get(room_id)
        if listeners is None:
            listeners = self._rooms[room_id] = set()
            self._channel_rooms[self._room_channel(room_id)] = room_id
            self._ready[room_id] = asyncio.get_running_loop().create_future()
            if not self._sub_ok:
                self._ready[room_id].set_result(False)
                self._resync.add(self._room_channel(room_id))
            self._request_sync()
        listeners.add(listener)
        return self._ready[room_id]

    def unsubscribe(self, room_id: str, listener: EventListener) -> None:
        listeners = self._rooms.get(room_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._rooms[room_id]
            del self._channel_rooms[self._room_channel(room_id)]
            _settle(self._ready.pop(room_id), False)
            self._request_sync()

    def publish(self, room_id: str, event: Event) -> None:
        if len(self._room_outbox) == self._room_outbox.maxlen:
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "%d room events are waiting for Redis; dropping the oldest "
                    "(subscribers catch up from the database)",
                    len(self._room_outbox),
                )
        self._room_outbox.append((self._room_channel(room_id), encode(event)))
        self._wake()

    def on_revocation(self, listener: RevocationListener) -> None:
        self._revocation_listeners.add(listener)

    def revoke_token(self, jti: str) -> None:
        deliver(self._revocation_listeners, jti)
        self._revocation_outbox.append(
            (self._revocation_channel, encode({"jti": jti, "origin": self._origin}))
        )
        self._wake()

    @property
    def healthy(self) -> bool:
        return self._sub_ok and self._pub_ok

    @property
    def outages(self) -> int:
        return self._outages

    async def close(self) -> None:
        """Stop the tasks, send what is still queued (if Redis answers), disconnect."""
        if self._redis is None:
            return
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        queued = len(self._room_outbox) + len(self._revocation_outbox)
        if queued and self._sub_ok:
            try:
                await asyncio.wait_for(self._flush(), 2)
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("could not send %d queued events to Redis: %s", queued, exc)
        await self._pubsub.aclose()
        await self._sub_redis.aclose()
        await self._redis.aclose()
        self._redis = None
        self._rooms.clear()
        self._channel_rooms.clear()
        for future in self._ready.values():
            _settle(future, False)
        self._ready.clear()
        log.info("Redis broker closed")

    # -- subscriptions -------------------------------------------------------

    def _up(self) -> None:
        """Every subscription of a new connection is in effect."""
        self._set_state(sub_ok=True)
        _settle(self._first_attempt, True)
        self._request_sync()  # rooms gained while connecting
        self._wake()  # and whatever was published meanwhile

    def _room_channel(self, room_id: str) -> bytes:
        return f"{self._prefix}room:{room_id}".encode()

    def _request_sync(self) -> None:
        if not self._sync_pending and self._started:
            self._sync_pending = True
            self._spawn(self._sync_subscriptions())

    async def _sync_subscriptions(self) -> None:
        """Tell Redis about every room gained or lost since the last round."""
        async with self._lock:
            self._sync_pending = False
            if not self._sub_ok or self._closing:
                return  # the reconnect subscribes whatever is wanted then
            wanted = set(self._channel_rooms)
            wanted.add(self._revocation_channel)
            added = wanted - self._subscribed
            removed = self._subscribed - wanted
            try:
                if added:
                    self._subscribed |= added
                    self._unconfirmed.update(added)
                    await self._pubsub.subscribe(*added)
                if removed:
                    self._subscribed -= removed
                    await self._pubsub.unsubscribe(*removed)
            except (RedisError, OSError) as exc:
                self._set_state(sub_ok=False, error=exc)
                # Start over: the reader's next read fails and reconnects.
                if self._pubsub.connection is not None:
                    await self._pubsub.connection.disconnect(nowait=True)
                return
        for channel in wanted - added:
            self._confirmed(channel)

    def _confirmed(self, channel: bytes) -> None:
        """Settle subscribe() futures once no SUBSCRIBE for their channel is outstanding."""
        if self._unconfirmed[channel] > 0:
            return
        room_id = self._channel_rooms.get(channel)
        if room_id is not None:
            _settle(self._ready[room_id], True)

    async def _connect(self) -> None:
        """(Re)open the PubSub connection and subscribe every wanted channel on it."""
        async with self._lock:
            await self._pubsub.aclose()  # forgets the old connection and its channels
            self._subscribed = set(self._channel_rooms) | {self._revocation_channel}
            self._unconfirmed = collections.Counter(self._subscribed)
            # Every room wanted now was wanted while nothing reached us.
            self._resync = set(self._channel_rooms)
            await self._pubsub.subscribe(*self._subscribed)
        # The reader marks us up once Redis has confirmed every one of them.

    # -- the reader ----------------------------------------------------------

    async def _read_forever(self) -> None:
        delay = self._retry_min
        while True:
            try:
                await self._connect()
                delay = self._retry_min
                await self._read_until_error()
            except (RedisError, OSError) as exc:
                self._set_state(sub_ok=False, error=exc)
            _settle(self._first_attempt, False)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self._retry_max)

    async def _read_until_error(self) -> None:
        pinged = False
        while True:
            connection = self._pubsub.connection
            if connection is None or not connection.is_connected:
                # parse_response() would quietly reconnect; do it the logged way.
                raise aioredis.ConnectionError("the Redis subscription connection was closed")
            response = await self._pubsub.parse_response(block=False, timeout=self.PING_INTERVAL)
            if response is None:
                if pinged:
                    raise aioredis.TimeoutError("Redis did not answer a ping")
                async with self._lock:
                    await self._pubsub.ping()
                pinged = True
                continue
            pinged = False
            message = await self._pubsub.handle_message(response)
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind == "message":
            try:
                payload = json.loads(message["data"])
            except ValueError:
                log.warning("ignored a message on %r that is not JSON", channel)
                return
            if channel == self._revocation_channel:
                if payload.get("origin") != self._origin:
                    deliver(self._revocation_listeners, payload["jti"])
                return
            room_id = self._channel_rooms.get(channel)
            if room_id is not None:
                deliver(self._rooms[room_id], payload)
        elif kind == "subscribe":
            self._unconfirmed[channel] -= 1
            if self._unconfirmed[channel] <= 0:
                del self._unconfirmed[channel]
            self._confirmed(channel)
            if not self._sub_ok and not self._unconfirmed:
                self._up()
            if channel in self._resync:
                self._resync.discard(channel)
                room_id = self._channel_rooms.get(channel)
                if room_id is not None:
                    deliver(self._rooms[room_id], {"type": "resync", "roomId": room_id})

    # -- the writer ----------------------------------------------------------

    def _wake(self) -> None:
        if self._started:
            self._wake_writer.set()

    async def _write_forever(self) -> None:
        delay = self._retry_min
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            if not self._sub_ok:
                # Held back until the subscriptions are back, so this
                # process's listeners get them too; the reconnect wakes us.
                continue
            try:
                await self._flush()
            except (RedisError, OSError) as exc:
                self._set_state(pub_ok=False, error=exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, self._retry_max)
                self._wake()
                continue
            delay = self._retry_min
            self._set_state(pub_ok=True)

    async def _flush(self) -> None:
        """Publish everything queued, in order, in one pipeline; requeue it on failure."""
        revocations = list(self._revocation_outbox)
        events = list(self._room_outbox)
        self._revocation_outbox.clear()
        self._room_outbox.clear()
        if not revocations and not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        for channel, payload in revocations + events:
            pipe.publish(channel, payload)
        try:
            await pipe.execute()
        except BaseException:
            # Back to the front, before anything queued meanwhile; past the
            # bound the oldest room events go.
            self._revocation_outbox.extendleft(reversed(revocations))
            self._room_outbox = collections.deque(
                events + list(self._room_outbox), maxlen=self._room_outbox.maxlen
            )
            raise

    # -- health --------------------------------------------------------------

    def _set_state(
        self,
        sub_ok: bool | None = None,
        pub_ok: bool | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record a change, and log each outage once and each recovery once."""
        if sub_ok is not None:
            self._sub_ok = sub_ok
        if pub_ok is not None:
            self._pub_ok = pub_ok
        if not self._sub_ok:
            for future in self._ready.values():
                _settle(future, False)
        healthy = self.healthy
        if healthy == self._was_healthy or self._closing:
            return
        first = self._was_healthy is None
        self._was_healthy = healthy
        if healthy:
            self._dropped = 0
            log.info(
                "Redis %s at %s", "connected" if first else "reconnected", _safe_url(self._url)
            )
            self._wake()
        else:
            self._outages += 1
            log.warning(
                "Redis unreachable at %s (%s); messages are still stored, "
                "fan-out to other processes resumes on reconnect",
                _safe_url(self._url),
                error,
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("broker task failed", exc_info=task.exception())


def _settle(future: asyncio.Future[bool] | None, value: bool) -> None:
    if future is not None and not future.done():
        future.set_result(value)


def _safe_url(url: str) -> str:
    """The Redis URL without its password, for log lines."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.rsplit("@", 1)[1]
    return scheme + sep + rest
