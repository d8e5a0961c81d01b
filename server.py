"""Start the chat server: settings, schema, pool, broker, app, graceful shutdown.

    python server.py [--port=8888] [--database_url=mysql://...]   (or CHAT_* variables)
    python server.py migrate | status | check-ledger | --help       (chat/ops/cli.py)

When the database cannot be reached at start-up, it says so in one line
(naming the URL, never the password) and retries with backoff for up to
``CHAT_DB_START_WAIT`` seconds before giving up (exit status 1).

On SIGTERM or SIGINT the server stops accepting connections and new WebSocket
frames, lets requests and frames in flight finish (at most
``CHAT_DRAIN_SECONDS``), rolls back the database work of those still running
at that deadline (their connections are closed, so nothing commits after its
client was told it failed), closes every WebSocket with 1001 (going away)
once the replies to the frames it handled are sent, then closes the broker and
the database pool and exits 0. A second signal during that exits at once.
"""

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import pymysql
from tornado import httpserver

import settings as settings_module
from chat import app as app_module
from chat.auth import ratelimit
from chat.context import Context
from chat.db import migrate, sqlfile
from chat.db.pool import Database
from chat.ops import cli, logs
from chat.realtime import broker as broker_module
from chat.realtime.hub import Hub
from chat.util.admission import FrontDoor, LoopLag
from chat.web.inflight import InFlight, wait_until
from chat.web.listener import Listener

log = logging.getLogger("chat.server")

ROOT = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES_DIR = os.path.join(ROOT, "sql", "queries")
SOCKET_CLOSE_SECONDS = 1.0
ABORT_GRACE_SECONDS = 0.3
# Connection-level failures: the database is not (yet) reachable.
UNREACHABLE = {2002, 2003, 2005, 2006, 2013}


class DatabaseUnreachable(Exception):
    pass


def shown_url(url: settings_module.DatabaseUrl) -> str:
    """The database URL as it may appear in a log line: without the password."""
    return f"mysql://{url.user}@{url.host}:{url.port}/{url.database}"


async def wait_for_database(settings: settings_module.Settings) -> list[str]:
    """Migrate the schema once the database answers, retrying with backoff.

    One line when it does not answer, naming the URL and what to do; one
    more when waiting gives up after ``db_start_wait`` seconds.
    """
    url = settings.database
    deadline = time.monotonic() + settings.db_start_wait
    pause = 0.25
    told = False
    while True:
        try:
            return await asyncio.to_thread(migrate.migrate, url, SCHEMA_DIR, create_database=True)
        except pymysql.err.OperationalError as exc:
            if not exc.args or exc.args[0] not in UNREACHABLE:
                raise
            why = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseUnreachable(
                    f"database {shown_url(url)} still unreachable after "
                    f"{settings.db_start_wait:.0f} s ({why}); giving up. Start MariaDB/MySQL "
                    "there, or point CHAT_DATABASE_URL at a running one."
                ) from None
            if not told:
                log.warning(
                    "database %s unreachable (%s): start MariaDB/MySQL there, or point "
                    "CHAT_DATABASE_URL at a running one; retrying for up to %.0f s",
                    shown_url(url),
                    why,
                    settings.db_start_wait,
                )
                told = True
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


async def close_websockets(hub: Hub, in_flight: InFlight) -> None:
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


async def start(settings: settings_module.Settings) -> Callable[[], Awaitable[None]]:
    """Everything the server needs, listening; returns a coroutine function that stops it."""
    queries = sqlfile.load_dir(QUERIES_DIR)
    applied = await wait_for_database(settings)
    if applied:
        log.info("schema brought up to date: %s", ", ".join(applied))
    db = await Database.open(settings, queries)
    broker = broker_module.from_settings(settings)
    await broker.start()
    log.info("fan-out: %s", "Redis pub/sub" if settings.redis_url else "in this process only")
    ctx = Context.build(settings, db, broker)
    application = app_module.make_app(ctx)
    # Admission control at the door: the loop's lag (half the queueing bound:
    # a request also queues in the writers) and the message lanes' queues.
    lag = LoopLag(settings.queue_delay_ms / 2000)
    lag.start()
    writer = ctx.message_writer
    in_flight = InFlight(application)
    in_flight.refuse = FrontDoor(lag, lambda: writer.full, lambda: len(in_flight.requests))
    server = httpserver.HTTPServer(
        in_flight,
        xheaders=settings.behind_proxy,
        max_body_size=settings.max_body_bytes * 16,
        idle_connection_timeout=settings.http_idle_timeout,
        body_timeout=30,
    )
    listener = Listener(server, settings.port, settings.host)
    listener.start()
    ctx.revocations.start()
    log.info("serving on http://%s:%d", settings.host, settings.port)

    async def stop() -> None:
        deadline = time.monotonic() + settings.drain_seconds
        log.info("shutting down: no longer accepting connections")
        listener.stop()
        lag.stop()
        ctx.revocations.stop()
        hub = application.hub
        hub.accepting = False  # new frames are refused; those in flight finish
        if in_flight.requests or hub.frames_in_flight:
            log.info(
                "waiting for %d requests in flight and %d frames",
                len(in_flight.requests),
                hub.frames_in_flight,
            )

        def idle() -> bool:
            return not in_flight.requests and not hub.frames_in_flight

        if await wait_until(idle, max(0.0, deadline - time.monotonic())):
            log.info("no requests in flight, no frames")
        else:
            aborted = db.abort_running()
            log.warning(
                "%d requests and %d frames still in flight after %.1f s: "
                "rolled back the %d database calls they were waiting on",
                len(in_flight.requests),
                hub.frames_in_flight,
                settings.drain_seconds,
                len(aborted),
            )
            # Their handlers now answer 503 (or an error frame); give them a moment.
            await wait_until(idle, ABORT_GRACE_SECONDS)
        await close_websockets(hub, in_flight)
        await server.close_all_connections()
        await broker.close()
        log.info("broker closed")
        await db.close()
        log.info("database pool closed")
        await ratelimit.close_limiter(ctx.limits.limiter)
        ctx.close()

    return stop


def tune_gc() -> None:
    """Objects alive after start-up never need scanning again; scan young ones less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50000, 20, 100)


async def main(argv: Sequence[str]) -> int:
    try:
        settings = settings_module.load_settings(argv)
    except settings_module.SettingsError as exc:
        log.error("invalid setting: %s", exc)
        return 2
    try:
        stop = await start(settings)
    except DatabaseUnreachable as exc:
        log.error("%s", exc)
        return 1
    except pymysql.err.MySQLError as exc:
        why = exc.args[1] if len(exc.args) > 1 else exc
        log.error("database %s: %s", shown_url(settings.database), why)
        return 1
    tune_gc()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
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
    logs.configure(sys.argv)
    sys.exit(cli.main(sys.argv, serve=lambda argv: asyncio.run(main(argv))))
