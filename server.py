"""Start the chat server: settings, schema, pool, broker, app, graceful shutdown.

    python server.py [--port=8888] [--database_url=mysql://...]   (or CHAT_* variables)

On SIGTERM or SIGINT the server stops accepting connections, closes every
WebSocket with 1001 (going away), lets requests in flight finish (at most
``DRAIN_SECONDS``), then closes the broker and the database pool and exits 0.
A second signal during that exits at once.
"""

import asyncio
import gc
import logging
import os
import signal
import sys
import time
import weakref

from tornado import httpserver, httputil, ioloop

import settings as settings_module
from chat import app as app_module
from chat import broker as broker_module
from chat.context import Context
from chat.db import migrate, sqlfile
from chat.db.pool import Database
from chat.timeutil import utcnow

log = logging.getLogger("chat.server")

ROOT = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES_DIR = os.path.join(ROOT, "sql", "queries")
REVOCATION_SWEEP_MS = 3600 * 1000
DRAIN_SECONDS = 10.0
SOCKET_CLOSE_SECONDS = 3.0


class InFlight(httputil.HTTPServerConnectionDelegate):
    """The application, wrapped to know which requests are still being answered.

    A request counts from its headers until its response is finished (or its
    connection is handed to a WebSocket), so an idle keep-alive connection
    does not hold up a shutdown, and a WebSocket is not a request in flight.
    The streams handed to WebSockets are kept (weakly) to see them closed.
    """

    def __init__(self, application):
        self.application = application
        self.requests = set()
        self.websocket_streams = weakref.WeakSet()

    def start_request(self, server_conn, request_conn):
        tracked = _TrackedConnection(request_conn, self)
        return _TrackedDelegate(self.application.start_request(server_conn, tracked), tracked,
                                self.requests)

    def on_close(self, server_conn):
        self.application.on_close(server_conn)

    def open_websockets(self):
        return sum(1 for stream in list(self.websocket_streams) if not stream.closed())

    async def drain(self, timeout):
        """Wait until no request is in flight; False if some still are after ``timeout``."""
        return await _wait_until(lambda: not self.requests, timeout)


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
    def __init__(self, delegate, connection, requests):
        self._delegate = delegate
        self._connection = connection
        self._requests = requests

    def headers_received(self, start_line, headers):
        self._requests.add(self._connection)
        return self._delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self._delegate.data_received(chunk)

    def finish(self):
        return self._delegate.finish()

    def on_connection_close(self):
        # The client is gone before its response was finished; nobody waits for it.
        self._requests.discard(self._connection)
        return self._delegate.on_connection_close()


async def _wait_until(check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def close_websockets(hub, in_flight):
    """Close every WebSocket with 1001 (going away); wait a moment for the handshakes."""
    count = in_flight.open_websockets()
    if not count:
        return
    log.info("closing %d WebSockets", count)
    hub.close_all(1001, "server shutting down")
    if await _wait_until(lambda: not in_flight.open_websockets(), SOCKET_CLOSE_SECONDS):
        log.info("all WebSockets closed")
    else:
        log.warning("%d WebSockets did not finish closing within %.0f s",
                    in_flight.open_websockets(), SOCKET_CLOSE_SECONDS)


def make_broker(settings):
    """Redis fan-out when CHAT_REDIS_URL is set, else fan-out inside this process.

    Redis pub/sub channels ignore the database number in the URL, so the
    channel names carry the MySQL database's name: deployments sharing one
    Redis keep apart, and processes sharing a database share rooms.
    """
    if settings.redis_url:
        return broker_module.RedisBroker(settings.redis_url,
                                         prefix=f"chat:{settings.database.database}:")
    return broker_module.LocalBroker()


async def start(settings):
    """Everything the server needs, listening; returns a coroutine function that stops it."""
    queries = sqlfile.load_dir(QUERIES_DIR)
    applied = migrate.migrate(settings.database, SCHEMA_DIR, create_database=True)
    if applied:
        log.info("schema brought up to date: %s", ", ".join(applied))
    db = await Database.connect(settings.database, queries, maxsize=settings.db_pool_size)
    broker = make_broker(settings)
    await broker.start()
    log.info("fan-out: %s", "Redis pub/sub" if settings.redis_url else "in this process only")
    ctx = Context.build(settings, db, broker)
    application = app_module.make_app(ctx)
    in_flight = InFlight(application)
    server = httpserver.HTTPServer(in_flight, xheaders=settings.behind_proxy,
                                   max_body_size=settings.max_body_bytes * 16)
    server.listen(settings.port, settings.host)
    sweeper = ioloop.PeriodicCallback(
        lambda: db.execute("delete_expired_revocations", now=utcnow()), REVOCATION_SWEEP_MS)
    sweeper.start()
    log.info("serving on http://%s:%d", settings.host, settings.port)

    async def stop():
        log.info("shutting down: no longer accepting connections")
        server.stop()
        sweeper.stop()
        await close_websockets(application.hub, in_flight)
        if in_flight.requests:
            log.info("waiting for %d requests in flight", len(in_flight.requests))
        if await in_flight.drain(DRAIN_SECONDS):
            log.info("no requests in flight")
        else:
            log.warning("%d requests still in flight after %.0f s; closing them",
                        len(in_flight.requests), DRAIN_SECONDS)
        # A handshake that was in flight may have opened a WebSocket meanwhile.
        await close_websockets(application.hub, in_flight)
        await server.close_all_connections()
        await broker.close()
        log.info("broker closed")
        await db.close()
        log.info("database pool closed")
        ctx.close()

    return stop


def tune_gc():
    """Objects alive after start-up never need scanning again; scan young ones less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50000, 20, 100)


async def main(argv):
    try:
        settings = settings_module.load_settings(argv)
    except settings_module.SettingsError as exc:
        log.error("invalid setting: %s", exc)
        return 2
    stop = await start(settings)
    tune_gc()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig):
        if done.is_set():
            log.warning("%s again: exiting now", sig.name)
            os._exit(1)
        log.info("%s received", sig.name)
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await done.wait()
    await stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(sys.argv)))
