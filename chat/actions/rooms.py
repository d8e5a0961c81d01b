"""Rooms: creation, listing, invitations, joining (with its price) and leaving.

Every change of a room's membership runs under that room's row lock, which
serializes joins and leaves per room. Joins are written in batches by
``join_writer.JoinWriter``: the seat, the coin deduction, the ledger row and
the membership insert share one transaction.
"""

import datetime

from chat import errors
from chat.actions import views
from chat.auth import tokens
from chat.util.times import utcnow

CAPACITY = 6


async def _user(ctx, user_id):
    user = await ctx.db.fetch_one("get_profile", user_id=user_id)
    if user is None:
        raise errors.NotFound("No such user.")
    return user


async def create_room(ctx, owner_id, body):
    owner = await _user(ctx, owner_id)
    if not owner["is_prime"]:
        raise errors.NotPrime("Only prime members can create rooms.")
    password_hash = await ctx.passwords.hash(body["password"])
    row = {
        "room_id": tokens.new_room_id(),
        "name": body["name"],
        "owner_id": owner["user_id"],
        "capacity": CAPACITY,
        "created_at": utcnow(),
    }

    async def insert(tx):
        await tx.execute("insert_room", password_hash=password_hash, **row)
        await tx.execute(
            "insert_membership",
            room_id=row["room_id"],
            user_id=owner["user_id"],
            charged=0,
            joined_at=row["created_at"],
        )

    await ctx.db.transaction("create_room", insert)
    ctx.room_passwords.remember(row["room_id"], body["password"])
    return views.room(row, [owner["user_id"]])


async def list_rooms(ctx, user_id):
    rows = await ctx.db.fetch_all("list_rooms_of_user", user_id=user_id)
    members = {}
    for m in await ctx.db.fetch_all("list_members_of_users_rooms", user_id=user_id):
        members.setdefault(m["room_id"], []).append(m["user_id"])
    return [views.room(row, members.get(row["room_id"], [])) for row in rows]


async def get_room(ctx, user_id, room_id):
    row = await ctx.db.fetch_one("get_room", room_id=room_id)
    if row is None:
        raise errors.NotFound("No such room.")
    members = [m["user_id"] for m in await ctx.db.fetch_all("list_members", room_id=room_id)]
    if not has_member(members, user_id):
        raise errors.NotRoomMember()
    return views.room(row, members)


def has_member(user_ids, user_id):
    """Whether ``user_id`` is among ``user_ids`` (userIds compare without case)."""
    return user_id.lower() in (u.lower() for u in user_ids)


async def invite(ctx, inviter_id, body):
    room = await ctx.db.fetch_one("get_room", room_id=body["roomId"])
    if room is None:
        raise errors.NotFound("No such room.")
    if room["owner_id"].lower() != inviter_id.lower():
        raise errors.Forbidden("Only the room's owner can invite.")
    invitee = await _user(ctx, body["userId"])
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
    return views.invitation(token, room["room_id"], invitee["user_id"], expires_at)


async def join_room(ctx, user_id, body):
    """Join by room password or invitation: ``{"room", "charged", "availCoins"}``."""
    token = body.get("inviteToken")
    if token is not None:
        return await ctx.join_writer.submit(user_id, token=token)
    room_id = body["roomId"]

    async def password_hash():
        row = await ctx.db.fetch_one("get_room_password", room_id=room_id)
        if row is None:
            raise errors.NotFound("No such room.")
        return row["password_hash"]

    # bcrypt runs before the join's transaction so no lock is held while it does.
    if not await ctx.room_passwords.verify(room_id, body["password"], password_hash):
        raise errors.WrongRoomPassword()
    return await ctx.join_writer.submit(user_id, room_id=room_id)


async def leave_room(ctx, user_id, room_id):
    async def leave(tx):
        room = await tx.fetch_one("lock_room", room_id=room_id, user_id=user_id)
        if room is None:
            raise errors.NotFound("No such room.")
        member = room["member_id"]
        if member is None:
            raise errors.NotRoomMember()
        if room["owner_id"].lower() == user_id.lower():
            raise errors.Forbidden("The owner cannot leave their own room.")
        await tx.execute("delete_membership", room_id=room_id, user_id=member)
        await tx.execute("free_seat", room_id=room_id)
        tx.after_commit(
            ctx.broker.publish, room_id, views.room_event("member_left", room_id, member)
        )

    await ctx.db.transaction("leave_room", leave)
