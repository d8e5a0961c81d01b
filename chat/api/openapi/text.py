"""The document's prose, and the numbers in it, which come from the running settings.

Texts name a setting's value as ``${name}`` (``string.Template``); ``numbers``
gives every name its value on a server started with ``settings``, so the
document served is right whatever the server was started with.
"""

import string

from chat.actions.rooms import CAPACITY
from settings import Settings


def _bytes(count: int) -> str:
    return f"{count // 1024} KiB" if count % 1024 == 0 else f"{count} bytes"


def _seconds(count: float) -> str:
    if count >= 3600 and count % 3600 == 0:
        return f"{int(count // 3600)} h"
    if count >= 60 and count % 60 == 0 and count % 3600:
        return f"{int(count // 60)} min"
    return f"{count:g} s"


def numbers(settings: Settings) -> dict[str, str]:
    """The value of every ``${name}`` the texts use, on a server with these settings."""
    return {
        "capacity": str(CAPACITY),
        "max_body": _bytes(settings.max_body_bytes),
        "ws_auth_timeout": _seconds(settings.ws_auth_timeout),
        "invite_ttl": _seconds(settings.invite_ttl),
        "token_ttl": _seconds(settings.token_ttl),
        "join_price": str(settings.join_price),
    }


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with every ``${name}`` replaced by its value."""
    return string.Template(text).substitute(values)


DESCRIPTION = """\
A chat-room server: accounts, rooms of at most ${capacity} members, per-room ordered
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
  is `400 invalid_json`; a body over ${max_body} (`CHAT_MAX_BODY_BYTES`), with or
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
  `503 overloaded` (refused at once: the work could not start within
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
the handshake, or with a first frame `{"type": "auth", "token"}` within ${ws_auth_timeout};
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
expires, 1009 for a frame over ${max_body}.
"""
