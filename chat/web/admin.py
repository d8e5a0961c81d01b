"""The operator API: every route under /api/admin, checked against CHAT_ADMIN_KEY.

``AdminHandler`` is the one place the ``X-Admin-Key`` header is checked: every
operator route derives from it, so a limit on failures or an audit of the
calls added to ``check_admin_key`` covers them all.
"""

import logging

from chat import errors
from chat.actions import admin, users
from chat.api import views
from chat.auth import passwords
from chat.web.base import ApiHandler

security_log = logging.getLogger("chat.security")


class AdminHandler(ApiHandler):
    """An operator route: the ``X-Admin-Key`` header instead of a login token."""

    auth_required = False
    cors = False  # an admin key has no business in a browser

    async def prepare(self) -> None:
        await super().prepare()
        await self.check_admin_key()

    async def check_admin_key(self) -> None:
        """Refuse the request unless it carries the configured admin key.

        Each attempt is counted as a failure of its client address before the
        key is compared, and given back when it matched: a guesser gets
        ``CHAT_LIMIT_ADMIN_KEY_FAILURES`` tries. A wrong key is a security
        event in the log (address and route, never the key sent).
        """
        failure = ("admin_key_failures", self.client_address)
        await self.ctx.limits.take(failure)
        given = self.request.headers.get("X-Admin-Key", "")
        if not passwords.admin_key_matches(given, self.ctx.settings.admin_key):
            security_log.warning(
                "security event: wrong X-Admin-Key from %s on %s %s",
                self.request.remote_ip,
                self.request.method,
                self.request.path,
            )
            raise errors.Forbidden("A valid X-Admin-Key is required.")
        await self.ctx.limits.refunded(failure)


class GrantHandler(AdminHandler):
    """POST /api/admin/users/{userId}/grants: coins and/or prime."""

    async def post(self, user_id: str) -> None:
        body = self.json_body("grant")
        user = await users.grant(
            self.ctx,
            user_id=user_id,
            coins=body.get("coins", 0),
            is_prime=body.get("isPrime"),
            actor=f"admin-key@{self.request.remote_ip}",
        )
        self.reply(200, {"user": views.own_profile(user)})


class UsersHandler(AdminHandler):
    """GET /api/admin/users?q=&after=&limit=: users, listed or searched, paged."""

    async def get(self) -> None:
        args = self.query_args("admin_list_users", integers=("limit",))
        page = await admin.list_users(
            self.ctx,
            query=args.get("q"),
            after=args.get("after", ""),
            limit=args.get("limit", admin.DEFAULT_LIMIT),
        )
        self.reply(200, {"users": [views.own_profile(u) for u in page.items], "next": page.next})


class LedgerHandler(AdminHandler):
    """GET /api/admin/users/{userId}/ledger?after=&limit=: a balance and its ledger rows."""

    async def get(self, user_id: str) -> None:
        args = self.query_args("admin_user_ledger", integers=("after", "limit"))
        ledger = await admin.user_ledger(
            self.ctx,
            user_id=user_id,
            after=args.get("after", 0),
            limit=args.get("limit", admin.DEFAULT_LIMIT),
        )
        following = ledger.entries.next
        self.reply(
            200,
            {
                "user": views.own_profile(ledger.user),
                "entries": [views.ledger_entry(e) for e in ledger.entries.items],
                "next": None if following is None else str(following),
            },
        )


class RoomsHandler(AdminHandler):
    """GET /api/admin/rooms?after=&limit=: every room with its member count, paged."""

    async def get(self) -> None:
        args = self.query_args("admin_list_rooms", integers=("limit",))
        page = await admin.list_rooms(
            self.ctx, after=args.get("after", ""), limit=args.get("limit", admin.DEFAULT_LIMIT)
        )
        self.reply(200, {"rooms": [views.room_summary(r) for r in page.items], "next": page.next})
