"""Accounts: /api/create, /api/login, /api/logout, /api/profile/{userId}, operator grants."""

from chat import errors
from chat.actions import users
from chat.auth import passwords
from chat.web.base import ApiHandler


class CreateUserHandler(ApiHandler):
    auth_required = False

    async def post(self):
        user = await users.register(self.ctx, self.json_body("create_user"))
        self.reply(201, {"user": user})


class LoginHandler(ApiHandler):
    auth_required = False

    async def post(self):
        self.reply(200, await users.login(self.ctx, self.json_body("login")))


class LogoutHandler(ApiHandler):
    async def post(self):
        await users.logout(self.ctx, self.claims)
        self.reply(204)


class ProfileHandler(ApiHandler):
    async def get(self, user_id):
        self.reply(200, {"user": await users.get_profile(self.ctx, self.user_id, user_id)})


class GrantHandler(ApiHandler):
    """Operator-only: checked against CHAT_ADMIN_KEY instead of a login token."""

    auth_required = False

    async def post(self, user_id):
        given = self.request.headers.get("X-Admin-Key", "")
        if not passwords.admin_key_matches(given, self.ctx.settings.admin_key):
            raise errors.Forbidden("A valid X-Admin-Key is required.")
        user = await users.grant(self.ctx, user_id, self.json_body("grant"))
        self.reply(200, {"user": user})
