"""The document's building blocks: JSON Schema helpers and the response and frame schemas.

Request bodies, query strings and client frames are not here: they come
straight from ``chat/api/schemas.py``, so the document states exactly what
validation enforces.
"""

from typing import Any

from chat import errors
from chat.actions.rooms import CAPACITY
from chat.api import schemas

Schema = dict[str, Any]

JSON = "application/json"

# The project's own JSON Schema keywords, spelled as OpenAPI extensions.
EXTENSIONS = {"minUtf8Bytes": "x-minUtf8Bytes", "maxUtf8Bytes": "x-maxUtf8Bytes"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: Schema,
    required: list[str] | None = None,
    closed: bool = False,
    description: str | None = None,
) -> Schema:
    schema: Schema = {
        "type": "object",
        "required": list(properties if required is None else required),
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def body(**fields: Schema) -> Schema:
    """A response body: an object with exactly these fields, all present."""
    return obj(fields)


def to_document(schema: Any) -> Any:
    """A validation schema as the document shows it: own keywords as ``x-`` extensions."""
    if isinstance(schema, list):
        return [to_document(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {}
    for key, value in schema.items():
        if key == "properties":
            converted[key] = {name: to_document(sub) for name, sub in value.items()}
        else:
            converted[EXTENSIONS.get(key, key)] = to_document(value)
    return converted


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def request_component(name: str) -> str:
    """The component name under which ``schemas.REQUESTS[name]`` appears."""
    return _camel(name) + "Request"


def frame_component(name: str) -> str:
    """The component name under which ``schemas.FRAMES[name]`` appears."""
    return _camel(name) + "Frame"


STRING = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
BOOLEAN = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}

PROFILE = {"userId": STRING, "name": STRING, "isPrime": BOOLEAN, "createdAt": TIME}

RESPONSES = {
    "Profile": obj(PROFILE, closed=True, description="Another user as anyone signed in sees them."),
    "OwnProfile": obj(
        {
            **PROFILE,
            "phone": STRING,
            "deviceId": STRING,
            "availCoins": COUNT,
            "freeJoinUsed": BOOLEAN,
        },
        closed=True,
        description="Your own account. freeJoinUsed: whether a non-prime member's one "
        "free room join has been taken.",
    ),
    "Session": obj(
        {
            "sessionId": STRING,
            "deviceId": {"type": ["string", "null"]},
            "createdAt": TIME,
            "lastUsedAt": TIME,
            "current": BOOLEAN,
        },
        closed=True,
        description="One login on one device. current: the session of the token in use.",
    ),
    "Room": obj(
        {
            "roomId": STRING,
            "name": STRING,
            "ownerId": STRING,
            "capacity": {"type": "integer", "const": CAPACITY},
            "memberCount": COUNT,
            "members": {
                "type": "array",
                "items": STRING,
                "maxItems": CAPACITY,
                "description": "userIds of the members, the owner included",
            },
            "createdAt": TIME,
        },
        description=f"A room of at most {CAPACITY} members, its owner included. "
        "Never its password.",
    ),
    "Invitation": obj(
        {
            "token": {"type": "string", "description": "single-use; shown only in this response"},
            "roomId": STRING,
            "inviteeId": STRING,
            "expiresAt": TIME,
        }
    ),
    "Message": obj(
        {
            "messageId": STRING,
            "roomId": STRING,
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "1, 2, 3, ... per room, without gaps or repeats",
            },
            "senderId": STRING,
            "content": STRING,
            "clientMsgId": {"type": ["string", "null"]},
            "createdAt": TIME,
        }
    ),
    "FriendRequest": obj(
        {
            "requestId": STRING,
            "fromUserId": STRING,
            "toUserId": STRING,
            "status": {"enum": ["pending", "accepted", "declined"]},
            "createdAt": TIME,
            "respondedAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "when it was accepted or declined",
            },
        }
    ),
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string", "enum": sorted(errors.statuses())},
                    "message": STRING,
                    "details": {
                        "type": "object",
                        "description": "validation_failed: errors [{field, message}]; "
                        "insufficient_coins: required, available; "
                        "rate_limited: retryAfter; "
                        "request_not_pending: status",
                    },
                },
                required=["code", "message"],
                closed=True,
            )
        },
        closed=True,
    ),
    "LedgerEntry": obj(
        {
            "entryId": STRING,
            "delta": {"type": "integer", "description": "coins added (negative: taken)"},
            "balanceAfter": COUNT,
            "reason": {"enum": ["signup_grant", "join_charge", "operator_grant"]},
            "roomId": {"type": ["string", "null"], "description": "the room a join paid for"},
            "createdAt": TIME,
        },
        closed=True,
        description="One change of a balance; per user the deltas add up to availCoins.",
    ),
    "RoomSummary": obj(
        {
            "roomId": STRING,
            "name": STRING,
            "ownerId": STRING,
            "capacity": {"type": "integer", "minimum": 1, "maximum": CAPACITY},
            "memberCount": COUNT,
            "lastSeq": {"type": "integer", "minimum": 0, "description": "the latest message's seq"},
            "createdAt": TIME,
        },
        closed=True,
        description="A room as the operator lists it: no members, no password.",
    ),
    "Health": obj(
        {
            "status": {"enum": ["ok", "unavailable"]},
            "checks": obj(
                {
                    "database": {"enum": ["ok", "down"]},
                    "broker": {"enum": ["ok", "down", "not_configured"]},
                }
            ),
            "version": {"type": "string", "description": "the server's release"},
            "schemaVersion": {
                "type": ["integer", "null"],
                "description": "the latest schema file applied; null while the database "
                "does not answer",
            },
        },
        description="status follows the database alone: while the broker (Redis) is down "
        "the server still stores and answers. broker is not_configured when there is no "
        "Redis (CHAT_REDIS_URL empty: one process).",
    ),
}

# What POST /api/login and POST /api/token/refresh answer.
LOGIN_BODY = body(
    token={"type": "string", "description": "the access token (Bearer)"},
    tokenType={"const": "Bearer"},
    expiresIn={"type": "integer", "description": "seconds the access token lives"},
    refreshToken={"type": "string", "description": "opaque; works once"},
    refreshExpiresIn={"type": "integer", "description": "seconds the refresh token lives"},
    sessionId=STRING,
    user=ref("OwnProfile"),
)

SERVER_FRAMES = {
    "ReadyFrame": obj({"type": {"const": "ready"}, "userId": STRING}),
    "SubscribedFrame": obj(
        {"type": {"const": "subscribed"}, "roomId": STRING, "lastSeq": COUNT, "ref": STRING},
        required=["type", "roomId", "lastSeq"],
    ),
    "UnsubscribedFrame": obj(
        {"type": {"const": "unsubscribed"}, "roomId": STRING, "ref": STRING},
        required=["type", "roomId"],
    ),
    "AckFrame": obj(
        {"type": {"const": "ack"}, "message": ref("Message"), "ref": STRING},
        required=["type", "message"],
    ),
    "MessageEventFrame": obj({"type": {"const": "message"}, "message": ref("Message")}),
    "MemberEventFrame": obj(
        {"type": {"enum": ["member_joined", "member_left"]}, "roomId": STRING, "userId": STRING}
    ),
    "TypingEventFrame": obj({"type": {"const": "typing"}, "roomId": STRING, "userId": STRING}),
    "PongFrame": obj({"type": {"const": "pong"}, "ref": STRING}, required=["type"]),
    "ErrorFrame": obj(
        {
            "type": {"const": "error"},
            "code": STRING,
            "message": STRING,
            "details": {"type": "object"},
            "ref": {"type": ["string", "null"]},
        },
        required=["type", "code", "message"],
    ),
}

# What the route patterns of chat/app.py accept as an id; anything else is a 404.
PATH_ID_SCHEMA = {"type": "string", "pattern": f"^{schemas.ID_CHARS}+$"}
PATH_PARAMETERS = {
    "sessionId": "A sessionId from POST /api/login or GET /api/sessions.",
    "userId": "A userId (case does not matter).",
    "roomId": "A roomId.",
    "requestId": "A friend request's requestId.",
}
