"""Messages: storing (HTTP and WebSocket share ``send_message``), history, typing.

A room's ``seq`` is taken in the storing transaction from ``rooms.last_seq``
under the room row's lock, so seqs run 1, 2, 3, ... per room without gaps or
repeats whatever the number of concurrent senders, and seq N+1 is only taken
once N's transaction has ended. Subscribers hear of a message only after it
has committed.
"""

from chat import errors
from chat.actions import views
from chat.db.pool import is_duplicate
from chat.util.times import utcnow

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Above every seq: the open end of a range.
NO_UPPER_BOUND = 2**63 - 1


async def room_access(db, user_id, room_id):
    """The room's latest seq, for a member; NotFound / NotRoomMember otherwise.

    ``db`` is the Database, or a Transaction to read inside it.
    """
    row = await db.fetch_one("get_message_room_access", room_id=room_id, user_id=user_id)
    if row is None:
        raise errors.NotFound("No such room.")
    if row["member"] is None:
        raise errors.NotRoomMember()
    return int(row["last_seq"])


async def send_message(ctx, user_id, body):
    """Store a message; returns ``(created, Message)``.

    ``created`` is False when the sender already stored this ``clientMsgId``
    in the room: the original comes back, stored and delivered once. Messages
    sent at the same moment are stored together (``MessageWriter``).
    """
    return await ctx.message_writer.submit(
        user_id, body["roomId"], body["content"], body.get("clientMsgId")
    )


async def store_one(db, broker, user_id, room_id, content, client_msg_id):
    """Store one message in a transaction of its own; returns ``(created, Message)``."""

    async def store(tx):
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
        message = views.message(row)
        tx.after_commit(broker.publish, room_id, {"type": "message", "message": message})
        return message

    try:
        return True, await db.transaction("send_message", store)
    except Exception as exc:
        if client_msg_id is None or not is_duplicate(exc):
            raise
    # The sender stored this clientMsgId in the room before: the retry gets
    # the original back (the seq taken for it was rolled back).
    existing = await _by_client_id(db, room_id, user_id, client_msg_id)
    if existing is None:
        raise errors.Internal()
    return False, existing


async def _by_client_id(db, room_id, sender_id, client_msg_id):
    row = await db.fetch_one(
        "get_message_by_client_id",
        room_id=room_id,
        sender_id=sender_id,
        client_msg_id=client_msg_id,
    )
    return None if row is None else views.message(row)


async def list_messages(ctx, user_id, args):
    """A page of history, ascending by seq: ``{"messages", "hasMore"}``.

    - ``after`` (with or without ``before``): the oldest ``limit`` messages
      above ``after``; ``hasMore`` when more follow them (below ``before``).
    - ``before`` alone: the newest ``limit`` messages below it; ``hasMore``
      when older ones exist.
    - neither: the room's latest ``limit`` messages; ``hasMore`` when older
      ones exist.
    """
    room_id = args["roomId"]
    await room_access(ctx.db, user_id, room_id)
    limit = args.get("limit", DEFAULT_LIMIT)
    bounds = {
        "room_id": room_id,
        "after": args.get("after", 0),
        "before": args.get("before", NO_UPPER_BOUND),
        "limit": limit + 1,
    }
    if "after" in args:
        rows = await ctx.db.fetch_all("list_messages_ascending", **bounds)
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        rows = await ctx.db.fetch_all("list_messages_descending", **bounds)
        has_more = len(rows) > limit
        rows = rows[:limit][::-1]
    return {"messages": [views.message(row) for row in rows], "hasMore": has_more}


async def messages_between(ctx, room_id, after, upto, limit=MAX_LIMIT):
    """Up to ``limit`` stored messages with after < seq <= upto, ascending.

    For catching a subscriber up; the caller has checked membership.
    """
    rows = await ctx.db.fetch_all(
        "list_messages_ascending", room_id=room_id, after=after, before=upto + 1, limit=limit
    )
    return [views.message(row) for row in rows]


async def typing(ctx, user_id, room_id, member_known=False):
    """Tell the room's other subscribers that ``user_id`` is typing; nothing is stored.

    ``member_known``: the caller holds a live subscription to the room, which
    already proves membership (leaving ends it), so no read is needed.
    """
    if not member_known:
        await room_access(ctx.db, user_id, room_id)
    ctx.broker.publish(room_id, {"type": "typing", "roomId": room_id, "userId": user_id})
