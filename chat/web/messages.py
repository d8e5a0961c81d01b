"""Messages over HTTP: POST /api/messages and GET /api/messages (history)."""

from chat.actions import messages
from chat.api import views
from chat.web.base import ApiHandler


class MessagesHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body("send_message")
        created, message = await messages.send_message(
            self.ctx,
            user_id=self.user_id,
            room_id=body["roomId"],
            content=body["content"],
            client_msg_id=body.get("clientMsgId"),
        )
        self.reply(201 if created else 200, {"message": views.message(message)})

    async def get(self) -> None:
        args = self.query_args("list_messages", integers=("after", "before", "limit"))
        page = await messages.list_messages(
            self.ctx,
            user_id=self.user_id,
            room_id=args["roomId"],
            after=args.get("after"),
            before=args.get("before"),
            limit=args.get("limit", messages.DEFAULT_LIMIT),
        )
        self.reply(
            200,
            {"messages": [views.message(m) for m in page.messages], "hasMore": page.has_more},
        )
