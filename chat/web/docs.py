"""GET /api/openapi.json: the API's OpenAPI 3.1 document, with this server's numbers."""

from chat.api import openapi
from chat.web.base import ApiHandler


class OpenApiHandler(ApiHandler):
    auth_required = False

    async def get(self) -> None:
        self.reply(200, openapi.document(self.ctx.settings))
