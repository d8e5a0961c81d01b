"""Rooms: creation, listing, invitations, joining (with its price) and leaving.

Every change of a room's membership runs under that room's row lock (taken by
``take_seat`` for a join, ``lock_room`` for a leave), which serializes joins and
leaves per room; the user's row is locked next when coins or the free join are
at stake. The seat, the coin deduction, the ledger row and the membership
insert share one transaction.
"""

import datetime

from .. import errors, security
from ..timeutil import utcnow
from . import views

CAPACITY = 6


def _room_event(kind, room_id, user_id):
    return {"type": kind, "roomId": room_id, "userId": user_id}


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
    row = {"room_id": security.new_room_id(), "name": body["name"],
           "owner_id": owner["user_id"], "capacity": CAPACITY, "created_at": utcnow()}

    async def insert(tx):
        await tx.execute("insert_room", password_hash=password_hash, **row)
        await tx.execute("insert_membership", room_id=row["room_id"], user_id=owner["user_id"],
                         charged=0, joined_at=row["created_at"])

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
    if not _contains(members, user_id):
        raise errors.NotRoomMember()
    return views.room(row, members)


def _contains(user_ids, user_id):
    # userIds compare without case, as the users table does.
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
    token, token_hash = security.new_invitation_token()
    now = utcnow()
    expires_at = now + datetime.timedelta(seconds=ctx.settings.invite_ttl)
    await ctx.db.execute("insert_invitation", token_hash=token_hash, room_id=room["room_id"],
                         inviter_id=room["owner_id"], invitee_id=invitee["user_id"],
                         expires_at=expires_at, created_at=now)
    return views.invitation(token, room["room_id"], invitee["user_id"], expires_at)


async def join_room(ctx, user_id, body):
    """Join by room password or invitation; returns (Room, charged, availCoins)."""
    token = body.get("inviteToken")
    room_id = None
    if token is None:
        room_id = body["roomId"]

        async def password_hash():
            row = await ctx.db.fetch_one("get_room_password", room_id=room_id)
            if row is None:
                raise errors.NotFound("No such room.")
            return row["password_hash"]

        # bcrypt runs before the transaction so no lock is held while it does.
        if not await ctx.room_passwords.verify(room_id, body["password"], password_hash):
            raise errors.WrongRoomPassword()

    async def join(tx):
        target = room_id
        now = utcnow()
        if token is not None:
            target = await _use_invitation(tx, token, user_id, now)
        rows, _ = await tx.execute("take_seat", room_id=target)
        seated = rows == 1
        room = await tx.fetch_one("get_room_with_members", room_id=target)
        if room is None:
            raise errors.NotFound("No such room.")
        members = room["members"].split(",") if room["members"] else []
        if _contains(members, user_id):
            if seated:
                await tx.execute("free_seat", room_id=target)  # not needed after all
            user = await tx.fetch_one("get_profile", user_id=user_id)
            return room, members, 0, user["avail_coins"]
        if not seated:
            raise errors.RoomFull()
        charged, balance = await _charge(ctx, tx, user_id, target, now)
        await tx.execute("insert_membership", room_id=target, user_id=user_id,
                         charged=charged, joined_at=now)
        tx.after_commit(ctx.broker.publish, target, _room_event("member_joined", target, user_id))
        return room, members + [user_id], charged, balance

    room, members, charged, balance = await ctx.db.transaction("join_room", join)
    return {"room": views.room(room, members), "charged": charged, "availCoins": int(balance)}


async def _use_invitation(tx, token, user_id, now):
    """Consume the invitation for ``user_id``; returns its room id."""
    inv = await tx.fetch_one("lock_invitation", token_hash=security.invitation_hash(token))
    if (inv is None or inv["used_at"] is not None or inv["expires_at"] <= now
            or inv["invitee_id"].lower() != user_id.lower()):
        raise errors.InviteInvalid()
    rows, _ = await tx.execute("use_invitation", invitation_id=inv["invitation_id"], used_at=now)
    if rows != 1:
        raise errors.InviteInvalid()
    return inv["room_id"]


async def _charge(ctx, tx, user_id, room_id, now):
    """The price of this join, taken under the user's row lock: (charged, new balance).

    The common case, a paying member who can pay, is one conditional UPDATE;
    every other case locks the user's row and decides from it.
    """
    price = ctx.settings.join_price
    if price > 0:
        balance = await _pay(tx, user_id, price, room_id, now)
        if balance is not None:
            return price, balance
    user = await tx.fetch_one("lock_user", user_id=user_id)
    if user is None:
        raise errors.NotFound("No such user.")
    balance = user["avail_coins"]
    if user["is_prime"]:
        return 0, balance
    if not user["free_join_used"]:
        await tx.execute("use_free_join", user_id=user_id)
        return 0, balance
    if price == 0:
        return 0, balance
    # Under the lock this fails only for a short balance (the first try can also
    # miss because a concurrent join took the free join in the meantime).
    paid = await _pay(tx, user_id, price, room_id, now)
    if paid is None:
        raise errors.InsufficientCoins(price, int(balance))
    return price, paid


async def _pay(tx, user_id, price, room_id, now):
    """Take ``price`` and write it to the ledger; the new balance, or None if it cannot pay."""
    rows, balance = await tx.execute("charge_join", user_id=user_id, price=price)
    if rows != 1:
        return None
    await tx.execute("insert_ledger_entry", user_id=user_id, delta=-price, balance_after=balance,
                     reason="join_charge", room_id=room_id, created_at=now)
    return balance


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
        tx.after_commit(ctx.broker.publish, room_id, _room_event("member_left", room_id, member))

    await ctx.db.transaction("leave_room", leave)
