"""Messages: storing (HTTP and WebSocket share ``send_message``), history, typing.

A room's ``seq`` is taken in the storing transaction from ``rooms.last_seq``
under the room row's lock, so seqs run 1, 2, 3, ... per room without gaps or
repeats whatever the number of concurrent senders, and seq N+1 is only taken
once N's transaction has ended. Subscribers hear of a message only after it
has committed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from chat import errors
from chat.api import views
from chat.db.errors import DuplicateKey
from chat.models import Message, MessagePage
from chat.util import ids
from chat.util.batching import Batcher, Pending
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.context import Context
    from chat.db.pool import Database, Row, Transaction
    from chat.realtime.broker import Broker

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Above every seq: the open end of a range.
NO_UPPER_BOUND = 2**63 - 1


class _Access:
    """What ``room_access_among`` found: each asked (room, user) pair's latest seq, or its error."""

    def __init__(self, rows: list[Row]) -> None:
        self._last = {row["room_id"]: int(row["last_seq"]) for row in rows}
        self._members = {(row["room_id"], ids.fold(row["member"])) for row in rows if row["member"]}

    def of(self, room_id: str, user_id: str) -> int | errors.ChatError:
        if room_id not in self._last:
            return errors.NotFound("No such room.")
        if (room_id, ids.fold(user_id)) not in self._members:
            return errors.NotRoomMember()
        return self._last[room_id]


async def room_access(tx: Transaction, user_id: str, room_id: str) -> int:
    """The room's latest seq, for a member; NotFound / NotRoomMember otherwise (read in ``tx``)."""
    rows = await tx.fetch_all("room_access_among", room_ids=(room_id,), user_ids=(user_id,))
    outcome = _Access(rows).of(room_id, user_id)
    if isinstance(outcome, errors.ChatError):
        raise outcome
    return outcome


class RoomAccess:
    """``await access.check(user_id, room_id)``: ``room_access`` outside a transaction, batched.

    The checks asked for at the same moment share one query: a server
    restarted under thousands of sockets gets their subscribes all at once,
    and one query each would hold every pooled connection and leave some
    waiting past the pool's deadline (``503 unavailable``).
    """

    def __init__(self, db: Database, max_batch: int = 500, workers: int = 2) -> None:
        self._db = db
        self._reads: Batcher[tuple[str, str], int] = Batcher(self._read, max_batch, workers)

    async def check(self, user_id: str, room_id: str) -> int:
        """The room's latest seq, for a member; NotFound / NotRoomMember otherwise."""
        return await self._reads.submit((room_id, user_id))

    async def _read(self, batch: list[Pending[tuple[str, str], int]]) -> None:
        asked = [pending.work for pending in batch]  # (room_id, user_id)
        rows = await self._db.fetch_all(
            "room_access_among",
            room_ids=tuple({room_id for room_id, _ in asked}),
            user_ids=tuple({user_id for _, user_id in asked}),
        )
        access = _Access(rows)
        for pending, (room_id, user_id) in zip(batch, asked, strict=True):
            pending.settle(access.of(room_id, user_id))


async def send_message(
    ctx: Context, *, user_id: str, room_id: str, content: str, client_msg_id: str | None = None
) -> tuple[bool, Message]:
    """Store a message; returns ``(created, Message)``.

    ``created`` is False when the sender already stored this ``clientMsgId``
    in the room: the original comes back, stored and delivered once. Messages
    sent at the same moment are stored together (``MessageWriter``).
    Counted against the sender's ``messages`` limit first, HTTP and WebSocket alike.
    """
    await ctx.limits.take(("messages", ids.fold(user_id)))
    return await submit_message(
        ctx, user_id=user_id, room_id=room_id, content=content, client_msg_id=client_msg_id
    )


def submit_message(
    ctx: Context, *, user_id: str, room_id: str, content: str, client_msg_id: str | None = None
) -> asyncio.Future:
    """``send_message`` without waiting: a future of ``(created, Message)``.

    Raises ``errors.Overloaded`` at once (not through the future) when the
    writer refuses new work.
    """
    return ctx.message_writer.submit(user_id, room_id, content, client_msg_id)


class RoomBusy(Exception):
    """The room's row lock is held by another transaction (``store_one(skip_locked=True)``)."""


async def store_one(
    db: Database,
    broker: Broker,
    user_id: str,
    room_id: str,
    content: str,
    client_msg_id: str | None,
    skip_locked: bool = False,
) -> tuple[bool, Message]:
    """Store one message in a transaction of its own; returns ``(created, Message)``.

    ``skip_locked``: raise ``RoomBusy`` rather than wait while another
    transaction holds the room's lock.
    """

    async def store(tx: Transaction) -> Message:
        if skip_locked and not await tx.fetch_all("lock_rooms_for_messages", room_ids=(room_id,)):
            if await tx.fetch_all("existing_rooms", room_ids=(room_id,)):
                raise RoomBusy()
            raise errors.NotFound("No such room.")
        rows, seq = await tx.execute("take_message_seq", room_id=room_id, user_id=user_id)
        if rows != 1:
            await room_access(tx, user_id, room_id)  # says which: no room, or not a member
            raise errors.NotRoomMember()
        row = {
            "room_id": room_id,
            "seq": seq,
            "sender_id": user_id,
            "content": content,
            "client_msg_id": client_msg_id,
            "created_at": utcnow(),
        }
        _, row["message_id"] = await tx.execute("insert_message", **row)
        message = Message.from_row(row)
        tx.after_commit(broker.publish, room_id, views.message_event(views.message(message)))
        return message

    try:
        return True, await db.transaction("send_message", store)
    except DuplicateKey:
        if client_msg_id is None:
            raise
    # The sender stored this clientMsgId in the room before: the retry gets
    # the original back (the seq taken for it was rolled back).
    existing = await _by_client_id(db, room_id, user_id, client_msg_id)
    if existing is None:
        raise errors.Internal()
    return False, existing


async def _by_client_id(
    db: Database, room_id: str, sender_id: str, client_msg_id: str
) -> Message | None:
    row = await db.fetch_one(
        "get_message_by_client_id",
        room_id=room_id,
        sender_id=sender_id,
        client_msg_id=client_msg_id,
    )
    return None if row is None else Message.from_row(row)


async def list_messages(
    ctx: Context,
    *,
    user_id: str,
    room_id: str,
    after: int | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> MessagePage:
    """A page of history, ascending by seq: ``{"messages", "hasMore"}``.

    - ``after`` (with or without ``before``): the oldest ``limit`` messages
      above ``after``; ``hasMore`` when more follow them (below ``before``).
    - ``before`` alone: the newest ``limit`` messages below it; ``hasMore``
      when older ones exist.
    - neither: the room's latest ``limit`` messages; ``hasMore`` when older
      ones exist.
    """
    await ctx.room_access.check(user_id, room_id)
    bounds = {
        "room_id": room_id,
        "after": 0 if after is None else after,
        "before": NO_UPPER_BOUND if before is None else before,
        "limit": limit + 1,
    }
    if after is not None:
        rows = await ctx.db.fetch_all("list_messages_ascending", **bounds)
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        rows = await ctx.db.fetch_all("list_messages_descending", **bounds)
        has_more = len(rows) > limit
        rows = rows[:limit][::-1]
    return MessagePage([Message.from_row(row) for row in rows], has_more)


async def messages_between(
    ctx: Context, room_id: str, after: int, upto: int, limit: int = MAX_LIMIT
) -> list[Message]:
    """Up to ``limit`` stored messages with after < seq <= upto, ascending.

    For catching a subscriber up; the caller has checked membership.
    """
    rows = await ctx.db.fetch_all(
        "list_messages_ascending", room_id=room_id, after=after, before=upto + 1, limit=limit
    )
    return [Message.from_row(row) for row in rows]


async def typing(ctx: Context, *, user_id: str, room_id: str, member_known: bool = False) -> None:
    """Tell the room's other subscribers that ``user_id`` is typing; nothing is stored.

    ``member_known``: the caller holds a live subscription to the room, which
    already proves membership (leaving ends it), so no read is needed.
    """
    if not member_known:
        await ctx.room_access.check(user_id, room_id)
    ctx.broker.publish(room_id, views.typing_event(room_id, user_id))
