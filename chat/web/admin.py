"""The operator API: every route under /api/admin, checked against CHAT_ADMIN_KEY.

``AdminHandler`` is the one place the ``X-Admin-Key`` header is checked: every
operator route derives from it, so a limit on failures or an audit of the
calls added to ``check_admin_key`` covers them all.
"""

from chat import errors
from chat.actions import users
from chat.auth import passwords
from chat.web.base import ApiHandler


class AdminHandler(ApiHandler):
    """An operator route: the ``X-Admin-Key`` header instead of a login token."""

    auth_required = False

    async def prepare(self) -> None:
        await super().prepare()
        await self.check_admin_key()

    async def check_admin_key(self) -> None:
        """Refuse the request unless it carries the configured admin key."""
        given = self.request.headers.get("X-Admin-Key", "")
        if not passwords.admin_key_matches(given, self.ctx.settings.admin_key):
            raise errors.Forbidden("A valid X-Admin-Key is required.")


class GrantHandler(AdminHandler):
    """POST /api/admin/users/{userId}/grants: coins and/or prime."""

    async def post(self, user_id: str) -> None:
        user = await users.grant(self.ctx, user_id, self.json_body("grant"))
        self.reply(200, {"user": user})
