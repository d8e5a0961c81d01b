"""Accounts: /api/create, /api/login, /api/logout, /api/profile/{userId}."""

from chat import errors
from chat.actions import sessions, users
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
            address=self.client_address,
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
            address=self.client_address,
        )
        self.reply(200, views.login(login))


class LogoutHandler(ApiHandler):
    async def post(self) -> None:
        assert self.claims is not None  # auth_required
        await users.logout(self.ctx, claims=self.claims)
        self.reply(204)


class ProfileHandler(ApiHandler):
    async def get(self, user_id: str) -> None:
        user = await users.get_profile(self.ctx, viewer_id=self.user_id, user_id=user_id)
        self.reply(200, {"user": views.user(user)})


class RefreshHandler(ApiHandler):
    """POST /api/token/refresh: a new access token and a new refresh token."""

    auth_required = False

    async def post(self) -> None:
        body = self.json_body("refresh_token")
        login = await sessions.refresh(self.ctx, refresh_token=body["refreshToken"])
        self.reply(200, views.login(login))


class SessionsHandler(ApiHandler):
    """GET /api/sessions: the caller's live sessions."""

    async def get(self) -> None:
        found = await sessions.list_sessions(
            self.ctx, user_id=self.user_id, current=self.session_id
        )
        self.reply(200, {"sessions": [views.session(s) for s in found]})


class SessionHandler(ApiHandler):
    """DELETE /api/sessions/{sessionId}: end one of the caller's sessions."""

    async def delete(self, session_id: str) -> None:
        if not await sessions.end(self.ctx, session_id=session_id, user_id=self.user_id):
            raise errors.NotFound("No such session.")
        self.reply(204)


class PasswordHandler(ApiHandler):
    """POST /api/password: a new password; every other session ends."""

    async def post(self) -> None:
        body = self.json_body("change_password")
        await sessions.change_password(
            self.ctx,
            user_id=self.user_id,
            session_id=self.session_id,
            current_password=body["currentPassword"],
            new_password=body["newPassword"],
            address=self.client_address,
        )
        self.reply(204)
