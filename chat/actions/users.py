"""Accounts: registration, login, logout, profiles and operator grants."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chat import errors
from chat.actions import sessions
from chat.db.errors import DuplicateKey
from chat.models import Account, Login, Profile
from chat.util import ids
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.context import Context
    from chat.db.pool import Transaction


async def register(
    ctx: Context,
    *,
    user_id: str,
    password: str,
    device_id: str,
    name: str,
    phone: str,
    avail_coins: int = 0,
    is_prime: bool = False,
    address: str = "",
) -> Account:
    """Register a user; ``address`` (the client's, see ratelimit.address_key) is rate limited."""
    await ctx.limits.take(("registrations_address", address))
    if ctx.settings.signup_grants == "operator" and (avail_coins or is_prime):
        raise errors.Forbidden("Only an operator can grant coins or prime on this server.")
    password_hash = await ctx.passwords.hash(password)
    user = Account(
        user_id=user_id,
        name=name,
        is_prime=is_prime,
        created_at=utcnow(),
        phone=phone,
        device_id=device_id,
        avail_coins=avail_coins,
        free_join_used=False,
    )

    async def insert(tx: Transaction) -> None:
        await tx.execute(
            "insert_user",
            user_id=user.user_id,
            device_id=user.device_id,
            name=user.name,
            phone=user.phone,
            password_hash=password_hash,
            avail_coins=user.avail_coins,
            is_prime=user.is_prime,
            created_at=user.created_at,
        )
        if avail_coins:
            await tx.execute(
                "insert_ledger_entry",
                user_id=user.user_id,
                delta=avail_coins,
                balance_after=avail_coins,
                reason="signup_grant",
                room_id=None,
                created_at=user.created_at,
            )

    try:
        await ctx.db.transaction("register", insert)
    except DuplicateKey:
        raise errors.UserExists() from None
    return user


async def login(
    ctx: Context,
    *,
    password: str,
    user_id: str | None = None,
    phone: str | None = None,
    device_id: str | None = None,
    address: str = "",
) -> Login:
    """Log in by ``user_id`` or, without one, by ``phone``, from the client ``address``.

    Every attempt is counted as a failure (per account and address, and per
    address) before bcrypt runs, and given back when the password was right:
    so any number of simultaneous guesses gets at most the limit checked, and
    someone else's failures from another address never lock a user out.
    """
    if user_id is not None:
        user = await ctx.db.fetch_one("get_user", user_id=user_id)
        named = user_id
    else:
        user = await ctx.db.fetch_one("get_user_by_phone", phone=phone)
        named = phone or ""
    # Failed attempts count per account, whether it is named by userId or phone.
    account = ids.fold(user["user_id"] if user else named)
    failures = failure_limits(account, address)
    await ctx.limits.take(("logins_address", address), *failures)
    try:
        ok = await ctx.passwords.verify(password, user["password_hash"] if user else None)
    except errors.Overloaded:  # not checked: not an attempt either
        await ctx.limits.refunded(("logins_address", address), *failures)
        raise
    if not ok or user is None:
        raise errors.InvalidCredentials()
    # Right: this attempt was no failure. Earlier failures still count (they
    # refill with time): a guesser sharing the address (a NAT) gains nothing
    # from the user's own logins.
    await ctx.limits.refunded(*failures)
    return await sessions.start(ctx, user=Account.from_row(user), device_id=device_id)


def failure_limits(account: str, address: str) -> tuple[tuple[str, str], ...]:
    """The limits a failed password check counts against (login, password change)."""
    return (("login_failures", f"{account}@{address}"), ("login_failures_address", address))


async def logout(ctx: Context, *, claims: dict[str, Any]) -> None:
    """End the session of the token in use: its access and refresh tokens, its sockets."""
    await sessions.end(ctx, session_id=claims["sid"])


async def get_profile(ctx: Context, *, viewer_id: str, user_id: str) -> Profile:
    """The viewer's own ``Account``, or another user's public ``Profile``."""
    if ids.same_user(user_id, viewer_id):
        row = await ctx.db.fetch_one("get_profile", user_id=user_id)
        if row is None:
            raise errors.NotFound("No such user.")
        return Account.from_row(row)
    row = await ctx.public_profiles.get(user_id)
    if row is None:
        raise errors.NotFound("No such user.")
    return Profile.from_row(row)


async def grant(
    ctx: Context,
    *,
    user_id: str,
    coins: int = 0,
    is_prime: bool | None = None,
    actor: str = "operator",
) -> Account:
    """An operator's grant of coins and/or prime: coins in the coin ledger, each an audit row."""

    async def apply(tx: Transaction) -> Account:
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
        if is_prime is not None:
            await tx.execute("set_prime", user_id=user_id, is_prime=is_prime)
            user["is_prime"] = is_prime
        audited = []
        if coins:
            audited.append(("grant_coins", {"coins": coins}))
        if is_prime is not None:
            audited.append(("set_prime", {"isPrime": is_prime}))
        for action, details in audited:
            await tx.execute(
                "insert_audit",
                action=action,
                actor=actor[:64],
                user_id=user["user_id"],
                details=json.dumps(details),
                created_at=utcnow(),
            )
        return Account.from_row(user)

    return await ctx.db.transaction("operator_grant", apply)
