"""Sessions: one login on one device, its short access tokens and rotating refresh tokens.

A login starts a session: a row holding the SHA-256 of its one current
refresh token. ``refresh`` exchanges that token for a new access token and a
new refresh token (rotation), and remembers the old one as used. Presenting
a used refresh token again means two parties hold it, one of them a thief:
the whole session ends (RFC 9700, section 4.14.2) and the answer is 401.

Ending a session (logout, ``DELETE /api/sessions/{id}``, a password change,
a detected reuse) sets ``ended_at`` and, after commit, tells every process
through the broker's revocation channel, keyed by the session id: access
tokens of the session are refused from then on and its WebSockets closed
with 4001. Access tokens are checked against the session (ended, or its user
gone) by ``Revocations``.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from chat import errors
from chat.auth import tokens
from chat.models import Account, Login, Session
from chat.util import ids
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.context import Context
    from chat.db.pool import Transaction

security_log = logging.getLogger("chat.security")


def _refresh_expiry(ctx: Context, now: datetime.datetime) -> datetime.datetime:
    return now + datetime.timedelta(seconds=ctx.settings.refresh_ttl)


async def start(ctx: Context, *, user: Account, device_id: str | None) -> Login:
    """A new session for ``user`` (whose password was just checked)."""
    session_id = tokens.new_session_id()
    refresh, refresh_hash = tokens.new_refresh_token()
    now = utcnow()
    await ctx.db.execute(
        "insert_session",
        session_id=session_id,
        user_id=user.user_id,
        device_id=device_id,
        refresh_hash=refresh_hash,
        refresh_expires_at=_refresh_expiry(ctx, now),
        created_at=now,
    )
    access, _ = ctx.tokens.issue(user.user_id, session_id, device_id)
    return Login(
        token=access,
        expires_in=ctx.tokens.ttl,
        user=user,
        refresh_token=refresh,
        refresh_expires_in=ctx.settings.refresh_ttl,
        session_id=session_id,
    )


async def refresh(ctx: Context, *, refresh_token: str) -> Login:
    """Exchange a refresh token for new tokens; a reused one ends its session."""
    old_hash = tokens.refresh_hash(refresh_token)
    new_token, new_hash = tokens.new_refresh_token()
    now = utcnow()

    async def rotate(tx: Transaction) -> dict[str, Any] | None:
        row = await tx.fetch_one("lock_session_by_refresh", refresh_hash=old_hash)
        if row is None or row["ended_at"] is not None or row["refresh_expires_at"] <= now:
            return None
        await tx.execute(
            "insert_used_refresh",
            token_hash=old_hash,
            session_id=row["session_id"],
            expires_at=_refresh_expiry(ctx, now),
        )
        await tx.execute(
            "rotate_refresh",
            session_id=row["session_id"],
            refresh_hash=new_hash,
            refresh_expires_at=_refresh_expiry(ctx, now),
            now=now,
        )
        user = await tx.fetch_one("get_user", user_id=row["user_id"])
        return {**row, "user": user}

    rotated = await ctx.db.transaction("refresh_session", rotate)
    if rotated is not None and rotated["user"] is not None:
        user = Account.from_row(rotated["user"])
        access, _ = ctx.tokens.issue(user.user_id, rotated["session_id"], rotated["device_id"])
        return Login(
            token=access,
            expires_in=ctx.tokens.ttl,
            user=user,
            refresh_token=new_token,
            refresh_expires_in=ctx.settings.refresh_ttl,
            session_id=rotated["session_id"],
        )
    if rotated is not None:  # the user is gone
        await end(ctx, session_id=rotated["session_id"])
        raise errors.Unauthorized("This session has ended.")
    used = await ctx.db.fetch_one("get_used_refresh", token_hash=old_hash)
    if used is not None:
        ended = await end(ctx, session_id=used["session_id"])
        if ended:
            security_log.warning(
                "security event: a used refresh token was presented again; session %s ended",
                used["session_id"],
            )
    raise errors.Unauthorized("This refresh token is not valid.")


async def end(ctx: Context, *, session_id: str, user_id: str | None = None) -> bool:
    """End a live session (of ``user_id`` when given); False when there was none."""
    now = utcnow()

    async def finish(tx: Transaction) -> bool:
        if user_id is None:
            rows, _ = await tx.execute("end_session", session_id=session_id, now=now)
        else:
            rows, _ = await tx.execute(
                "end_session_of_user", session_id=session_id, user_id=user_id, now=now
            )
        if rows:
            tx.after_commit(ctx.broker.revoke_token, session_id)
        return bool(rows)

    ended: bool = await ctx.db.transaction("end_session", finish)
    return ended


async def end_others(ctx: Context, tx: Transaction, *, user_id: str, keep: str | None) -> None:
    """In ``tx``: end every live session of ``user_id`` but ``keep``."""
    now = utcnow()
    for row in await tx.fetch_all("lock_live_session_ids_of_user", user_id=user_id):
        if row["session_id"] != keep:
            await tx.execute("end_session", session_id=row["session_id"], now=now)
            tx.after_commit(ctx.broker.revoke_token, row["session_id"])


async def list_sessions(ctx: Context, *, user_id: str, current: str) -> list[Session]:
    rows = await ctx.db.fetch_all("live_sessions_of_user", user_id=user_id, now=utcnow())
    return [
        Session(
            session_id=row["session_id"],
            device_id=row["device_id"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            current=row["session_id"] == current,
        )
        for row in rows
    ]


async def change_password(
    ctx: Context,
    *,
    user_id: str,
    session_id: str,
    current_password: str,
    new_password: str,
    address: str,
) -> None:
    """Set a new password; every other session of the user ends.

    A wrong current password is ``401 invalid_credentials`` and a failed
    login (same limits, counted before bcrypt).
    """
    from chat.actions.users import failure_limits  # the one definition of those limits

    user = await ctx.db.fetch_one("get_user", user_id=user_id)
    if user is None:
        raise errors.Unauthorized()
    failures = failure_limits(ids.fold(user["user_id"]), address)
    await ctx.limits.take(*failures)
    if not await ctx.passwords.verify(current_password, user["password_hash"]):
        raise errors.InvalidCredentials("The current password is wrong.")
    await ctx.limits.refunded(*failures)
    new_hash = await ctx.passwords.hash(new_password)

    async def apply(tx: Transaction) -> None:
        await tx.execute("set_password_hash", user_id=user["user_id"], password_hash=new_hash)
        await end_others(ctx, tx, user_id=user["user_id"], keep=session_id)

    await ctx.db.transaction("change_password", apply)
