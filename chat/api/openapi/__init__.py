"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``.

Derived, not kept beside the code: its paths and operations come from the
route list (``chat/routes.py``, where each route declares its ``Op``s), its
request, query and frame schemas from ``chat/api/schemas.py``, its error
statuses from the error classes (``chat/errors.py``), and the numbers in its
prose from the settings the server runs with.

- ``components``: JSON Schema helpers, response and server-frame schemas;
- ``operations``: ``Op`` and how one operation is shown;
- ``text``: the prose, and the numbers it takes from the settings;
- ``document``: the whole document.
"""

from __future__ import annotations

import functools
from typing import Any

from chat.api.openapi.components import (
    EXTENSIONS,
    frame_component,
    request_component,
    to_document,
)
from chat.api.openapi.document import build
from chat.api.openapi.operations import Op
from settings import Settings

__all__ = [
    "EXTENSIONS",
    "Op",
    "build",
    "document",
    "frame_component",
    "request_component",
    "to_document",
]


@functools.cache
def document(settings: Settings | None = None) -> dict[str, Any]:
    """The document of every route of ``chat/routes.py`` on a server with ``settings``.

    Without settings, on a server with the defaults. Built once per settings.
    """
    from chat import routes  # the routes import the handlers, which serve this document

    return build(routes.documented(), settings or Settings())
