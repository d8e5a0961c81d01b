"""One operation of the document: the ``Op`` a route declares, and how it is shown.

A route of ``chat/routes.py`` gives each of its methods an ``Op``: who may
call it, what it takes, what it answers and which errors it can give. The
errors every operation of a kind shares (bad JSON, bad token, ...) are added
here, each error's status comes from its class in ``chat/errors.py``, and
texts may name settings as ``${name}`` (see ``text.numbers``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chat import errors as error_classes
from chat.api import schemas
from chat.api.openapi.components import (
    JSON,
    PATH_ID_SCHEMA,
    PATH_PARAMETERS,
    SERVER_FRAMES,
    Schema,
    frame_component,
    ref,
    request_component,
    to_document,
)
from chat.api.openapi.text import fill

# (code, when): an error an operation can give, and in which case.
Error = tuple[str, str]

ROOM_NOT_FOUND: Error = ("not_found", "no such room")
NOT_MEMBER: Error = ("not_room_member", "you are not a member of the room")
ADMIN_KEY_REFUSED: Error = (
    "forbidden",
    "X-Admin-Key missing or wrong, or no CHAT_ADMIN_KEY is configured",
)
NEXT_PAGE: Schema = {
    "type": ["string", "null"],
    "description": "pass as `after` for the next page; null on the last page",
}

SECURITY: dict[str | None, list[dict[str, list[str]]]] = {
    "bearer": [{"bearerAuth": []}],
    "admin": [{"adminKey": []}],
    # The token may also come in the first frame, after the handshake.
    "bearer_or_frame": [{"bearerAuth": []}, {}],
    None: [],
}


class Op:
    """One operation: who may call it, what it takes, and what it answers.

    ``replies`` maps a status to (description, body schema or None); ``errors``
    lists (code, when) pairs. ``auth`` is a key of ``SECURITY``; ``request``
    names a schema of ``schemas.REQUESTS``, ``query`` one of ``schemas.QUERIES``.
    """

    def __init__(
        self,
        operation_id: str,
        summary: str,
        tag: str,
        auth: str | None = "bearer",
        request: str | None = None,
        query: str | None = None,
        replies: dict[int, tuple[str, Schema | None]] | None = None,
        errors: Iterable[Error] = (),
        description: str | None = None,
    ) -> None:
        self.operation_id = operation_id
        self.summary = summary
        self.tag = tag
        self.auth = auth
        self.request = request
        self.query = query
        self.replies = replies or {}
        self.errors = list(errors)
        self.description = description


def error_response(found: list[Error]) -> dict[str, Any]:
    codes = list(dict.fromkeys(code for code, _ in found))
    response: dict[str, Any] = {
        "description": "; ".join(f"`{code}`: {when}" for code, when in found),
        "content": {
            JSON: {
                "schema": {
                    "allOf": [
                        ref("Error"),
                        {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
                    ]
                }
            }
        },
    }
    if "rate_limited" in codes:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds until a login may be tried again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    if "unavailable" in codes or "overloaded" in codes:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds after which trying again is reasonable.",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def operation(op: Op, path_params: list[str], values: dict[str, str]) -> dict[str, Any]:
    """``op`` as the document shows it; ``values`` fill the ``${name}`` in its texts."""
    found: list[Error] = []
    if op.request:
        found += [
            ("invalid_json", "the body is not a JSON object"),
            ("validation_failed", "the body breaks the request schema"),
            ("payload_too_large", "the body is over ${max_body}"),
        ]
    if op.query:
        found.append(("validation_failed", "a query parameter breaks the rules"))
    if op.auth == "bearer":
        found.append(("unauthorized", "no valid bearer token"))
    found += op.errors
    found.append(("internal", "a fault on the server; nothing about it is in the body"))
    if 503 not in op.replies and op.operation_id != "openapi":
        found += [
            ("unavailable", "the database does not answer; try again after Retry-After"),
            (
                "overloaded",
                "the server is busier than it can serve in time; try again after Retry-After",
            ),
        ]

    statuses = error_classes.statuses()
    by_status: dict[int, list[Error]] = {}
    for code, when in found:
        by_status.setdefault(statuses[code], []).append((code, fill(when, values)))

    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(op.replies.items()):
        responses[str(status)] = {"description": fill(description, values)}
        if schema is not None:
            responses[str(status)]["content"] = {JSON: {"schema": schema}}
    for status, errors in sorted(by_status.items()):
        responses[str(status)] = error_response(errors)

    shown: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": fill(op.summary, values),
        "tags": [op.tag],
        "security": SECURITY[op.auth],
        "responses": responses,
    }
    if op.description:
        shown["description"] = fill(op.description, values)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name],
            "schema": PATH_ID_SCHEMA,
        }
        for name in path_params
    ]
    if op.query:
        query = schemas.QUERIES[op.query]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": name in query["required"],
                "schema": to_document(schema),
            }
            for name, schema in query["properties"].items()
        ]
    if parameters:
        shown["parameters"] = parameters
    if op.request:
        shown["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": ref(request_component(op.request))}},
        }
    if op.operation_id == "websocket":
        shown["x-websocket"] = {
            "clientFrames": [ref(frame_component(name)) for name in schemas.FRAMES],
            "serverFrames": [ref(name) for name in SERVER_FRAMES],
        }
    return shown
