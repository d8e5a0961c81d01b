"""JSON Schemas of every request body and WebSocket frame, compiled once.

The same documents feed validation and the OpenAPI document
(``chat/api/openapi.py``). ``minUtf8Bytes`` / ``maxUtf8Bytes`` are this project's
own keywords: bcrypt reads at most 72 bytes, so a password is measured in bytes.
Error messages name the field and the rule, and never repeat the value sent
(it may be a password).
"""

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
from jsonschema import validators

from chat import errors
from chat.api.predicates import compile_schema, python_regex

# The characters of every id: userIds (chosen at registration), roomIds and
# requestIds (given out by the server). No other can match a stored id, and
# the database refuses to compare them with its ASCII id columns, so an id
# with others is refused before it reaches a query: in a path (PATH_ID, in
# chat/app.py's routes) it is no such path, in a body it fails validation.
ID_CHARS = "[A-Za-z0-9_.-]"
PATH_ID = f"({ID_CHARS}+)"

USER_ID = {
    "type": "string",
    "pattern": f"^{ID_CHARS}{{3,64}}$",
    "description": "3-64 characters of A-Z a-z 0-9 _ . -",
}
OPAQUE_ID = {
    "type": "string",
    "pattern": f"^{ID_CHARS}{{1,64}}$",
    "description": "an id as the server gave it out: 1-64 characters of A-Z a-z 0-9 _ . -",
}
# No control characters (C0 and DEL) in anything that names or identifies:
# a newline or an escape sequence in a name or a device id only ever deceives.
NO_CONTROLS = "[^\\u0000-\\u001f\\u007f]"
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": f"^(?=.*\\S){NO_CONTROLS}+$",
    "description": "1-64 characters, not only spaces, no control characters",
}
DEVICE_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": f"^{NO_CONTROLS}+$",
    "description": "1-128 characters, no control characters",
}
PASSWORD = {"type": "string", "minUtf8Bytes": 8, "maxUtf8Bytes": 72}
ROOM_PASSWORD = {"type": "string", "minUtf8Bytes": 4, "maxUtf8Bytes": 72}
PHONE = {"type": "string", "pattern": "^\\+[0-9]{7,15}$", "description": "'+' and 7-15 digits"}
COINS = {"type": "integer", "minimum": 0, "maximum": 1000000000}
SEQ = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
CONTENT = {"type": "string", "minLength": 1, "maxLength": 4000}
CLIENT_MSG_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": f"^{NO_CONTROLS}+$",
    "description": "1-64 characters, no control characters",
}
PAGE_LIMIT = {"type": "integer", "minimum": 1, "maximum": 200, "description": "default 50"}


def _object(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


REQUESTS = {
    "create_user": _object(
        ["userId", "deviceId", "name", "phone", "password"],
        {
            "userId": USER_ID,
            "deviceId": DEVICE_ID,
            "name": NAME,
            "phone": PHONE,
            "password": PASSWORD,
            "availCoins": COINS,
            "isPrime": {"type": "boolean"},
        },
    ),
    "login": _object(
        ["password"],
        {
            "userId": USER_ID,
            "phone": PHONE,
            "password": {"type": "string", "maxLength": 1024},
            "deviceId": DEVICE_ID,
        },
        oneOf=[{"required": ["userId"]}, {"required": ["phone"]}],
    ),
    "grant": _object(
        [],
        {
            "coins": {"type": "integer", "minimum": 1, "maximum": 1000000000},
            "isPrime": {"type": "boolean"},
        },
        minProperties=1,
    ),
    "create_room": _object(["name", "password"], {"name": NAME, "password": ROOM_PASSWORD}),
    "invite": _object(["roomId", "userId"], {"roomId": OPAQUE_ID, "userId": USER_ID}),
    "join_room": _object(
        [],
        {
            "roomId": OPAQUE_ID,
            "password": {"type": "string", "maxLength": 1024},
            "inviteToken": {"type": "string", "minLength": 1, "maxLength": 256},
        },
        oneOf=[{"required": ["roomId", "password"]}, {"required": ["inviteToken"]}],
    ),
    "send_message": _object(
        ["roomId", "content"],
        {"roomId": OPAQUE_ID, "content": CONTENT, "clientMsgId": CLIENT_MSG_ID},
    ),
    "friend_request": _object(["userId"], {"userId": USER_ID}),
    "refresh_token": _object(
        ["refreshToken"], {"refreshToken": {"type": "string", "minLength": 1, "maxLength": 256}}
    ),
    "change_password": _object(
        ["currentPassword", "newPassword"],
        {"currentPassword": {"type": "string", "maxLength": 1024}, "newPassword": PASSWORD},
    ),
}

QUERIES = {
    "list_messages": _object(
        ["roomId"],
        {
            "roomId": OPAQUE_ID,
            "after": SEQ,
            "before": SEQ,
            "limit": {"type": "integer", "minimum": 1, "maximum": 200},
        },
    ),
    "list_friend_requests": _object(
        [],
        {
            "direction": {"enum": ["incoming", "outgoing"]},
            "status": {"enum": ["pending", "accepted", "declined"]},
        },
    ),
    "admin_list_users": _object(
        [],
        {
            "q": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "a userId or phone prefix, or part of a name (case ignored)",
            },
            "after": {**USER_ID, "description": "the next value of the previous page"},
            "limit": PAGE_LIMIT,
        },
    ),
    "admin_user_ledger": _object(
        [],
        {
            "after": {
                "type": "integer",
                "minimum": 0,
                "description": "the next value of the previous page",
            },
            "limit": PAGE_LIMIT,
        },
    ),
    "admin_list_rooms": _object(
        [],
        {
            "after": {**OPAQUE_ID, "description": "the next value of the previous page"},
            "limit": PAGE_LIMIT,
        },
    ),
}

_REF = {"type": "string", "maxLength": 64}

FRAMES = {
    "auth": _object(
        ["type", "token"],
        {"type": {"const": "auth"}, "token": {"type": "string", "maxLength": 4096}, "ref": _REF},
    ),
    "subscribe": _object(
        ["type", "roomId"],
        {"type": {"const": "subscribe"}, "roomId": OPAQUE_ID, "after": SEQ, "ref": _REF},
    ),
    "unsubscribe": _object(
        ["type", "roomId"], {"type": {"const": "unsubscribe"}, "roomId": OPAQUE_ID, "ref": _REF}
    ),
    "message": _object(
        ["type", "roomId", "content"],
        {
            "type": {"const": "message"},
            "roomId": OPAQUE_ID,
            "content": CONTENT,
            "clientMsgId": CLIENT_MSG_ID,
            "ref": _REF,
        },
    ),
    "typing": _object(
        ["type", "roomId"], {"type": {"const": "typing"}, "roomId": OPAQUE_ID, "ref": _REF}
    ),
    "ping": _object(["type"], {"type": {"const": "ping"}, "ref": _REF}),
}


def _utf8_bytes(
    limit_ok: Callable[[int, int], bool], word: str
) -> Callable[..., Iterator[jsonschema.ValidationError]]:
    def check(
        validator: Any, limit: int, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if isinstance(instance, str) and not limit_ok(len(instance.encode("utf-8")), limit):
            yield jsonschema.ValidationError(f"must be {word} {limit} bytes in UTF-8")

    return check


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    """``pattern`` as JSON Schema means it: ``$`` is the end of the text (see python_regex)."""
    if isinstance(instance, str) and not python_regex(pattern).search(instance):
        yield jsonschema.ValidationError("does not match its pattern")


Validator = validators.extend(
    jsonschema.Draft202012Validator,
    {
        "pattern": _pattern,
        "minUtf8Bytes": _utf8_bytes(lambda n, limit: n >= limit, "at least"),
        "maxUtf8Bytes": _utf8_bytes(lambda n, limit: n <= limit, "at most"),
    },
)

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "object": "an object",
    "number": "a number",
    "array": "a list",
}


def _message(error: Any) -> str:
    """A message for one error that never repeats the value it judged."""
    v, arg = error.validator, error.validator_value
    if v == "type":
        return f"must be {_TYPE_WORDS.get(arg, arg)}"
    if v == "minLength":
        return "must not be empty" if arg == 1 else f"must be at least {arg} characters"
    if v == "maxLength":
        return f"must be at most {arg} characters"
    if v == "pattern":
        return "must be " + error.schema.get("description", "in the expected format")
    if v == "minimum":
        return f"must be at least {arg}"
    if v == "maximum":
        return f"must be at most {arg}"
    if v in ("enum", "const"):
        options = arg if v == "enum" else [arg]
        return "must be one of: " + ", ".join(map(str, options))
    if v in ("minUtf8Bytes", "maxUtf8Bytes"):
        return error.message
    return "is not valid"


def _field(error: Any) -> str:
    return ".".join(str(part) for part in error.absolute_path)


def _errors(error: Any) -> list[dict[str, str]]:
    """Flatten one jsonschema error into the contract's {"field", "message"} items."""
    v = error.validator
    if v == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        return [
            {"field": name, "message": "is required"}
            for name in error.validator_value
            if name not in present
        ]
    if v == "additionalProperties":
        allowed = error.schema.get("properties", {})
        return [
            {"field": name, "message": "is not allowed here"}
            for name in error.instance
            if name not in allowed
        ]
    if v == "oneOf":
        choices = [" and ".join(alt["required"]) for alt in error.validator_value]
        return [{"field": "", "message": "give exactly one of: " + "; or ".join(choices)}]
    if v == "minProperties":
        return [
            {
                "field": "",
                "message": "give at least one of: " + ", ".join(error.schema.get("properties", {})),
            }
        ]
    return [{"field": _field(error), "message": _message(error)}]


class CompiledSchema:
    def __init__(self, schema: dict[str, Any]) -> None:
        Validator.check_schema(schema)
        self.schema = schema
        self._validator = Validator(schema)
        self._valid = compile_schema(schema)

    def validate(self, instance: Any) -> Any:
        """Return ``instance`` or raise ValidationFailed listing every problem."""
        if self._valid(instance):
            return instance
        found = sorted(self._validator.iter_errors(instance), key=lambda e: list(e.path))
        if not found:
            return instance
        problems: list[dict[str, str]] = []
        for error in found:
            for item in _errors(error):
                if item not in problems:
                    problems.append(item)
        raise errors.ValidationFailed(problems)


REQUEST = {name: CompiledSchema(schema) for name, schema in REQUESTS.items()}
QUERY = {name: CompiledSchema(schema) for name, schema in QUERIES.items()}
FRAME = {name: CompiledSchema(schema) for name, schema in FRAMES.items()}
