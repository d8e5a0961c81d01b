"""The Tornado application, built from the route list of ``chat/routes.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tornado import web

from chat.ops import logs
from chat.ops import metrics as ops_metrics
from chat.realtime.hub import Hub
from chat.routes import ROUTES
from chat.web import client, headers, socket
from chat.web.base import NotFoundHandler

if TYPE_CHECKING:
    from chat.context import Context


class Application(web.Application):
    """The application, with this process's ``Hub`` (shutdown closes its sockets)."""

    def __init__(self, hub: Hub, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub = hub


def make_app(ctx: Context) -> Application:
    """The application, every handler fed ``ctx`` (and its route's kwargs) through ``initialize``.

    The WebSocket route also gets this process's ``Hub``.
    """
    hub = Hub(ctx)
    per_handler: dict[type[web.RequestHandler], dict[str, Any]] = {
        socket.SocketHandler: {"hub": hub}
    }
    routes = [
        web.url(
            route.pattern,
            route.handler,
            {"ctx": ctx, **route.kwargs, **per_handler.get(route.handler, {})},
        )
        for route in ROUTES
    ]
    # The web client's page and files: served, not part of the API's document.
    routes += client.ClientBundle.load(ctx.settings.join_price).routes(ctx)
    application = Application(
        hub,
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
    ops_metrics.watch(ctx, hub)
    return application
