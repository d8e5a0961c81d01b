"""Friends: /api/friend-requests (send, list, accept, decline, withdraw) and /api/friends."""

from chat.actions import friends
from chat.api import views
from chat.web.base import ApiHandler


class FriendRequestsHandler(ApiHandler):
    async def get(self) -> None:
        args = self.query_args("list_friend_requests")
        found = await friends.list_requests(
            self.ctx,
            user_id=self.user_id,
            direction=args.get("direction"),
            status=args.get("status"),
        )
        self.reply(200, {"friendRequests": [views.friend_request(r) for r in found]})

    async def post(self) -> None:
        body = self.json_body("friend_request")
        request, created = await friends.send_request(
            self.ctx, sender_id=self.user_id, receiver_id=body["userId"]
        )
        self.reply(201 if created else 200, {"friendRequest": views.friend_request(request)})


class FriendRequestHandler(ApiHandler):
    async def delete(self, request_id: str) -> None:
        await friends.withdraw(self.ctx, user_id=self.user_id, request_id=request_id)
        self.reply(204)


class FriendRequestAnswerHandler(ApiHandler):
    """POST .../accept or .../decline: one subclass for each, saying which."""

    accept: bool

    async def post(self, request_id: str) -> None:
        request = await friends.respond(
            self.ctx, user_id=self.user_id, request_id=request_id, accept=self.accept
        )
        self.reply(200, {"friendRequest": views.friend_request(request)})


class FriendRequestAcceptHandler(FriendRequestAnswerHandler):
    accept = True


class FriendRequestDeclineHandler(FriendRequestAnswerHandler):
    accept = False


class FriendsHandler(ApiHandler):
    async def get(self) -> None:
        found = await friends.list_friends(self.ctx, user_id=self.user_id)
        self.reply(200, {"friends": [views.profile(user) for user in found]})
