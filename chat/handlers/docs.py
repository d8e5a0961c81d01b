"""GET /api/openapi.json: the API's OpenAPI 3.1 document."""

from .. import openapi
from .base import ApiHandler


class OpenApiHandler(ApiHandler):
    auth_required = False

    async def get(self):
        self.reply(200, openapi.document())
