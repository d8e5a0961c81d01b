"""WebSocket /api/ws: authentication, frame validation and dispatch, and output to one client.

A client authenticates with an ``Authorization: Bearer`` header on the
handshake (a bad token refuses it with 401) or with a first ``auth`` frame
within ``ws_auth_timeout`` seconds (else close 4001). Every frame is checked
against ``schemas.FRAME[type]``; a bad one is answered with an ``error`` frame
and the socket stays open. Frames are handled one at a time, in order.

Output a client does not read piles up in this process; once more than
``ws_max_buffer_bytes`` wait for it, the client is disconnected instead.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import struct
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from tornado import ioloop, websocket
from tornado.iostream import IOStream, StreamClosedError

from chat import errors
from chat.actions import messages
from chat.api import schemas, views, wire
from chat.ops import metrics
from chat.util import ids
from chat.util.compact_json import encode
from chat.web.base import JsonErrors, authenticate, bearer_token
from chat.web.headers import SecureHeaders

if TYPE_CHECKING:
    from chat.actions.message_writer import Stored
    from chat.context import Context
    from chat.realtime.hub import Hub

Frame = dict[str, Any]

log = logging.getLogger("chat.ws")

CLOSE_UNAUTHORIZED = 4001
# Messages of one socket being stored at once; beyond, its frames are refused (overloaded).
MAX_STORING = 64
CLOSE_TOO_MANY = 4008  # as Discord's gateway: rate limited / too many sockets
_serials = itertools.count()


def _parse(raw: str | bytes) -> tuple[Frame, str]:
    """The frame as a dict, and its text (to be checked with ``wire.check_unicode``)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidJson("A frame must be a JSON object.") from None
    frame = wire.parse(raw, errors.InvalidJson("A frame must be a JSON object."))
    if not isinstance(frame, dict):
        raise errors.InvalidJson("A frame must be a JSON object.")
    return frame, raw


def _ref(frame: Frame) -> str | None:
    """The frame's ``ref`` when it is one a reply can echo."""
    ref = frame.get("ref")
    if isinstance(ref, str) and len(ref) <= 64 and wire.encodable(ref):
        return ref
    return None


def _text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame of ``length`` bytes (RFC 6455 5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class SocketHandler(SecureHeaders, JsonErrors, websocket.WebSocketHandler):
    cors = False  # browsers do not ask before opening a WebSocket: the Origin check decides

    def initialize(self, ctx: Context, hub: Hub) -> None:
        self.ctx = ctx
        self.hub = hub
        self.claims: dict[str, Any] | None = None
        self.max_pending = ctx.settings.ws_max_buffer_bytes
        self._pending = 0  # bytes handed to the connection and not yet to the kernel
        self._out: list[bytes] = []  # frames queued for the next write
        self._out_bytes = 0
        # resolves once the queued frames are written
        self._out_written: asyncio.Future[None] | None = None
        self._timer: object | None = None  # the auth deadline, then the token's expiry
        self._storing = 0  # message frames handed to the writer, not yet answered
        self._serial = f"socket{next(_serials)}"  # this socket's key for its frame limit
        self._counted: str | None = None  # the user key counted in ctx.limits.open_sockets

    @property
    def user_id(self) -> str:
        """The authenticated user's id (once ``claims`` is set)."""
        assert self.claims is not None, "only once authenticated"
        user_id: str = self.claims["sub"]
        return user_id

    def _stream(self) -> IOStream | None:
        """The connection's stream, or None once the connection is gone or closing."""
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return None
        stream: IOStream | None = getattr(connection, "stream", None)
        return stream

    # Handshake

    async def prepare(self) -> None:
        headers = self.request.headers
        origin = headers.get("Origin") or headers.get("Sec-Websocket-Origin")
        if origin is not None and not self._origin_allowed(origin):
            raise errors.Forbidden("WebSockets from this origin are not allowed.")
        if "Authorization" not in headers:
            return  # the client authenticates with its first frame
        self.claims = await authenticate(self.ctx, bearer_token(self.request))
        if self.claims is None:
            raise errors.Unauthorized()
        await self.ctx.limits.take(("ws_opens", ids.fold(self.claims["sub"])))

    def _origin_allowed(self, origin: str) -> bool:
        """CHAT_PUBLIC_ORIGIN or one in CHAT_ALLOWED_ORIGINS: scheme, host and port alike.

        Never the request's ``Host``: a page on another site can point a
        browser at a name that resolves here, and ``Host`` follows it.
        """
        return self.origin_trusted(origin)

    def check_origin(self, origin: str) -> bool:
        return True  # checked in prepare(), which answers a refusal in the JSON error shape

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)
        self.hub.add(self)
        if self.claims is not None:
            self._start_session(None)
        else:
            self._timer = ioloop.IOLoop.current().call_later(
                self.ctx.settings.ws_auth_timeout,
                self.close,
                CLOSE_UNAUTHORIZED,
                "authentication timed out",
            )

    def _start_session(self, ref: str | None) -> None:
        assert self.claims is not None
        if not self.ctx.limits.open_socket(ids.fold(self.user_id)):
            self.close(CLOSE_TOO_MANY, "too many WebSockets for this user")
            return
        self._counted = ids.fold(self.user_id)
        if not self.hub.attach(self):
            self.close(CLOSE_UNAUTHORIZED, "token revoked")
            return
        self._cancel_timer()
        self._timer = ioloop.IOLoop.current().call_later(
            max(0.0, self.claims["exp"] - time.time()),
            self.close,
            CLOSE_UNAUTHORIZED,
            "token expired",
        )
        self.send_json({"type": "ready", "userId": self.user_id}, ref)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            ioloop.IOLoop.current().remove_timeout(self._timer)
            self._timer = None

    def on_close(self) -> None:
        self._cancel_timer()
        self.hub.remove(self)
        self.ctx.limits.forget_local("ws_frames", self._serial)
        if self._counted is not None:
            self.ctx.limits.close_socket(self._counted)
            self._counted = None

    # Frames in

    def on_message(self, raw: str | bytes) -> Awaitable[None] | None:
        """Handle one frame: at once, or by returning what it waits for.

        Tornado reads the socket's next frame when this returns, or once the
        awaitable returned is done, so frames are handled one at a time, in
        order. Most frames (a message handed to the writer, a ping) wait for
        nothing and return None: a coroutine would cost every frame three
        turns of the event loop (its task, the task's callback, the reader's
        wake-up), and under load a socket could then read only a dozen frames
        a second while the rest waited unread, unrefused.
        """
        if self.ws_connection is None or self.ws_connection.is_closing():
            return None  # a frame that crossed our close frame
        ref: str | None = None
        kind: Any = None
        try:
            frame, text = _parse(raw)
            ref = _ref(frame)
            self.ctx.limits.take_local(("ws_frames", self._serial))
            kind = frame.get("type")
            if not self.hub.accepting:
                raise errors.Unavailable("The server is shutting down.")
            if kind == "message" and self.ctx.message_writer.full:
                # Refused before any check: refusing must cost far less than serving.
                raise errors.Overloaded()
            wire.check_unicode(text, frame)
            schema = schemas.FRAME.get(kind) if isinstance(kind, str) else None
            if schema is None:
                raise errors.ValidationFailed(
                    [{"field": "type", "message": "must be one of: " + ", ".join(schemas.FRAME)}]
                )
            schema.validate(frame)
            if kind == "auth":
                waiting = self._auth(frame, ref)
            elif self.claims is None:
                raise errors.Unauthorized("Send an auth frame first.")
            else:
                waiting = getattr(self, "_frame_" + kind)(frame, ref)
        except Exception as exc:
            self._failed(exc, kind, ref)
            return None
        if waiting is None:
            return None
        return self._wait(waiting, kind, ref)

    async def _wait(self, waiting: Awaitable[None], kind: str, ref: str | None) -> None:
        hub = self.hub
        hub.frames_in_flight += 1  # shutdown waits for its answer
        try:
            await waiting
        except Exception as exc:
            self._failed(exc, kind, ref)
        finally:
            hub.frames_in_flight -= 1

    def _failed(self, exc: Exception, kind: Any, ref: str | None) -> None:
        if isinstance(exc, errors.ChatError):
            self.send_error_frame(exc, ref)
        else:
            log.error("a %s frame failed", kind, exc_info=exc)
            self.send_error_frame(errors.Internal(), ref)

    async def _auth(self, frame: Frame, ref: str | None) -> None:
        if self.claims is not None:
            raise errors.ValidationFailed([{"field": "type", "message": "already authenticated"}])
        claims = await authenticate(self.ctx, frame["token"])
        if self.ws_connection is None:
            return  # closed while the token was checked
        if claims is not None:
            await self.ctx.limits.take(("ws_opens", ids.fold(claims["sub"])))
        if claims is None:
            self.close(CLOSE_UNAUTHORIZED, "invalid token")
            return
        self.claims = claims
        self._start_session(ref)

    async def _frame_subscribe(self, frame: Frame, ref: str | None) -> None:
        await self.ctx.limits.take(("subscribes", ids.fold(self.user_id)))
        room_id = frame["roomId"]
        sub = await self.hub.subscribe(self, room_id)
        self.send_json({"type": "subscribed", "roomId": room_id, "lastSeq": sub.start}, ref)
        await self.hub.catch_up(sub, frame.get("after"))

    def _frame_unsubscribe(self, frame: Frame, ref: str | None) -> None:
        self.hub.unsubscribe(self, frame["roomId"])
        self.send_json({"type": "unsubscribed", "roomId": frame["roomId"]}, ref)

    def _frame_message(self, frame: Frame, ref: str | None) -> Awaitable[None] | None:
        if self._storing >= MAX_STORING:
            raise errors.Overloaded("Too many of this socket's messages are being stored.")
        # Counted before it is stored, with the sender's HTTP messages (one limit).
        limit = ("messages", ids.fold(self.user_id))
        if self.ctx.limits.take_now(limit):
            self._store(frame, ref)
            return None
        return self._store_when_counted(limit, frame, ref)

    async def _store_when_counted(
        self, limit: tuple[str, str], frame: Frame, ref: str | None
    ) -> None:
        await self.ctx.limits.take(limit)  # the counts are shared: a round trip to Redis
        self._store(frame, ref)

    def _store(self, frame: Frame, ref: str | None) -> None:
        # The ack is not waited for: the socket reads its next frame while
        # this one is being stored, so frames do not wait unread behind each
        # other (a busy writer refuses them instead, at once). One socket's
        # messages still reach the writer, and its room's lane, in the order
        # they were sent.
        stored = messages.submit_message(
            self.ctx,
            user_id=self.user_id,
            room_id=frame["roomId"],
            content=frame["content"],
            client_msg_id=frame.get("clientMsgId"),
        )
        self._storing += 1
        self.hub.frames_in_flight += 1  # shutdown waits for its ack
        stored.add_done_callback(functools.partial(self._stored, ref))

    def _stored(self, ref: str | None, stored: asyncio.Future[Stored]) -> None:
        self._storing -= 1
        self.hub.frames_in_flight -= 1
        try:
            _, message = stored.result()
        except errors.ChatError as exc:
            self.send_error_frame(exc, ref)
            return
        except Exception:
            log.exception("a message frame failed")
            self.send_error_frame(errors.Internal(), ref)
            return
        self.send_json({"type": "ack", "message": views.message(message)}, ref)

    async def _frame_typing(self, frame: Frame, ref: str | None) -> None:
        await self.ctx.limits.take(("typing", ids.fold(self.user_id)))
        room_id = frame["roomId"]
        await messages.typing(
            self.ctx,
            user_id=self.user_id,
            room_id=room_id,
            member_known=self.hub.is_subscribed(self, room_id),
        )

    def _frame_ping(self, frame: Frame, ref: str | None) -> None:
        self.send_json({"type": "pong"}, ref)

    # Frames out

    def send_json(self, obj: Frame, ref: str | None = None) -> None:
        if ref is not None:
            obj["ref"] = ref
        self.send_frame(encode(obj))

    def send_error_frame(self, error: errors.ChatError, ref: str | None) -> None:
        metrics.refused_error(error.code, "websocket")
        body: Frame = {"type": "error", "code": error.code, "message": error.message, "ref": ref}
        if isinstance(error, errors.RateLimited) and error.details is not None:
            body["retryAfter"] = error.details["retryAfter"]
        if error.details is not None:
            body["details"] = error.details
        self.send_frame(encode(body))

    def send_frame(self, frame: bytes) -> asyncio.Future[None] | None:
        """Queue one encoded text frame; returns a future of its write, or None if not sent.

        Frames queued in one turn of the event loop go out in one write: a
        batch of messages reaches a socket in one system call. The wire frame
        is built here rather than by ``write_message``, which costs a task
        per frame; this server never compresses, and server frames are not
        masked, so a text frame is its header and the payload.
        """
        if self.ws_connection is None or self.ws_connection.is_closing():
            return None
        if not self._out:
            self._out_written = asyncio.get_running_loop().create_future()
            ioloop.IOLoop.current().add_callback(self._flush_out)
        self._out.append(_text_frame_header(len(frame)))
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._pending + self._out_bytes > self.max_pending:
            self.drop_slow()
            return None
        return self._out_written

    def _flush_out(self) -> None:
        data, size, written = b"".join(self._out), self._out_bytes, self._out_written
        self._out, self._out_bytes, self._out_written = [], 0, None
        assert written is not None  # made with the first frame queued
        # ``written`` resolves either way: whoever waits on it for pacing
        # stops once the socket is gone, which ends its subscriptions.
        stream = self._stream()
        if stream is None:
            written.set_result(None)
            return
        try:
            done = stream.write(data)
        except StreamClosedError:
            written.set_result(None)
            return
        self._pending += size
        done.add_done_callback(functools.partial(self._flushed, size, written))

    def _flushed(
        self, size: int, written: asyncio.Future[None], done: asyncio.Future[None]
    ) -> None:
        self._pending -= size
        if not done.cancelled():
            done.exception()  # a write to a closed socket fails; nothing more to do
        written.set_result(None)

    def drop_slow(self) -> None:
        """Disconnect a client that does not read what it is sent."""
        connection = self.ws_connection
        stream: IOStream | None = getattr(connection, "stream", None)
        if stream is None or stream.closed():
            return
        log.warning(
            "disconnecting %s: %d bytes of output wait unread",
            self.claims["sub"] if self.claims else "a client",
            self._pending,
        )
        self.hub.remove(self)
        # A close frame would only queue behind what the client does not read.
        stream.close()
