"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``.

Request bodies, query strings and WebSocket frames come straight from
``chat/api/schemas.py``, so the document states exactly what validation enforces.
Everything else is described here, one entry per route of ``chat/app.py``,
keyed by the route's Tornado pattern and holding the OpenAPI path (or paths,
when the pattern has alternatives) it serves; ``tests/test_openapi.py`` checks
that the two tables name the same routes and methods.
"""

import functools
import re

from chat.api import schemas

JSON = "application/json"

# The project's own JSON Schema keywords, spelled as OpenAPI extensions.
EXTENSIONS = {"minUtf8Bytes": "x-minUtf8Bytes", "maxUtf8Bytes": "x-maxUtf8Bytes"}

# Every error code of the API and its HTTP status.
ERROR_STATUS = {
    "invalid_json": 400,
    "validation_failed": 400,
    "bad_request": 400,
    "unauthorized": 401,
    "invalid_credentials": 401,
    "insufficient_coins": 402,
    "forbidden": 403,
    "not_prime": 403,
    "wrong_room_password": 403,
    "not_room_member": 403,
    "not_participant": 403,
    "invite_invalid": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "user_exists": 409,
    "room_full": 409,
    "request_exists": 409,
    "already_friends": 409,
    "request_not_pending": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
    "overloaded": 503,
}

DESCRIPTION = """\
A chat-room server: accounts, rooms of at most 6 members, per-room ordered
messages over HTTP and WebSocket, and friend requests.

**Conventions.** JSON in, JSON out, UTF-8. Authenticated calls carry
`Authorization: Bearer <token>` from `POST /api/login`. Times are ISO 8601 UTC
strings ending in `Z`. `userId` is chosen at registration and is unique without
regard to case; `roomId`, `messageId` and `requestId` are opaque strings chosen
by the server.

**Errors.** Every 4xx and 5xx answer has the shape of the `Error` schema:
`{"error": {"code", "message", "details"?}}`. The code is the stable part; the
message is for people. Beyond the codes listed with each operation:

- A body that is not a JSON object (not JSON, a JSON array, invalid UTF-8, empty)
  is `400 invalid_json`; a body over 64 KiB (`CHAT_MAX_BODY_BYTES`), with or
  without `Content-Length`, is `413 payload_too_large`.
- A field that is missing, of the wrong type, out of range, or not defined by
  the request schema is `400 validation_failed`; `details.errors` lists
  `{"field", "message"}` and never repeats the value sent.
- Passwords are measured in UTF-8 bytes (bcrypt reads at most 72):
  `x-minUtf8Bytes` / `x-maxUtf8Bytes` in a schema bound the byte length of a string.
- An unknown path is `404 not_found`. A method a path does not serve is
  `405 method_not_allowed`; on an authenticated path the token is checked
  first, so without a valid token the answer is `401 unauthorized`.
- **Rate limits** (each a `CHAT_LIMIT_*` setting; see docs/security.md): failed
  logins per account and client address and per address, logins and
  registrations per address, messages per user (HTTP and WebSocket together),
  invitations, wrong room passwords per user and per room, friend requests,
  wrong `X-Admin-Key` values per address. Each attempt is counted before the
  work it guards, so simultaneous requests cannot exceed a limit. Over one:
  `429 rate_limited` with a `Retry-After` header (whole seconds, at least 1)
  and `details.retryAfter`; nothing was done.
- Text that is not valid Unicode (a lone surrogate escape such as `"\\ud800"`),
  integers beyond range, and control characters in identifiers are
  `400 validation_failed`. Patterns match the whole string.
- Browsers: `CHAT_ALLOWED_ORIGINS` may call the API (CORS, preflight
  included); no other origin gets a CORS header.
- `500 internal` carries no stack trace, SQL or secret.
- `503 unavailable` (the database does not answer; within about 2 s) and
  `503 overloaded` (refused at once: the server's queues stand above
  `CHAT_QUEUE_DELAY_MS`) carry a `Retry-After` header and
  `details.retryAfter`; nothing was done, so the request may be sent again.

**Secrets.** No response contains a password, a password hash, a room
password, or an invitation token other than the one `POST /api/invite` just
issued.

**Coins and prime.** With `CHAT_SIGNUP_GRANTS=open` (the default) registration
may set `availCoins` and `isPrime`; with `CHAT_SIGNUP_GRANTS=operator` a
registration asking for coins or prime is `403 forbidden`, and only
`POST /api/admin/users/{userId}/grants` with the operator's `X-Admin-Key` grants
them. Every change of a balance is written to the coin ledger.
"""

WEBSOCKET = """\
Upgrade to a WebSocket. Authenticate with an `Authorization: Bearer` header on
the handshake, or with a first frame `{"type": "auth", "token"}` within 10 s;
either way the server answers `{"type": "ready", "userId"}`. A bad header token
refuses the handshake with `401`; a bad or late auth frame closes the socket
with code 4001. An `Origin` header, when present, must be the server's own or in
`CHAT_ALLOWED_ORIGINS`, else the handshake is refused with `403`.

Frames are JSON objects with a `type`; a client frame may carry `ref`, echoed by
the reply to it. Client frames are the `*Frame` schemas listed under
`x-websocket.clientFrames`, server frames those under `x-websocket.serverFrames`.

- `subscribe` (members only): with `after`, first every stored message with
  `seq > after` in order, then live ones, with no gap and no repeat; without
  `after`, live messages only. Answered by `subscribed` with the room's latest
  `seq` when the subscription started.
- `unsubscribe`: answered by `unsubscribed`.
- `message`: as `POST /api/messages`, answered by `ack`.
- `typing`: the room's other subscribers get a `typing` frame; nothing is stored.
- `ping`: answered by `pong`.

A bad frame is answered by an `error` frame with a code of the `Error` schema,
and the socket stays open. Close codes: 4001 when the token is revoked or
expires, 1009 for a frame over 64 KiB.
"""


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties, required=None, closed=False, description=None):
    schema = {
        "type": "object",
        "required": list(properties if required is None else required),
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def to_document(schema):
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


def _camel(name):
    return "".join(part.capitalize() for part in name.split("_"))


def request_component(name):
    """The component name under which ``schemas.REQUESTS[name]`` appears."""
    return _camel(name) + "Request"


def frame_component(name):
    """The component name under which ``schemas.FRAMES[name]`` appears."""
    return _camel(name) + "Frame"


STRING = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
BOOLEAN = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}

PROFILE = {"userId": STRING, "name": STRING, "isPrime": BOOLEAN, "createdAt": TIME}

RESPONSES = {
    "Profile": _object(
        PROFILE, closed=True, description="Another user as anyone signed in sees them."
    ),
    "OwnProfile": _object(
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
    "Session": _object(
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
    "Room": _object(
        {
            "roomId": STRING,
            "name": STRING,
            "ownerId": STRING,
            "capacity": {"type": "integer", "const": 6},
            "memberCount": COUNT,
            "members": {
                "type": "array",
                "items": STRING,
                "maxItems": 6,
                "description": "userIds of the members, the owner included",
            },
            "createdAt": TIME,
        },
        description="A room of at most 6 members, its owner included. Never its password.",
    ),
    "Invitation": _object(
        {
            "token": {"type": "string", "description": "single-use; shown only in this response"},
            "roomId": STRING,
            "inviteeId": STRING,
            "expiresAt": TIME,
        }
    ),
    "Message": _object(
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
    "FriendRequest": _object(
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
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "enum": sorted(ERROR_STATUS)},
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
    "LedgerEntry": _object(
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
    "RoomSummary": _object(
        {
            "roomId": STRING,
            "name": STRING,
            "ownerId": STRING,
            "capacity": {"type": "integer", "minimum": 1, "maximum": 6},
            "memberCount": COUNT,
            "lastSeq": {"type": "integer", "minimum": 0, "description": "the latest message's seq"},
            "createdAt": TIME,
        },
        closed=True,
        description="A room as the operator lists it: no members, no password.",
    ),
    "Health": _object(
        {
            "status": {"enum": ["ok", "unavailable"]},
            "checks": _object(
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

SERVER_FRAMES = {
    "ReadyFrame": _object({"type": {"const": "ready"}, "userId": STRING}),
    "SubscribedFrame": _object(
        {"type": {"const": "subscribed"}, "roomId": STRING, "lastSeq": COUNT, "ref": STRING},
        required=["type", "roomId", "lastSeq"],
    ),
    "UnsubscribedFrame": _object(
        {"type": {"const": "unsubscribed"}, "roomId": STRING, "ref": STRING},
        required=["type", "roomId"],
    ),
    "AckFrame": _object(
        {"type": {"const": "ack"}, "message": ref("Message"), "ref": STRING},
        required=["type", "message"],
    ),
    "MessageEventFrame": _object({"type": {"const": "message"}, "message": ref("Message")}),
    "MemberEventFrame": _object(
        {"type": {"enum": ["member_joined", "member_left"]}, "roomId": STRING, "userId": STRING}
    ),
    "TypingEventFrame": _object({"type": {"const": "typing"}, "roomId": STRING, "userId": STRING}),
    "PongFrame": _object({"type": {"const": "pong"}, "ref": STRING}, required=["type"]),
    "ErrorFrame": _object(
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


class Op:
    """One operation: who may call it, what it takes, and what it answers.

    ``replies`` maps a status to (description, body schema or None); ``errors``
    lists (code, when) pairs. The errors every operation of a kind shares
    (bad JSON, bad token, ...) are added by ``_operation``.
    """

    def __init__(
        self,
        operation_id,
        summary,
        tag,
        auth="bearer",
        request=None,
        query=None,
        replies=None,
        errors=(),
        description=None,
    ):
        self.operation_id = operation_id
        self.summary = summary
        self.tag = tag
        self.auth = auth
        self.request = request
        self.query = query
        self.replies = replies or {}
        self.errors = list(errors)
        self.description = description


def body(**fields):
    return _object(fields)


LOGIN_BODY = body(
    token={"type": "string", "description": "the access token (Bearer)"},
    tokenType={"const": "Bearer"},
    expiresIn={"type": "integer", "description": "seconds the access token lives"},
    refreshToken={"type": "string", "description": "opaque; works once"},
    refreshExpiresIn={"type": "integer", "description": "seconds the refresh token lives"},
    sessionId=STRING,
    user=ref("OwnProfile"),
)

ROOM_NOT_FOUND = ("not_found", "no such room")
ADMIN_KEY_REFUSED = (
    "forbidden",
    "X-Admin-Key missing or wrong, or no CHAT_ADMIN_KEY is configured",
)
NEXT_PAGE = {
    "type": ["string", "null"],
    "description": "pass as `after` for the next page; null on the last page",
}
NOT_MEMBER = ("not_room_member", "you are not a member of the room")

# One entry per route of chat/app.py: Tornado pattern -> {OpenAPI path: {method: Op}}.
ROUTE_DOCS = {
    r"/api/health": {
        "/api/health": {
            "get": Op(
                "health",
                "Whether the server and its database answer",
                "Operations",
                auth=None,
                replies={
                    200: ("The database answers.", ref("Health")),
                    503: ("The database does not answer.", ref("Health")),
                },
            ),
        }
    },
    r"/metrics": {
        "/metrics": {
            "get": Op(
                "metrics",
                "Prometheus metrics",
                "Operations",
                auth=None,
                description="The Prometheus text format (`text/plain; version=0.0.4`): "
                "requests by route template and status with latency histograms, open "
                "WebSockets, messages stored and delivered, rate-limit and overload "
                "refusals, database pools, broker state, group-commit batch sizes. "
                "CHAT_METRICS says who may read it (`off`: 404).",
                replies={200: ("The metrics, as text.", None)},
                errors=[
                    ("forbidden", "this address is not in CHAT_METRICS"),
                    ("not_found", "CHAT_METRICS=off"),
                ],
            ),
        }
    },
    r"/api/openapi\.json": {
        "/api/openapi.json": {
            "get": Op(
                "openapi",
                "This document",
                "Operations",
                auth=None,
                replies={200: ("The OpenAPI 3.1 document.", {"type": "object"})},
            ),
        }
    },
    r"/api/create": {
        "/api/create": {
            "post": Op(
                "createUser",
                "Register",
                "Users",
                auth=None,
                request="create_user",
                replies={201: ("The new account.", body(user=ref("OwnProfile")))},
                errors=[
                    (
                        "forbidden",
                        "availCoins > 0 or isPrime true while CHAT_SIGNUP_GRANTS=operator",
                    ),
                    ("user_exists", "the userId (in any case) or the phone is taken"),
                ],
            ),
        }
    },
    r"/api/login": {
        "/api/login": {
            "post": Op(
                "login",
                "Log in with userId or phone, and password",
                "Users",
                auth=None,
                request="login",
                description="Starts a session: a short-lived access token (`token`, "
                "`CHAT_TOKEN_TTL`, 15 minutes by default) and an opaque refresh token "
                "(256 bits, stored only as a hash) to get the next one from "
                "`POST /api/token/refresh`.",
                replies={200: ("A new session's tokens.", LOGIN_BODY)},
                errors=[
                    (
                        "invalid_credentials",
                        "wrong password or unknown user: the same answer either way",
                    ),
                    (
                        "rate_limited",
                        "too many failed logins for this account from this address, or "
                        "from this address, or too many logins from this address",
                    ),
                ],
            ),
        }
    },
    r"/api/token/refresh": {
        "/api/token/refresh": {
            "post": Op(
                "refreshToken",
                "Exchange a refresh token for new tokens",
                "Sessions",
                auth=None,
                request="refresh_token",
                description="A refresh token works once: the answer carries a new one. "
                "Presenting one that was already used ends its whole session (every token "
                "of it; its WebSockets close with 4001 on every process) and is `401`.",
                replies={200: ("The session's new tokens.", LOGIN_BODY)},
                errors=[("unauthorized", "unknown, expired, ended or reused refresh token")],
            ),
        }
    },
    r"/api/sessions": {
        "/api/sessions": {
            "get": Op(
                "listSessions",
                "Your live sessions",
                "Sessions",
                replies={
                    200: (
                        "Your sessions.",
                        body(sessions={"type": "array", "items": ref("Session")}),
                    )
                },
            ),
        }
    },
    f"/api/sessions/{schemas.PATH_ID}": {
        "/api/sessions/{sessionId}": {
            "delete": Op(
                "endSession",
                "End one of your sessions",
                "Sessions",
                description="Its access and refresh tokens stop working at once and its "
                "WebSockets close with 4001, on every process.",
                replies={204: ("Ended.", None)},
                errors=[("not_found", "no live session of yours with this id")],
            ),
        }
    },
    r"/api/password": {
        "/api/password": {
            "post": Op(
                "changePassword",
                "Change your password",
                "Sessions",
                request="change_password",
                description="Every other session of yours ends. A wrong current password "
                "counts as a failed login.",
                replies={204: ("Changed.", None)},
                errors=[
                    ("invalid_credentials", "the current password is wrong"),
                    ("rate_limited", "too many failed password checks"),
                ],
            ),
        }
    },
    r"/api/logout": {
        "/api/logout": {
            "post": Op(
                "logout",
                "End the session of the token in use",
                "Users",
                description="Its access and refresh tokens stop working (401), and its "
                "WebSockets are closed with code 4001 on every process.",
                replies={204: ("Revoked.", None)},
            ),
        }
    },
    f"/api/profile/{schemas.PATH_ID}": {
        "/api/profile/{userId}": {
            "get": Op(
                "getProfile",
                "A user's profile",
                "Users",
                replies={
                    200: (
                        "OwnProfile for yourself, Profile for anyone else.",
                        body(user={"oneOf": [ref("OwnProfile"), ref("Profile")]}),
                    )
                },
                errors=[("not_found", "no such user")],
            ),
        }
    },
    f"/api/admin/users/{schemas.PATH_ID}/grants": {
        "/api/admin/users/{userId}/grants": {
            "post": Op(
                "grant",
                "Grant coins and/or prime (operator)",
                "Operations",
                auth="admin",
                request="grant",
                description="Coins are added to the balance and written to the coin ledger.",
                replies={200: ("The account after the grant.", body(user=ref("OwnProfile")))},
                errors=[
                    (
                        "forbidden",
                        "X-Admin-Key missing or wrong, or no CHAT_ADMIN_KEY is configured",
                    ),
                    ("not_found", "no such user"),
                ],
            ),
        }
    },
    r"/api/admin/users": {
        "/api/admin/users": {
            "get": Op(
                "adminListUsers",
                "List or search users (operator)",
                "Operations",
                auth="admin",
                query="admin_list_users",
                description="In userId order, `limit` (default 50, at most 200) a page. "
                "With `q`: users whose userId or phone starts with it, or whose name "
                "contains it, case ignored.",
                replies={
                    200: (
                        "A page of users.",
                        body(users={"type": "array", "items": ref("OwnProfile")}, next=NEXT_PAGE),
                    )
                },
                errors=[ADMIN_KEY_REFUSED],
            ),
        }
    },
    f"/api/admin/users/{schemas.PATH_ID}/ledger": {
        "/api/admin/users/{userId}/ledger": {
            "get": Op(
                "adminUserLedger",
                "A user's balance and coin ledger (operator)",
                "Operations",
                auth="admin",
                query="admin_user_ledger",
                description="Oldest entry first, `limit` (default 50, at most 200) a page.",
                replies={
                    200: (
                        "The account and a page of its ledger.",
                        body(
                            user=ref("OwnProfile"),
                            entries={"type": "array", "items": ref("LedgerEntry")},
                            next=NEXT_PAGE,
                        ),
                    )
                },
                errors=[ADMIN_KEY_REFUSED, ("not_found", "no such user")],
            ),
        }
    },
    r"/api/admin/rooms": {
        "/api/admin/rooms": {
            "get": Op(
                "adminListRooms",
                "List rooms with their member counts (operator)",
                "Operations",
                auth="admin",
                query="admin_list_rooms",
                description="In roomId order, `limit` (default 50, at most 200) a page.",
                replies={
                    200: (
                        "A page of rooms.",
                        body(rooms={"type": "array", "items": ref("RoomSummary")}, next=NEXT_PAGE),
                    )
                },
                errors=[ADMIN_KEY_REFUSED],
            ),
        }
    },
    r"/api/chatrooms": {
        "/api/chatrooms": {
            "post": Op(
                "createRoom",
                "Create a room (prime members)",
                "Rooms",
                request="create_room",
                replies={201: ("The room; its owner is its first member.", body(room=ref("Room")))},
                errors=[("not_prime", "you are not a prime member")],
            ),
            "get": Op(
                "listRooms",
                "The rooms you are a member of",
                "Rooms",
                replies={200: ("Your rooms.", body(rooms={"type": "array", "items": ref("Room")}))},
            ),
        }
    },
    f"/api/chatrooms/{schemas.PATH_ID}": {
        "/api/chatrooms/{roomId}": {
            "get": Op(
                "getRoom",
                "One room (members)",
                "Rooms",
                replies={200: ("The room.", body(room=ref("Room")))},
                errors=[NOT_MEMBER, ROOM_NOT_FOUND],
            ),
        }
    },
    f"/api/chatrooms/{schemas.PATH_ID}/leave": {
        "/api/chatrooms/{roomId}/leave": {
            "post": Op(
                "leaveRoom",
                "Leave a room (members other than the owner)",
                "Rooms",
                description="No refund; a used free join stays used.",
                replies={204: ("Left.", None)},
                errors=[("forbidden", "you own the room"), NOT_MEMBER, ROOM_NOT_FOUND],
            ),
        }
    },
    r"/api/invite": {
        "/api/invite": {
            "post": Op(
                "invite",
                "Invite a prime member to your room",
                "Rooms",
                request="invite",
                description="The token is random (256 bits), stored only as a hash, "
                "single-use, valid only for its invitee, and expires after "
                "CHAT_INVITE_TTL seconds (24 h).",
                replies={
                    201: (
                        "The invitation; its token is shown only here.",
                        body(invitation=ref("Invitation")),
                    )
                },
                errors=[
                    ("forbidden", "you do not own the room"),
                    ("not_prime", "the invitee is not a prime member"),
                    ("not_found", "no such room or user"),
                ],
            ),
        }
    },
    r"/api/joinroom": {
        "/api/joinroom": {
            "post": Op(
                "joinRoom",
                "Join a room with its password or an invitation",
                "Rooms",
                request="join_room",
                description="Prime members join free; a non-prime member's first room is "
                "free and every further one costs CHAT_JOIN_PRICE (150) coins, "
                "taken with the membership and written to the coin ledger. "
                "Joining a room you are in is 200 with charged 0. An invitation "
                "is checked before anything else.",
                replies={
                    200: (
                        "You are a member.",
                        body(room=ref("Room"), charged=COUNT, availCoins=COUNT),
                    )
                },
                errors=[
                    ("insufficient_coins", "the join costs more than you have"),
                    ("wrong_room_password", "the room password is wrong"),
                    (
                        "invite_invalid",
                        "the invitation is unknown, expired, used, or for someone else",
                    ),
                    ROOM_NOT_FOUND,
                    ("room_full", "the room already has 6 members"),
                ],
            ),
        }
    },
    r"/api/messages": {
        "/api/messages": {
            "post": Op(
                "sendMessage",
                "Send a message to a room (members)",
                "Messages",
                request="send_message",
                description="Every WebSocket subscribed to the room receives it once stored.",
                replies={
                    201: ("Stored.", body(message=ref("Message"))),
                    200: (
                        "This sender already sent this clientMsgId to this room: "
                        "the original message, stored and delivered once.",
                        body(message=ref("Message")),
                    ),
                },
                errors=[NOT_MEMBER, ROOM_NOT_FOUND],
            ),
            "get": Op(
                "listMessages",
                "A room's messages (members)",
                "Messages",
                query="list_messages",
                description="Ascending by seq. With neither after nor before, the latest "
                "`limit` (default 50) messages.",
                replies={
                    200: (
                        "Messages.",
                        body(messages={"type": "array", "items": ref("Message")}, hasMore=BOOLEAN),
                    )
                },
                errors=[NOT_MEMBER, ROOM_NOT_FOUND],
            ),
        }
    },
    r"/api/friend-requests": {
        "/api/friend-requests": {
            "post": Op(
                "sendFriendRequest",
                "Ask someone who shares a room with you",
                "Friends",
                request="friend_request",
                replies={
                    201: ("Sent; pending.", body(friendRequest=ref("FriendRequest"))),
                    200: (
                        "The receiver had already asked you: you are now friends "
                        "(status accepted).",
                        body(friendRequest=ref("FriendRequest")),
                    ),
                },
                errors=[
                    ("validation_failed", "the userId is your own"),
                    ("not_found", "no such user"),
                    ("not_participant", "you share no room with this user"),
                    ("request_exists", "you already have a pending request to them"),
                    ("already_friends", "you are already friends"),
                ],
            ),
            "get": Op(
                "listFriendRequests",
                "Your friend requests",
                "Friends",
                query="list_friend_requests",
                replies={
                    200: (
                        "Requests you sent or received.",
                        body(friendRequests={"type": "array", "items": ref("FriendRequest")}),
                    )
                },
            ),
        }
    },
    f"/api/friend-requests/{schemas.PATH_ID}": {
        "/api/friend-requests/{requestId}": {
            "delete": Op(
                "withdrawFriendRequest",
                "Withdraw a pending request you sent",
                "Friends",
                replies={204: ("Withdrawn.", None)},
                errors=[
                    (
                        "not_found",
                        "no such request, you are not its sender, or it is no longer pending",
                    )
                ],
            ),
        }
    },
    f"/api/friend-requests/{schemas.PATH_ID}/(accept|decline)": {
        "/api/friend-requests/{requestId}/accept": {
            "post": Op(
                "acceptFriendRequest",
                "Accept a request you received",
                "Friends",
                replies={
                    200: ("Accepted; you are friends.", body(friendRequest=ref("FriendRequest")))
                },
                errors=[
                    ("not_found", "no such request, or you are not its receiver"),
                    (
                        "request_not_pending",
                        "it was already accepted or declined; details.status says which",
                    ),
                ],
            ),
        },
        "/api/friend-requests/{requestId}/decline": {
            "post": Op(
                "declineFriendRequest",
                "Decline a request you received",
                "Friends",
                replies={200: ("Declined.", body(friendRequest=ref("FriendRequest")))},
                errors=[
                    ("not_found", "no such request, or you are not its receiver"),
                    (
                        "request_not_pending",
                        "it was already accepted or declined; details.status says which",
                    ),
                ],
            ),
        },
    },
    r"/api/friends": {
        "/api/friends": {
            "get": Op(
                "listFriends",
                "Your friends",
                "Friends",
                replies={
                    200: ("Your friends.", body(friends={"type": "array", "items": ref("Profile")}))
                },
            ),
        }
    },
    r"/api/ws": {
        "/api/ws": {
            "get": Op(
                "websocket",
                "The WebSocket",
                "WebSocket",
                auth="bearer_or_frame",
                description=WEBSOCKET,
                replies={
                    101: ("Switching to the WebSocket protocol.", None),
                    400: ("Not a WebSocket upgrade request (a plain-text body).", None),
                    403: ("The Origin is not allowed (a plain-text body).", None),
                },
                errors=[("unauthorized", "the Authorization header's token is not valid")],
            ),
        }
    },
}

SECURITY = {
    "bearer": [{"bearerAuth": []}],
    "admin": [{"adminKey": []}],
    # The token may also come in the first frame, after the handshake.
    "bearer_or_frame": [{"bearerAuth": []}, {}],
    None: [],
}


def _error_response(errors):
    codes = list(dict.fromkeys(code for code, _ in errors))
    response = {
        "description": "; ".join(f"`{code}`: {when}" for code, when in errors),
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


def _operation(op, path_params):
    errors = []
    if op.request:
        errors += [
            ("invalid_json", "the body is not a JSON object"),
            ("validation_failed", "the body breaks the request schema"),
            ("payload_too_large", "the body is over 64 KiB"),
        ]
    if op.query:
        errors.append(("validation_failed", "a query parameter breaks the rules"))
    if op.auth == "bearer":
        errors.append(("unauthorized", "no valid bearer token"))
    errors += op.errors
    errors.append(("internal", "a fault on the server; nothing about it is in the body"))
    if 503 not in op.replies and op.operation_id != "openapi":
        errors += [
            ("unavailable", "the database does not answer; try again after Retry-After"),
            (
                "overloaded",
                "the server is busier than it can serve in time; try again after Retry-After",
            ),
        ]

    by_status = {}
    for code, when in errors:
        by_status.setdefault(ERROR_STATUS[code], []).append((code, when))

    responses = {}
    for status, (description, schema) in sorted(op.replies.items()):
        responses[str(status)] = {"description": description}
        if schema is not None:
            responses[str(status)]["content"] = {JSON: {"schema": schema}}
    for status, found in sorted(by_status.items()):
        responses[str(status)] = _error_response(found)

    operation = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.auth],
        "responses": responses,
    }
    if op.description:
        operation["description"] = op.description
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
        operation["parameters"] = parameters
    if op.request:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": ref(request_component(op.request))}},
        }
    if op.operation_id == "websocket":
        operation["x-websocket"] = {
            "clientFrames": [ref(frame_component(name)) for name in schemas.FRAMES],
            "serverFrames": [ref(name) for name in SERVER_FRAMES],
        }
    return operation


@functools.cache
def document():
    """The whole OpenAPI document, built once."""
    paths = {}
    for documented in ROUTE_DOCS.values():
        for path, operations in documented.items():
            path_params = re.findall(r"{(\w+)}", path)
            paths[path] = {method: _operation(op, path_params) for method, op in operations.items()}
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
        "info": {"title": "Chat rooms", "version": "1.0.0", "description": DESCRIPTION},
        "tags": [
            {"name": name}
            for name in (
                "Users",
                "Sessions",
                "Rooms",
                "Messages",
                "Friends",
                "WebSocket",
                "Operations",
            )
        ],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
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
            },
        },
    }
