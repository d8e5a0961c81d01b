"""Rooms: /api/chatrooms, /api/invite, /api/joinroom, leaving."""

from chat.actions import rooms
from chat.api import views
from chat.web.base import ApiHandler


class RoomsHandler(ApiHandler):
    async def get(self) -> None:
        found = await rooms.list_rooms(self.ctx, user_id=self.user_id)
        self.reply(200, {"rooms": [views.room(room) for room in found]})

    async def post(self) -> None:
        body = self.json_body("create_room")
        room = await rooms.create_room(
            self.ctx, owner_id=self.user_id, name=body["name"], password=body["password"]
        )
        self.reply(201, {"room": views.room(room)})


class RoomHandler(ApiHandler):
    async def get(self, room_id: str) -> None:
        room = await rooms.get_room(self.ctx, user_id=self.user_id, room_id=room_id)
        self.reply(200, {"room": views.room(room)})


class LeaveHandler(ApiHandler):
    async def post(self, room_id: str) -> None:
        await rooms.leave_room(self.ctx, user_id=self.user_id, room_id=room_id)
        self.reply(204)


class InviteHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body("invite")
        invitation = await rooms.invite(
            self.ctx, inviter_id=self.user_id, room_id=body["roomId"], invitee_id=body["userId"]
        )
        self.reply(201, {"invitation": views.invitation(invitation)})


class JoinHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body("join_room")
        joined = await rooms.join_room(
            self.ctx,
            user_id=self.user_id,
            room_id=body.get("roomId"),
            password=body.get("password"),
            invite_token=body.get("inviteToken"),
        )
        self.reply(200, views.joined(joined))
