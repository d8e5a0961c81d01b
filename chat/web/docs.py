"""GET /api/openapi.json: the API's OpenAPI 3.1 document."""

from chat.api import openapi
from chat.web.base import ApiHandler


class OpenApiHandler(ApiHandler):
    auth_required = False

    async def get(self):
        self.reply(200, openapi.document())
