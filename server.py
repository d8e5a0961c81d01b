"""Start the chat server: settings, schema, pool, broker, app, graceful shutdown.

    python server.py [--port=8888] [--database_url=mysql://...]   (or CHAT_* variables)
"""

import asyncio
import gc
import logging
import os
import signal
import sys

from tornado import httpserver, ioloop

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


async def start(settings):
    """Everything the server needs, listening; returns a coroutine function that stops it."""
    queries = sqlfile.load_dir(QUERIES_DIR)
    applied = migrate.migrate(settings.database, SCHEMA_DIR, create_database=True)
    if applied:
        log.info("schema brought up to date: %s", ", ".join(applied))
    db = await Database.connect(settings.database, queries, maxsize=settings.db_pool_size)
    broker = broker_module.LocalBroker()
    ctx = Context.build(settings, db, broker)
    application = app_module.make_app(ctx)
    server = httpserver.HTTPServer(application, xheaders=True,
                                   max_body_size=settings.max_body_bytes * 16)
    server.listen(settings.port, settings.host)
    sweeper = ioloop.PeriodicCallback(
        lambda: db.execute("delete_expired_revocations", now=utcnow()), REVOCATION_SWEEP_MS)
    sweeper.start()
    log.info("serving on http://%s:%d", settings.host, settings.port)

    async def stop():
        log.info("shutting down")
        server.stop()
        sweeper.stop()
        await server.close_all_connections()
        await broker.close()
        await db.close()
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
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await stop()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(sys.argv)))
