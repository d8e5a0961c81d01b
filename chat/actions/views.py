"""How rows become the API's JSON objects. Nothing secret ever passes through."""

from ..timeutil import iso


def profile(user):
    return {"userId": user["user_id"], "name": user["name"],
            "isPrime": bool(user["is_prime"]), "createdAt": iso(user["created_at"])}


def own_profile(user):
    return {**profile(user), "phone": user["phone"], "deviceId": user["device_id"],
            "availCoins": int(user["avail_coins"]),
            "freeJoinUsed": bool(user["free_join_used"])}
