"""Friends: /api/friend-requests (send, list, accept, decline, withdraw) and /api/friends."""

from chat.actions import friends
from chat.web.base import ApiHandler


class FriendRequestsHandler(ApiHandler):
    async def get(self):
        args = self.query_args("list_friend_requests")
        self.reply(
            200, {"friendRequests": await friends.list_requests(self.ctx, self.user_id, args)}
        )

    async def post(self):
        request, created = await friends.send_request(
            self.ctx, self.user_id, self.json_body("friend_request")
        )
        self.reply(201 if created else 200, {"friendRequest": request})


class FriendRequestHandler(ApiHandler):
    async def delete(self, request_id):
        await friends.withdraw(self.ctx, self.user_id, request_id)
        self.reply(204)


class FriendRequestAnswerHandler(ApiHandler):
    """POST .../accept or .../decline; the route captures which."""

    async def post(self, request_id, answer):
        request = await friends.respond(
            self.ctx, self.user_id, request_id, accept=answer == "accept"
        )
        self.reply(200, {"friendRequest": request})


class FriendsHandler(ApiHandler):
    async def get(self):
        self.reply(200, {"friends": await friends.list_friends(self.ctx, self.user_id)})
