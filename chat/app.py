"""The route table and the Tornado application."""

from tornado import web

from chat.api.schemas import PATH_ID
from chat.ops import logs
from chat.ops import metrics as ops_metrics
from chat.realtime.hub import Hub
from chat.web import (
    admin,
    client,
    docs,
    friends,
    headers,
    health,
    messages,
    metrics,
    rooms,
    socket,
    users,
)
from chat.web.base import NotFoundHandler

# An id in a path is made of schemas.ID_CHARS; any other is no such path (a JSON 404).
ROUTES = [
    (r"/api/health", health.HealthHandler),
    (r"/metrics", metrics.MetricsHandler),
    (r"/api/openapi\.json", docs.OpenApiHandler),
    (r"/api/create", users.CreateUserHandler),
    (r"/api/login", users.LoginHandler),
    (r"/api/logout", users.LogoutHandler),
    (r"/api/token/refresh", users.RefreshHandler),
    (r"/api/sessions", users.SessionsHandler),
    (f"/api/sessions/{PATH_ID}", users.SessionHandler),
    (r"/api/password", users.PasswordHandler),
    (f"/api/profile/{PATH_ID}", users.ProfileHandler),
    (f"/api/admin/users/{PATH_ID}/grants", admin.GrantHandler),
    (r"/api/admin/users", admin.UsersHandler),
    (f"/api/admin/users/{PATH_ID}/ledger", admin.LedgerHandler),
    (r"/api/admin/rooms", admin.RoomsHandler),
    (r"/api/chatrooms", rooms.RoomsHandler),
    (f"/api/chatrooms/{PATH_ID}", rooms.RoomHandler),
    (f"/api/chatrooms/{PATH_ID}/leave", rooms.LeaveHandler),
    (r"/api/invite", rooms.InviteHandler),
    (r"/api/joinroom", rooms.JoinHandler),
    (r"/api/messages", messages.MessagesHandler),
    (r"/api/friend-requests", friends.FriendRequestsHandler),
    (f"/api/friend-requests/{PATH_ID}", friends.FriendRequestHandler),
    (f"/api/friend-requests/{PATH_ID}/(accept|decline)", friends.FriendRequestAnswerHandler),
    (r"/api/friends", friends.FriendsHandler),
]


def make_app(ctx):
    """The application, every handler fed ``ctx`` through ``initialize``.

    The WebSocket route also gets this process's ``Hub``, kept as
    ``application.hub`` so that shutdown can close the sockets.
    """
    hub = Hub(ctx)
    routes = [web.url(pattern, handler, {"ctx": ctx}) for pattern, handler in ROUTES]
    routes.append(web.url(r"/api/ws", socket.SocketHandler, {"ctx": ctx, "hub": hub}))
    routes += client.ClientBundle.load(ctx.settings.join_price).routes(ctx)
    application = web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
        debug=ctx.settings.debug,
        compress_response=False,
        log_function=logs.log_request,
        websocket_max_message_size=ctx.settings.max_body_bytes,
        websocket_ping_interval=ctx.settings.ws_ping_interval or None,
        **headers.application_settings(ctx.settings),
    )
    application.hub = hub
    ops_metrics.watch(ctx, hub)
    return application
