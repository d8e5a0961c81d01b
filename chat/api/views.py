"""How domain values become the API's JSON objects. Nothing secret ever passes through."""

from __future__ import annotations

from typing import Any

from chat.models import (
    Account,
    FriendRequest,
    Invitation,
    Joined,
    LedgerEntry,
    Login,
    Message,
    Profile,
    Room,
    RoomSummary,
    Session,
)
from chat.util.times import iso

Json = dict[str, Any]


def profile(user: Profile) -> Json:
    return {
        "userId": user.user_id,
        "name": user.name,
        "isPrime": user.is_prime,
        "createdAt": iso(user.created_at),
    }


def own_profile(user: Account) -> Json:
    return {
        **profile(user),
        "phone": user.phone,
        "deviceId": user.device_id,
        "availCoins": user.avail_coins,
        "freeJoinUsed": user.free_join_used,
    }


def user(user: Profile) -> Json:
    """An ``Account`` as its owner sees it, any other ``Profile`` as anyone does."""
    return own_profile(user) if isinstance(user, Account) else profile(user)


def login(result: Login) -> Json:
    answer: Json = {
        "token": result.token,
        "tokenType": "Bearer",
        "expiresIn": result.expires_in,
        "refreshToken": result.refresh_token,
        "refreshExpiresIn": result.refresh_expires_in,
        "sessionId": result.session_id,
    }
    if result.user is not None:
        answer["user"] = own_profile(result.user)
    return answer


def session(found: Session) -> Json:
    return {
        "sessionId": found.session_id,
        "deviceId": found.device_id,
        "createdAt": iso(found.created_at),
        "lastUsedAt": iso(found.last_used_at),
        "current": found.current,
    }


def room(room: Room) -> Json:
    return {
        "roomId": room.room_id,
        "name": room.name,
        "ownerId": room.owner_id,
        "capacity": room.capacity,
        "memberCount": len(room.members),
        "members": list(room.members),
        "createdAt": iso(room.created_at),
    }


def joined(outcome: Joined) -> Json:
    return {
        "room": room(outcome.room),
        "charged": outcome.charged,
        "availCoins": outcome.avail_coins,
    }


def invitation(invitation: Invitation) -> Json:
    return {
        "token": invitation.token,
        "roomId": invitation.room_id,
        "inviteeId": invitation.invitee_id,
        "expiresAt": iso(invitation.expires_at),
    }


def friend_request(request: FriendRequest) -> Json:
    responded_at = request.responded_at
    return {
        "requestId": str(request.request_id),
        "fromUserId": request.from_user_id,
        "toUserId": request.to_user_id,
        "status": request.status,
        "createdAt": iso(request.created_at),
        "respondedAt": iso(responded_at) if responded_at else None,
    }


def message(message: Message) -> Json:
    return {
        "messageId": str(message.message_id),
        "roomId": message.room_id,
        "seq": message.seq,
        "senderId": message.sender_id,
        "content": message.content,
        "clientMsgId": message.client_msg_id,
        "createdAt": iso(message.created_at),
    }


def ledger_entry(entry: LedgerEntry) -> Json:
    return {
        "entryId": str(entry.entry_id),
        "delta": entry.delta,
        "balanceAfter": entry.balance_after,
        "reason": entry.reason,
        "roomId": entry.room_id,
        "createdAt": iso(entry.created_at),
    }


def room_summary(room: RoomSummary) -> Json:
    return {
        "roomId": room.room_id,
        "name": room.name,
        "ownerId": room.owner_id,
        "capacity": room.capacity,
        "memberCount": room.member_count,
        "lastSeq": room.last_seq,
        "createdAt": iso(room.created_at),
    }


# Real-time events: what the broker carries to every subscribed socket.


def message_event(message_json: Json) -> Json:
    """A ``message`` event, of a message already in its JSON form."""
    return {"type": "message", "message": message_json}


def room_event(kind: str, room_id: str, user_id: str) -> Json:
    """A ``member_joined`` or ``member_left`` event."""
    return {"type": kind, "roomId": room_id, "userId": user_id}


def typing_event(room_id: str, user_id: str) -> Json:
    return {"type": "typing", "roomId": room_id, "userId": user_id}
