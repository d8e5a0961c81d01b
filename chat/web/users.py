"""Accounts: /api/create, /api/login, /api/logout, /api/profile/{userId}."""

from chat.actions import users
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
