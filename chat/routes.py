"""Every route of the server, with the OpenAPI operations it serves: the one list.

A route is its path as the OpenAPI document writes it (``/api/profile/{userId}``),
its handler, and an ``Op`` per method it serves; the Tornado pattern is
derived from the path (a ``{name}`` is an id of ``schemas.ID_CHARS``; any
other is no such path, a JSON 404), and the document is derived from the ops
(``chat.api.openapi``). To add a route, add a ``Route`` here; its handler
goes in ``chat/web/``, its use case in ``chat/actions/``. A route with no
``Op`` (the web client's files) is served but not documented.

Texts may name a setting's value as ``${name}`` (see ``chat/api/openapi/text.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tornado import web

from chat.api.openapi.components import BOOLEAN, COUNT, LOGIN_BODY, body, ref
from chat.api.openapi.operations import ADMIN_KEY_REFUSED, NEXT_PAGE, NOT_MEMBER, ROOM_NOT_FOUND, Op
from chat.api.openapi.text import WEBSOCKET
from chat.api.schemas import PATH_ID
from chat.web import admin, docs, friends, health, messages, metrics, rooms, socket, users


class Route:
    """One path: its handler, what its ``initialize`` gets besides ``ctx``, an ``Op`` a method."""

    def __init__(
        self,
        path: str,
        handler: type[web.RequestHandler],
        *,
        kwargs: Mapping[str, Any] | None = None,
        **operations: Op,
    ) -> None:
        self.path = path
        self.handler = handler
        self.kwargs = dict(kwargs or {})
        self.operations = operations

    @property
    def pattern(self) -> str:
        """The Tornado pattern: the path with each ``{name}`` an id, dots literal."""
        return re.sub(r"{\w+}", lambda _: PATH_ID, self.path.replace(".", r"\."))


ROUTES = [
    Route(
        "/api/health",
        health.HealthHandler,
        get=Op(
            "health",
            "Whether the server and its database answer",
            "Operations",
            auth=None,
            replies={
                200: ("The database answers.", ref("Health")),
                503: ("The database does not answer.", ref("Health")),
            },
        ),
    ),
    Route(
        "/metrics",
        metrics.MetricsHandler,
        get=Op(
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
    ),
    Route(
        "/api/openapi.json",
        docs.OpenApiHandler,
        get=Op(
            "openapi",
            "This document",
            "Operations",
            auth=None,
            replies={200: ("The OpenAPI 3.1 document.", {"type": "object"})},
        ),
    ),
    Route(
        "/api/create",
        users.CreateUserHandler,
        post=Op(
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
    ),
    Route(
        "/api/login",
        users.LoginHandler,
        post=Op(
            "login",
            "Log in with userId or phone, and password",
            "Users",
            auth=None,
            request="login",
            description="Starts a session: a short-lived access token (`token`, "
            "`CHAT_TOKEN_TTL`, ${token_ttl} on this server) and an opaque refresh token "
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
    ),
    Route(
        "/api/token/refresh",
        users.RefreshHandler,
        post=Op(
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
    ),
    Route(
        "/api/sessions",
        users.SessionsHandler,
        get=Op(
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
    ),
    Route(
        "/api/sessions/{sessionId}",
        users.SessionHandler,
        delete=Op(
            "endSession",
            "End one of your sessions",
            "Sessions",
            description="Its access and refresh tokens stop working at once and its "
            "WebSockets close with 4001, on every process.",
            replies={204: ("Ended.", None)},
            errors=[("not_found", "no live session of yours with this id")],
        ),
    ),
    Route(
        "/api/password",
        users.PasswordHandler,
        post=Op(
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
    ),
    Route(
        "/api/logout",
        users.LogoutHandler,
        post=Op(
            "logout",
            "End the session of the token in use",
            "Users",
            description="Its access and refresh tokens stop working (401), and its "
            "WebSockets are closed with code 4001 on every process.",
            replies={204: ("Revoked.", None)},
        ),
    ),
    Route(
        "/api/profile/{userId}",
        users.ProfileHandler,
        get=Op(
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
    ),
    Route(
        "/api/admin/users/{userId}/grants",
        admin.GrantHandler,
        post=Op(
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
    ),
    Route(
        "/api/admin/users",
        admin.UsersHandler,
        get=Op(
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
    ),
    Route(
        "/api/admin/users/{userId}/ledger",
        admin.LedgerHandler,
        get=Op(
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
    ),
    Route(
        "/api/admin/rooms",
        admin.RoomsHandler,
        get=Op(
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
    ),
    Route(
        "/api/chatrooms",
        rooms.RoomsHandler,
        post=Op(
            "createRoom",
            "Create a room (prime members)",
            "Rooms",
            request="create_room",
            replies={201: ("The room; its owner is its first member.", body(room=ref("Room")))},
            errors=[("not_prime", "you are not a prime member")],
        ),
        get=Op(
            "listRooms",
            "The rooms you are a member of",
            "Rooms",
            replies={200: ("Your rooms.", body(rooms={"type": "array", "items": ref("Room")}))},
        ),
    ),
    Route(
        "/api/chatrooms/{roomId}",
        rooms.RoomHandler,
        get=Op(
            "getRoom",
            "One room (members)",
            "Rooms",
            replies={200: ("The room.", body(room=ref("Room")))},
            errors=[NOT_MEMBER, ROOM_NOT_FOUND],
        ),
    ),
    Route(
        "/api/chatrooms/{roomId}/leave",
        rooms.LeaveHandler,
        post=Op(
            "leaveRoom",
            "Leave a room (members other than the owner)",
            "Rooms",
            description="No refund; a used free join stays used.",
            replies={204: ("Left.", None)},
            errors=[("forbidden", "you own the room"), NOT_MEMBER, ROOM_NOT_FOUND],
        ),
    ),
    Route(
        "/api/invite",
        rooms.InviteHandler,
        post=Op(
            "invite",
            "Invite a prime member to your room",
            "Rooms",
            request="invite",
            description="The token is random (256 bits), stored only as a hash, "
            "single-use, valid only for its invitee, and expires after "
            "CHAT_INVITE_TTL seconds (${invite_ttl}).",
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
    ),
    Route(
        "/api/joinroom",
        rooms.JoinHandler,
        post=Op(
            "joinRoom",
            "Join a room with its password or an invitation",
            "Rooms",
            request="join_room",
            description="Prime members join free; a non-prime member's first room is "
            "free and every further one costs CHAT_JOIN_PRICE (${join_price}) coins, "
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
                ("room_full", "the room already has ${capacity} members"),
            ],
        ),
    ),
    Route(
        "/api/messages",
        messages.MessagesHandler,
        post=Op(
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
        get=Op(
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
    ),
    Route(
        "/api/friend-requests",
        friends.FriendRequestsHandler,
        post=Op(
            "sendFriendRequest",
            "Ask someone who shares a room with you",
            "Friends",
            request="friend_request",
            replies={
                201: ("Sent; pending.", body(friendRequest=ref("FriendRequest"))),
                200: (
                    "The receiver had already asked you: you are now friends (status accepted).",
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
        get=Op(
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
    ),
    Route(
        "/api/friend-requests/{requestId}",
        friends.FriendRequestHandler,
        delete=Op(
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
    ),
    Route(
        "/api/friend-requests/{requestId}/accept",
        friends.FriendRequestAcceptHandler,
        post=Op(
            "acceptFriendRequest",
            "Accept a request you received",
            "Friends",
            replies={200: ("Accepted; you are friends.", body(friendRequest=ref("FriendRequest")))},
            errors=[
                ("not_found", "no such request, or you are not its receiver"),
                (
                    "request_not_pending",
                    "it was already accepted or declined; details.status says which",
                ),
            ],
        ),
    ),
    Route(
        "/api/friend-requests/{requestId}/decline",
        friends.FriendRequestDeclineHandler,
        post=Op(
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
    ),
    Route(
        "/api/friends",
        friends.FriendsHandler,
        get=Op(
            "listFriends",
            "Your friends",
            "Friends",
            replies={
                200: ("Your friends.", body(friends={"type": "array", "items": ref("Profile")}))
            },
        ),
    ),
    Route(
        "/api/ws",
        socket.SocketHandler,
        get=Op(
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
    ),
]


def documented() -> list[tuple[str, Mapping[str, Op]]]:
    """(OpenAPI path, {method: Op}) of every route, for the document."""
    return [(route.path, route.operations) for route in ROUTES]
