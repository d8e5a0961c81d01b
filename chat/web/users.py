"""Accounts: /api/create, /api/login, /api/logout, /api/profile/{userId}."""

from chat.actions import users
from chat.api import views
from chat.web.base import ApiHandler


class CreateUserHandler(ApiHandler):
    auth_required = False

    async def post(self) -> None:
        body = self.json_body("create_user")
        user = await users.register(
            self.ctx,
            user_id=body["userId"],
            password=body["password"],
            device_id=body["deviceId"],
            name=body["name"],
            phone=body["phone"],
            avail_coins=body.get("availCoins", 0),
            is_prime=body.get("isPrime", False),
        )
        self.reply(201, {"user": views.own_profile(user)})


class LoginHandler(ApiHandler):
    auth_required = False

    async def post(self) -> None:
        body = self.json_body("login")
        login = await users.login(
            self.ctx,
            password=body["password"],
            user_id=body.get("userId"),
            phone=body.get("phone"),
            device_id=body.get("deviceId"),
        )
        self.reply(200, views.login(login))


class LogoutHandler(ApiHandler):
    async def post(self) -> None:
        await users.logout(self.ctx, claims=self.claims)
        self.reply(204)


class ProfileHandler(ApiHandler):
    async def get(self, user_id: str) -> None:
        user = await users.get_profile(self.ctx, viewer_id=self.user_id, user_id=user_id)
        self.reply(200, {"user": views.user(user)})
