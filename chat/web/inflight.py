"""Which HTTP requests are still being answered, and which WebSockets are open.

Shutdown waits on this: requests in flight finish (up to a deadline) while
idle keep-alive connections and WebSockets do not hold it up.

It is also the front door of admission control: with ``refuse`` given, a
request for which ``refuse(start_line)`` is true when its headers arrive is
answered ``503 overloaded`` (Retry-After) once its body is read, without
routing, authentication, JSON or an access-log line: refusing must cost far
less than serving, or an overloaded server spends itself on refusals.
"""

import asyncio
import time
import weakref

from tornado import httputil

from chat.ops import metrics

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

    def __init__(self, application, refuse=None):
        self.application = application
        self.requests = set()
        self.websocket_streams = weakref.WeakSet()
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

    def start_request(self, server_conn, request_conn):
        tracked = _TrackedConnection(request_conn, self)
        return _TrackedDelegate(self.application.start_request(server_conn, tracked), tracked, self)

    def answer_refused(self, connection):
        self.refused += 1
        metrics.refused("overloaded", "http")
        connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 503, "Service Unavailable"),
            httputil.HTTPHeaders(self._refusal_headers),
            REFUSAL_BODY,
        )
        connection.finish()

    def on_close(self, server_conn):
        self.application.on_close(server_conn)

    def open_websockets(self):
        return sum(1 for stream in list(self.websocket_streams) if not stream.closed())

    async def drain(self, timeout):
        """Wait until no request is in flight; False if some still are after ``timeout``."""
        return await wait_until(lambda: not self.requests, timeout)


class _TrackedConnection:
    """The request's HTTPConnection, noting when the response is done."""

    def __init__(self, connection, tracker):
        self._connection = connection
        self._tracker = tracker

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def finish(self):
        try:
            return self._connection.finish()
        finally:
            self._tracker.requests.discard(self)

    def detach(self):
        self._tracker.requests.discard(self)
        stream = self._connection.detach()
        self._tracker.websocket_streams.add(stream)
        return stream


class _TrackedDelegate(httputil.HTTPMessageDelegate):
    def __init__(self, delegate, connection, tracker):
        self._delegate = delegate
        self._connection = connection
        self._tracker = tracker
        self._requests = tracker.requests
        self._refused = False

    def headers_received(self, start_line, headers):
        self._requests.add(self._connection)
        refuse = self._tracker.refuse
        if refuse is not None and refuse(start_line):
            self._refused = True  # answered once the body is read: the connection stays open
            return None
        return self._delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        if self._refused:
            return None
        return self._delegate.data_received(chunk)

    def finish(self):
        if self._refused:
            self._tracker.answer_refused(self._connection)
            return None
        return self._delegate.finish()

    def on_connection_close(self):
        # The client is gone before its response was finished; nobody waits for it.
        self._requests.discard(self._connection)
        if self._refused:
            return None
        return self._delegate.on_connection_close()


async def wait_until(check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
