"""Messages over HTTP: POST /api/messages and GET /api/messages (history)."""

from chat.actions import messages
from chat.web.base import ApiHandler


class MessagesHandler(ApiHandler):
    async def post(self):
        created, message = await messages.send_message(
            self.ctx, self.user_id, self.json_body("send_message")
        )
        self.reply(201 if created else 200, {"message": message})

    async def get(self):
        args = self.query_args("list_messages", integers=("after", "before", "limit"))
        self.reply(200, await messages.list_messages(self.ctx, self.user_id, args))
