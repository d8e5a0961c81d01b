"""Which HTTP requests are still being answered, and which WebSockets are open.

Shutdown waits on this: requests in flight finish (up to a deadline) while
idle keep-alive connections and WebSockets do not hold it up.

It is also the front door of admission control: with ``refuse`` given, a
request for which ``refuse(start_line)`` is true when its headers arrive is
answered ``503 overloaded`` (Retry-After) once its body is read, without
routing, authentication, JSON or an access-log line: refusing must cost far
less than serving, or an overloaded server spends itself on refusals.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tornado import httputil
from tornado.iostream import IOStream

from chat.ops import metrics

StartLine = httputil.RequestStartLine | httputil.ResponseStartLine

REFUSAL_BODY = (
    b'{"error":{"code":"overloaded","message":"The server is overloaded; try again shortly.",'
    b'"details":{"retryAfter":1}}}'
)


class InFlight(httputil.HTTPServerConnectionDelegate):
    """The application, wrapped to know which requests are still being answered.

    A request counts from its headers until its response is finished (or its
    connection is handed to a WebSocket), so an idle keep-alive connection
    does not hold up a shutdown, and a WebSocket is not a request in flight.
    The streams handed to WebSockets are kept (weakly) to see them closed.
    """

    def __init__(
        self,
        application: httputil.HTTPServerConnectionDelegate,
        refuse: Callable[[StartLine], bool] | None = None,
    ) -> None:
        self.application = application
        self.requests: set[_TrackedConnection] = set()
        self.websocket_streams: weakref.WeakSet[IOStream] = weakref.WeakSet()
        self.refuse = refuse
        self.refused = 0  # requests answered 503 overloaded at the door
        extra = getattr(application, "settings", {}).get("security_headers", {})
        self._refusal_headers = {
            **extra,
            "Content-Type": "application/json; charset=UTF-8",
            "Cache-Control": "no-store",
            "Retry-After": "1",
            "Content-Length": str(len(REFUSAL_BODY)),
        }

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        tracked = _TrackedConnection(request_conn, self)
        # A proxy of the connection: it answers everything the connection does.
        proxy = cast(httputil.HTTPConnection, tracked)
        return _TrackedDelegate(self.application.start_request(server_conn, proxy), tracked, self)

    def answer_refused(self, connection: _TrackedConnection) -> None:
        self.refused += 1
        metrics.refused("overloaded", "http")
        connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 503, "Service Unavailable"),
            httputil.HTTPHeaders(self._refusal_headers),
            REFUSAL_BODY,
        )
        connection.finish()

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)

    def open_websockets(self) -> int:
        return sum(1 for stream in list(self.websocket_streams) if not stream.closed())

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if some still are after ``timeout``."""
        return await wait_until(lambda: not self.requests, timeout)


class _TrackedConnection:
    """The request's HTTPConnection, noting when the response is done."""

    def __init__(self, connection: httputil.HTTPConnection, tracker: InFlight) -> None:
        self._connection = connection
        self._tracker = tracker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def finish(self) -> None:
        try:
            return self._connection.finish()
        finally:
            self._tracker.requests.discard(self)

    def detach(self) -> IOStream:
        self._tracker.requests.discard(self)
        stream: IOStream = self._connection.detach()  # type: ignore[attr-defined]
        self._tracker.websocket_streams.add(stream)
        return stream


class _TrackedDelegate(httputil.HTTPMessageDelegate):
    def __init__(
        self,
        delegate: httputil.HTTPMessageDelegate,
        connection: _TrackedConnection,
        tracker: InFlight,
    ) -> None:
        self._delegate = delegate
        self._connection = connection
        self._tracker = tracker
        self._requests = tracker.requests
        self._refused = False

    def headers_received(
        self, start_line: StartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        self._requests.add(self._connection)
        refuse = self._tracker.refuse
        if refuse is not None and refuse(start_line):
            self._refused = True  # answered once the body is read: the connection stays open
            return None
        return self._delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._refused:
            return None
        return self._delegate.data_received(chunk)

    def finish(self) -> None:
        if self._refused:
            self._tracker.answer_refused(self._connection)
            return None
        return self._delegate.finish()

    def on_connection_close(self) -> None:
        # The client is gone before its response was finished; nobody waits for it.
        self._requests.discard(self._connection)
        if self._refused:
            return None
        return self._delegate.on_connection_close()


async def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
