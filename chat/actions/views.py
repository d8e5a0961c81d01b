"""How rows become the API's JSON objects. Nothing secret ever passes through."""

from chat.util.times import iso


def profile(user):
    return {
        "userId": user["user_id"],
        "name": user["name"],
        "isPrime": bool(user["is_prime"]),
        "createdAt": iso(user["created_at"]),
    }


def own_profile(user):
    return {
        **profile(user),
        "phone": user["phone"],
        "deviceId": user["device_id"],
        "availCoins": int(user["avail_coins"]),
        "freeJoinUsed": bool(user["free_join_used"]),
    }


def room(row, members):
    return {
        "roomId": row["room_id"],
        "name": row["name"],
        "ownerId": row["owner_id"],
        "capacity": int(row["capacity"]),
        "memberCount": len(members),
        "members": list(members),
        "createdAt": iso(row["created_at"]),
    }


def room_event(kind, room_id, user_id):
    """A ``member_joined`` or ``member_left`` event."""
    return {"type": kind, "roomId": room_id, "userId": user_id}


def invitation(token, room_id, invitee_id, expires_at):
    return {
        "token": token,
        "roomId": room_id,
        "inviteeId": invitee_id,
        "expiresAt": iso(expires_at),
    }


def friend_request(row):
    responded_at = row["responded_at"]
    return {
        "requestId": str(row["request_id"]),
        "fromUserId": row["from_user_id"],
        "toUserId": row["to_user_id"],
        "status": row["status"],
        "createdAt": iso(row["created_at"]),
        "respondedAt": iso(responded_at) if responded_at else None,
    }


def message(row):
    return {
        "messageId": str(row["message_id"]),
        "roomId": row["room_id"],
        "seq": int(row["seq"]),
        "senderId": row["sender_id"],
        "content": row["content"],
        "clientMsgId": row["client_msg_id"],
        "createdAt": iso(row["created_at"]),
    }
