"""Rooms: /api/chatrooms, /api/invite, /api/joinroom, leaving."""

from chat.actions import rooms
from chat.web.base import ApiHandler


class RoomsHandler(ApiHandler):
    async def get(self):
        self.reply(200, {"rooms": await rooms.list_rooms(self.ctx, self.user_id)})

    async def post(self):
        room = await rooms.create_room(self.ctx, self.user_id, self.json_body("create_room"))
        self.reply(201, {"room": room})


class RoomHandler(ApiHandler):
    async def get(self, room_id):
        self.reply(200, {"room": await rooms.get_room(self.ctx, self.user_id, room_id)})


class LeaveHandler(ApiHandler):
    async def post(self, room_id):
        await rooms.leave_room(self.ctx, self.user_id, room_id)
        self.reply(204)


class InviteHandler(ApiHandler):
    async def post(self):
        invitation = await rooms.invite(self.ctx, self.user_id, self.json_body("invite"))
        self.reply(201, {"invitation": invitation})


class JoinHandler(ApiHandler):
    async def post(self):
        self.reply(200, await rooms.join_room(self.ctx, self.user_id, self.json_body("join_room")))
