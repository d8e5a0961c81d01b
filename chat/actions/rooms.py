"""Rooms: creation, listing, invitations, joining (with its price) and leaving.

Every change of a room's membership runs under that room's row lock, which
serializes joins and leaves per room. Joins are written in batches by
``join_writer.JoinWriter``: the seat, the coin deduction, the ledger row and
the membership insert share one transaction.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from chat import errors
from chat.api import views
from chat.auth import tokens
from chat.models import Invitation, Joined, Room
from chat.util import ids
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.context import Context
    from chat.db.pool import Transaction

CAPACITY = 6


async def _user(ctx: Context, user_id: str) -> dict[str, Any]:
    user = await ctx.db.fetch_one("get_profile", user_id=user_id)
    if user is None:
        raise errors.NotFound("No such user.")
    return user


async def create_room(ctx: Context, *, owner_id: str, name: str, password: str) -> Room:
    owner = await _user(ctx, owner_id)
    if not owner["is_prime"]:
        raise errors.NotPrime("Only prime members can create rooms.")
    password_hash = await ctx.passwords.hash(password)
    room = Room(
        room_id=tokens.new_room_id(),
        name=name,
        owner_id=owner["user_id"],
        capacity=CAPACITY,
        members=(owner["user_id"],),
        created_at=utcnow(),
    )

    async def insert(tx: Transaction) -> None:
        await tx.execute(
            "insert_room",
            password_hash=password_hash,
            room_id=room.room_id,
            name=room.name,
            owner_id=room.owner_id,
            capacity=room.capacity,
            created_at=room.created_at,
        )
        await tx.execute(
            "insert_membership",
            room_id=room.room_id,
            user_id=room.owner_id,
            charged=0,
            joined_at=room.created_at,
        )

    await ctx.db.transaction("create_room", insert)
    ctx.room_passwords.remember(room.room_id, password)
    return room


async def list_rooms(ctx: Context, *, user_id: str) -> list[Room]:
    rows = await ctx.db.fetch_all("list_rooms_of_user", user_id=user_id)
    members: dict[str, list[str]] = {}
    for m in await ctx.db.fetch_all("list_members_of_users_rooms", user_id=user_id):
        members.setdefault(m["room_id"], []).append(m["user_id"])
    return [Room.from_row(row, members.get(row["room_id"], [])) for row in rows]


async def get_room(ctx: Context, *, user_id: str, room_id: str) -> Room:
    row = await ctx.db.fetch_one("get_room", room_id=room_id)
    if row is None:
        raise errors.NotFound("No such room.")
    members = [m["user_id"] for m in await ctx.db.fetch_all("list_members", room_id=room_id)]
    if not ids.has_member(members, user_id):
        raise errors.NotRoomMember()
    return Room.from_row(row, members)


async def invite(ctx: Context, *, inviter_id: str, room_id: str, invitee_id: str) -> Invitation:
    await ctx.limits.take(("invitations", ids.fold(inviter_id)))
    room = await ctx.db.fetch_one("get_room", room_id=room_id)
    if room is None:
        raise errors.NotFound("No such room.")
    if not ids.same_user(room["owner_id"], inviter_id):
        raise errors.Forbidden("Only the room's owner can invite.")
    invitee = await _user(ctx, invitee_id)
    if not invitee["is_prime"]:
        raise errors.NotPrime("Only prime members can be invited.")
    token, token_hash = tokens.new_invitation_token()
    now = utcnow()
    expires_at = now + datetime.timedelta(seconds=ctx.settings.invite_ttl)
    await ctx.db.execute(
        "insert_invitation",
        token_hash=token_hash,
        room_id=room["room_id"],
        inviter_id=room["owner_id"],
        invitee_id=invitee["user_id"],
        expires_at=expires_at,
        created_at=now,
    )
    return Invitation(token, room["room_id"], invitee["user_id"], expires_at)


async def join_room(
    ctx: Context,
    *,
    user_id: str,
    room_id: str | None = None,
    password: str | None = None,
    invite_token: str | None = None,
) -> Joined:
    """Join by ``invite_token``, or by ``room_id`` and its ``password``."""
    if invite_token is not None:
        return await ctx.join_writer.submit(user_id, token=invite_token)
    if room_id is None or password is None:
        raise errors.ValidationFailed([{"field": "roomId", "message": "is required"}])
    found_id = room_id

    async def password_hash() -> str:
        row = await ctx.db.fetch_one("get_room_password", room_id=found_id)
        if row is None:
            raise errors.NotFound("No such room.")
        hashed: str = row["password_hash"]
        return hashed

    # bcrypt runs before the join's transaction so no lock is held while it does.
    # A password this process has seen open the room needs no bcrypt and no
    # limit; any other is counted as a wrong guess before bcrypt runs (per
    # user and per room), and given back if it was right.
    if not ctx.room_passwords.known(room_id, password):
        guesses = (
            ("room_password_failures", ids.fold(user_id)),
            ("room_password_failures_room", room_id),
        )
        await ctx.limits.take(*guesses)
        try:
            right = await ctx.room_passwords.verify(room_id, password, password_hash)
        except (errors.NotFound, errors.Overloaded):  # no guess was checked
            await ctx.limits.refunded(*guesses)
            raise
        if not right:
            raise errors.WrongRoomPassword()
        await ctx.limits.refunded(*guesses)
    return await ctx.join_writer.submit(user_id, room_id=room_id)


async def leave_room(ctx: Context, *, user_id: str, room_id: str) -> None:
    async def leave(tx: Transaction) -> None:
        room = await tx.fetch_one("lock_room", room_id=room_id, user_id=user_id)
        if room is None:
            raise errors.NotFound("No such room.")
        member = room["member_id"]
        if member is None:
            raise errors.NotRoomMember()
        if ids.same_user(room["owner_id"], user_id):
            raise errors.Forbidden("The owner cannot leave their own room.")
        await tx.execute("delete_membership", room_id=room_id, user_id=member)
        await tx.execute("free_seat", room_id=room_id)
        tx.after_commit(
            ctx.broker.publish, room_id, views.room_event("member_left", room_id, member)
        )

    await ctx.db.transaction("leave_room", leave)
