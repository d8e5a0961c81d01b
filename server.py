"""Start the chat server: settings, schema, pool, broker, app, graceful shutdown.

    python server.py [--port=8888] [--database_url=mysql://...]   (or CHAT_* variables)
    python server.py migrate | status | check-ledger | --help       (chat/ops/cli.py)

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

from tornado import httpserver

import settings as settings_module
from chat import app as app_module
from chat.context import Context
from chat.db import migrate, sqlfile
from chat.db.pool import Database
from chat.ops import cli
from chat.realtime import broker as broker_module
from chat.web.inflight import InFlight, wait_until

log = logging.getLogger("chat.server")

ROOT = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES_DIR = os.path.join(ROOT, "sql", "queries")
DRAIN_SECONDS = 10.0
SOCKET_CLOSE_SECONDS = 3.0


async def close_websockets(hub, in_flight):
    """Close every WebSocket with 1001 (going away); wait a moment for the handshakes."""
    count = in_flight.open_websockets()
    if not count:
        return
    log.info("closing %d WebSockets", count)
    hub.close_all(1001, "server shutting down")
    if await wait_until(lambda: not in_flight.open_websockets(), SOCKET_CLOSE_SECONDS):
        log.info("all WebSockets closed")
    else:
        log.warning(
            "%d WebSockets did not finish closing within %.0f s",
            in_flight.open_websockets(),
            SOCKET_CLOSE_SECONDS,
        )


def make_broker(settings):
    """Redis fan-out when CHAT_REDIS_URL is set, else fan-out inside this process.

    Redis pub/sub channels ignore the database number in the URL, so the
    channel names carry the MySQL database's name: deployments sharing one
    Redis keep apart, and processes sharing a database share rooms.
    """
    if settings.redis_url:
        return broker_module.RedisBroker(
            settings.redis_url, prefix=f"chat:{settings.database.database}:"
        )
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
    server = httpserver.HTTPServer(
        in_flight,
        xheaders=settings.behind_proxy,
        max_body_size=settings.max_body_bytes * 16,
        idle_connection_timeout=settings.http_idle_timeout,
        body_timeout=30,
    )
    server.listen(settings.port, settings.host)
    ctx.revocations.start()
    log.info("serving on http://%s:%d", settings.host, settings.port)

    async def stop():
        log.info("shutting down: no longer accepting connections")
        server.stop()
        ctx.revocations.stop()
        await close_websockets(application.hub, in_flight)
        if in_flight.requests:
            log.info("waiting for %d requests in flight", len(in_flight.requests))
        if await in_flight.drain(DRAIN_SECONDS):
            log.info("no requests in flight")
        else:
            log.warning(
                "%d requests still in flight after %.0f s; closing them",
                len(in_flight.requests),
                DRAIN_SECONDS,
            )
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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(cli.main(sys.argv, serve=lambda argv: asyncio.run(main(argv))))
