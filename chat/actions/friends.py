"""Friend requests and friendships.

Every write transaction starts by locking both users' rows (``lock_user_pair``),
so sending, accepting, declining and withdrawing on one pair happen one at a
time: two users who send each other a request at the same moment end as one
friendship, never as two pending requests. Under that lock the pair's requests
and friendship cannot change, so what a transaction reads about them holds
until it commits. The unique keys stay as a last line of defence; a
duplicate key they raise is answered as the conflict it means, never as a 500.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from chat import errors
from chat.db.errors import DuplicateKey
from chat.models import FriendRequest, Profile
from chat.util import ids
from chat.util.times import utcnow

if TYPE_CHECKING:
    import datetime

    from chat.context import Context
    from chat.db.pool import Row, Transaction

# requestId is the BIGINT UNSIGNED key as a string.
REQUEST_ID = re.compile(r"^[0-9]{1,20}$")
MAX_REQUEST_ID = 2**64 - 1


def _request_id(text: str) -> int:
    """The numeric id in a path, or NotFound for anything else."""
    if REQUEST_ID.fullmatch(text) and int(text) <= MAX_REQUEST_ID:
        return int(text)
    raise errors.NotFound("No such friend request.")


async def _request_of(ctx: Context, request_id: int, party: str, user_id: str) -> Row:
    """The request if ``user_id`` is its ``party`` (receiver or sender); else NotFound."""
    request = await ctx.db.fetch_one("get_friend_request", request_id=request_id)
    if request is None or not ids.same_user(request[party], user_id):
        raise errors.NotFound("No such friend request.")
    return request


async def _lock_pair(tx: Transaction, a: str, b: str) -> list[str]:
    """Lock both users' rows; returns the userIds found, as stored."""
    return [row["user_id"] for row in await tx.fetch_all("lock_user_pair", a=a, b=b)]


async def send_request(
    ctx: Context, *, sender_id: str, receiver_id: str
) -> tuple[FriendRequest, bool]:
    """Send a request; returns (FriendRequest, created).

    ``created`` is False when the receiver had already asked the sender: that
    request is accepted instead and returned.
    """
    await ctx.limits.take(("friend_requests", ids.fold(sender_id)))
    if ids.same_user(sender_id, receiver_id):
        raise errors.ValidationFailed(
            [{"field": "userId", "message": "must be someone other than yourself"}],
            "You cannot send a friend request to yourself.",
        )

    async def send(tx: Transaction) -> tuple[Row, bool]:
        found = await _lock_pair(tx, sender_id, receiver_id)
        sender = next((u for u in found if ids.same_user(u, sender_id)), None)
        receiver = next((u for u in found if ids.same_user(u, receiver_id)), None)
        if sender is None or receiver is None:
            raise errors.NotFound("No such user.")
        # What the pair already is comes before the shared-room rule: being
        # told "already friends" or "already asked" reveals nothing new.
        if await tx.fetch_one("get_friendship", a=sender, b=receiver):
            raise errors.AlreadyFriends()
        if await tx.fetch_one(
            "lock_pending_friend_request", from_user_id=sender, to_user_id=receiver
        ):
            raise errors.RequestExists()
        now = utcnow()
        crossing = await tx.fetch_one(
            "lock_pending_friend_request", from_user_id=receiver, to_user_id=sender
        )
        if crossing:
            # Answering the request the receiver already sent needs no shared
            # room, just as accepting it through /accept would not.
            return await _answer(tx, crossing, "accepted", now), False
        if not await tx.fetch_one("lock_shared_room", a=sender, b=receiver):
            raise errors.NotParticipant()
        try:
            _, request_id = await tx.execute(
                "insert_friend_request", from_user_id=sender, to_user_id=receiver, created_at=now
            )
        except DuplicateKey:
            raise errors.RequestExists() from None
        row = {
            "request_id": request_id,
            "from_user_id": sender,
            "to_user_id": receiver,
            "status": "pending",
            "created_at": now,
            "responded_at": None,
        }
        return row, True

    row, created = await ctx.db.transaction("send_friend_request", send)
    return FriendRequest.from_row(row), created


async def _answer(tx: Transaction, request: Row, status: str, now: datetime.datetime) -> Row:
    """Accept or decline a locked pending request; returns the updated row."""
    rows, _ = await tx.execute(
        "answer_friend_request", request_id=request["request_id"], status=status, responded_at=now
    )
    if rows != 1:
        raise errors.RequestNotPending(request["status"])
    if status == "accepted":
        try:
            rows, _ = await tx.execute(
                "insert_friendship",
                a=request["from_user_id"],
                b=request["to_user_id"],
                created_at=now,
            )
        except DuplicateKey:
            raise errors.AlreadyFriends() from None
        if rows != 1:
            raise errors.NotFound("No such user.")
    return {**request, "status": status, "responded_at": now}


async def respond(ctx: Context, *, user_id: str, request_id: str, accept: bool) -> FriendRequest:
    """The receiver accepts or declines a pending request; anyone else gets 404."""
    key = _request_id(request_id)
    request = await _request_of(ctx, key, "to_user_id", user_id)

    async def answer(tx: Transaction) -> Row:
        await _lock_pair(tx, request["from_user_id"], request["to_user_id"])
        current = await tx.fetch_one("lock_friend_request", request_id=key)
        if current is None:
            raise errors.NotFound("No such friend request.")  # withdrawn meanwhile
        if current["status"] != "pending":
            raise errors.RequestNotPending(current["status"])
        return await _answer(tx, current, "accepted" if accept else "declined", utcnow())

    name = "accept_friend_request" if accept else "decline_friend_request"
    return FriendRequest.from_row(await ctx.db.transaction(name, answer))


async def withdraw(ctx: Context, *, user_id: str, request_id: str) -> None:
    """The sender deletes a request that is still pending; otherwise 404."""
    key = _request_id(request_id)
    request = await _request_of(ctx, key, "from_user_id", user_id)

    async def delete(tx: Transaction) -> None:
        await _lock_pair(tx, request["from_user_id"], request["to_user_id"])
        rows, _ = await tx.execute("delete_pending_friend_request", request_id=key)
        if rows != 1:
            raise errors.NotFound("No pending friend request with this id.")

    await ctx.db.transaction("withdraw_friend_request", delete)


async def list_requests(
    ctx: Context, *, user_id: str, direction: str | None = None, status: str | None = None
) -> list[FriendRequest]:
    """The user's requests, newest first, maybe of one direction and/or status."""
    rows = await ctx.db.fetch_all(
        "list_friend_requests",
        user_id=user_id,
        incoming=direction in (None, "incoming"),
        outgoing=direction in (None, "outgoing"),
        status=status,
    )
    return [FriendRequest.from_row(row) for row in rows]


async def list_friends(ctx: Context, *, user_id: str) -> list[Profile]:
    rows = await ctx.db.fetch_all("list_friends", user_id=user_id)
    return [Profile.from_row(row) for row in rows]
