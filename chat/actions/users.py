"""Accounts: registration, login, logout, profiles and operator grants."""

import datetime

from chat import errors
from chat.actions import views
from chat.db.pool import is_duplicate
from chat.util.times import utcnow


async def register(ctx, body):
    coins = body.get("availCoins", 0)
    prime = body.get("isPrime", False)
    if ctx.settings.signup_grants == "operator" and (coins or prime):
        raise errors.Forbidden("Only an operator can grant coins or prime on this server.")
    password_hash = await ctx.passwords.hash(body["password"])
    user = {
        "user_id": body["userId"],
        "device_id": body["deviceId"],
        "name": body["name"],
        "phone": body["phone"],
        "avail_coins": coins,
        "is_prime": prime,
        "free_join_used": False,
        "created_at": utcnow(),
    }

    async def insert(tx):
        await tx.execute(
            "insert_user",
            password_hash=password_hash,
            **{k: v for k, v in user.items() if k != "free_join_used"},
        )
        if coins:
            await tx.execute(
                "insert_ledger_entry",
                user_id=user["user_id"],
                delta=coins,
                balance_after=coins,
                reason="signup_grant",
                room_id=None,
                created_at=user["created_at"],
            )

    try:
        await ctx.db.transaction("register", insert)
    except Exception as exc:
        if is_duplicate(exc):
            raise errors.UserExists() from None
        raise
    return views.own_profile(user)


async def login(ctx, body):
    if "userId" in body:
        user = await ctx.db.fetch_one("get_user", user_id=body["userId"])
    else:
        user = await ctx.db.fetch_one("get_user_by_phone", phone=body["phone"])
    # Failed attempts count per account, whether it is named by userId or phone.
    key = user["user_id"].lower() if user else body.get("userId", body.get("phone")).lower()
    wait = ctx.login_limiter.retry_after(key)
    if wait:
        raise errors.RateLimited(wait)
    ok = await ctx.passwords.verify(body["password"], user and user["password_hash"])
    if not ok:
        ctx.login_limiter.hit(key)
        raise errors.InvalidCredentials()
    ctx.login_limiter.reset(key)
    token, claims = ctx.tokens.issue(user["user_id"], body.get("deviceId"))
    return {
        "token": token,
        "tokenType": "Bearer",
        "expiresIn": ctx.tokens.ttl,
        "user": views.own_profile(user),
    }


async def logout(ctx, claims):
    expires_at = datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC)

    async def revoke(tx):
        await tx.execute(
            "revoke_token",
            jti=claims["jti"],
            user_id=claims["sub"],
            expires_at=expires_at.replace(tzinfo=None),
        )
        tx.after_commit(ctx.broker.revoke_token, claims["jti"])

    await ctx.db.transaction("logout", revoke)


async def get_profile(ctx, viewer_id, user_id):
    own = user_id.lower() == viewer_id.lower()  # userIds compare without case
    if own:
        user = await ctx.db.fetch_one("get_profile", user_id=user_id)
    else:
        user = await ctx.public_profiles.get(user_id)
    if user is None:
        raise errors.NotFound("No such user.")
    return views.own_profile(user) if own else views.profile(user)


async def grant(ctx, user_id, body):
    """An operator's grant of coins and/or prime, recorded in the coin ledger."""
    coins = body.get("coins", 0)

    async def apply(tx):
        user = await tx.fetch_one("lock_user", user_id=user_id)
        if user is None:
            raise errors.NotFound("No such user.")
        if coins:
            await tx.execute("add_coins", user_id=user_id, amount=coins)
            user["avail_coins"] += coins
            await tx.execute(
                "insert_ledger_entry",
                user_id=user["user_id"],
                delta=coins,
                balance_after=user["avail_coins"],
                reason="operator_grant",
                room_id=None,
                created_at=utcnow(),
            )
        if "isPrime" in body:
            await tx.execute("set_prime", user_id=user_id, is_prime=body["isPrime"])
            user["is_prime"] = body["isPrime"]
        return views.own_profile(user)

    return await ctx.db.transaction("operator_grant", apply)
