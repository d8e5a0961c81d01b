"""The whole OpenAPI 3.1 document, built from the routes and the running settings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from chat.api import schemas
from chat.api.openapi.components import (
    RESPONSES,
    SERVER_FRAMES,
    frame_component,
    request_component,
    to_document,
)
from chat.api.openapi.operations import Op, operation
from chat.api.openapi.text import DESCRIPTION, fill, numbers
from settings import Settings

TAGS = ("Users", "Sessions", "Rooms", "Messages", "Friends", "WebSocket", "Operations")

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The token from POST /api/login.",
    },
    "adminKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Admin-Key",
        "description": "The operator's CHAT_ADMIN_KEY.",
    },
}


def build(routes: Iterable[tuple[str, Mapping[str, Op]]], settings: Settings) -> dict[str, Any]:
    """The document of ``routes`` ((OpenAPI path, {method: Op}) each) on such a server."""
    values = numbers(settings)
    paths: dict[str, Any] = {}
    for path, operations in routes:
        if not operations:
            continue
        path_params = re.findall(r"{(\w+)}", path)
        paths[path] = {
            method: operation(op, path_params, values) for method, op in operations.items()
        }
    components = dict(RESPONSES)
    components.update(
        (request_component(name), to_document(schema)) for name, schema in schemas.REQUESTS.items()
    )
    components.update(
        (frame_component(name), to_document(schema)) for name, schema in schemas.FRAMES.items()
    )
    components.update(SERVER_FRAMES)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Chat rooms",
            "version": "1.0.0",
            "description": fill(DESCRIPTION, values),
        },
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }
