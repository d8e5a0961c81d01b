"""Every fixture of the suite, in one place (shared code the tests import: helpers.py).

The whole run uses one fresh database (``chat_test_<random>``), migrated once
and dropped at the end; tests create their own users and rooms with random
ids, so they never see each other's rows. Each test talks to a real server
over real HTTP (and WebSockets) on a free loopback port.

Set CHAT_TEST_DATABASE_URL to point the suite at another MySQL/MariaDB; the
database named in it is ignored, a fresh one is always made beside it. Without
it, and with nothing at 127.0.0.1:3306, the run starts a private MariaDB
(chat/ops/embedded.py; data in var/mariadb-test) and stops it at the end; with
no MariaDB installed either, it stops at once with one line saying what to do.
"""

import asyncio
import dataclasses
import logging
import os
import secrets
import sys

import pytest

import settings as settings_module
from chat import app as app_module
from chat.context import Context
from chat.db import migrate
from chat.db.pool import Database
from chat.ops import embedded
from chat.realtime.broker import LocalBroker, RedisBroker
from helpers import (
    QUERIES,
    ROOT,
    SCHEMA_DIR,
    TEST_SECRET,
    ApiClient,
    clients_made,
    mysql_connect,
    secrets_in_log,
)
from procs import RedisServer, ServerProcess


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**overrides): change the server's Settings")


def _database_environ():
    """The environment chat/ops/embedded.py decides by, for the test run."""
    environ = {k: v for k, v in os.environ.items() if k != "CHAT_DATABASE_URL"}
    if "CHAT_TEST_DATABASE_URL" in environ:
        environ["CHAT_DATABASE_URL"] = environ["CHAT_TEST_DATABASE_URL"]
    environ.setdefault("CHAT_EMBEDDED_DB_DIR", os.path.join(ROOT, "var", "mariadb-test"))
    return environ


def pytest_sessionstart(session):
    try:
        embedded.check_available((), _database_environ())
    except embedded.NoDatabase as exc:
        # One line, and nothing else: there is nothing to test without a database.
        sys.stderr.write(str(exc).replace("CHAT_DATABASE_URL", "CHAT_TEST_DATABASE_URL") + "\n")
        sys.stderr.flush()
        os._exit(1)


@pytest.fixture(autouse=True)
def event_loop_closed_after_each_test():
    """An asyncio loop set for the test, closed after it.

    pytest-tornado's ``io_loop`` keeps the asyncio loop current before it
    (to restore it after the test) and, when none is set, has asyncio make
    one that nobody closes: its sockets are then collected during some later
    test, whose ResourceWarning fails it.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture(scope="session")
def server_url():
    """Where MySQL/MariaDB listens, without a database chosen."""
    environ = _database_environ()
    with embedded.private_database((), environ) as private:
        base = private or environ.get("CHAT_DATABASE_URL", "mysql://root@127.0.0.1:3306/test")
        yield settings_module.DatabaseUrl.parse(base)


@pytest.fixture(scope="session")
def database(server_url):
    """A fresh, migrated database for the whole run, dropped afterwards."""
    url = dataclasses.replace(server_url, database="chat_test_" + secrets.token_hex(4))
    migrate.migrate(url, SCHEMA_DIR, create_database=True)
    yield url
    conn = mysql_connect(url)
    try:
        conn.cursor().execute(f"DROP DATABASE `{url.database}`")
    finally:
        conn.close()


@pytest.fixture
def sql(database):
    """A plain connection for checking what the server stored."""
    conn = mysql_connect(database, database.database)
    yield conn
    conn.close()


@pytest.fixture
def settings(request, database):
    """The server's Settings; ``@pytest.mark.settings(...)`` changes them.

    Rate limits are off unless a test turns them on (``rate_limits="on"``):
    the suite registers and logs in thousands of users from one address. A
    shared 2-core CI machine can stall a test server for longer than the
    production queueing bound; tests of admission control set their own.
    """
    values = {
        "database": database,
        "jwt_secret": TEST_SECRET,
        "bcrypt_rounds": 4,
        "db_pool_size": 30,
        "rate_limits": "off",
        # Most tests make prime users and coins by registration; tests of the
        # operator grants (the default) set signup_grants="operator".
        "signup_grants": "open",
        "queue_delay_ms": 2000.0,
    }
    marker = request.node.get_closest_marker("settings")
    if marker:
        values.update(marker.kwargs)
    return settings_module.Settings(**values)


@pytest.fixture
def ctx(io_loop, settings):
    db = io_loop.run_sync(lambda: Database.open(settings, QUERIES))
    context = Context.build(settings, db, LocalBroker())
    yield context
    io_loop.run_sync(db.close)
    context.close()


@pytest.fixture
def app(ctx):
    return app_module.make_app(ctx)


@pytest.fixture
def api(http_server, base_url):
    client = ApiClient(base_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_secrets_in_responses():
    """After every test: no response of any ApiClient held a secret (see ApiClient.leaks)."""
    yield
    clients = list(clients_made)
    clients_made.clear()
    for client in clients:
        leaks = client.leaks()
        assert not leaks, f"secrets in responses: {leaks}"


# -- Redis and whole server processes (see tests/procs.py) -------------------


@pytest.fixture(scope="session")
def redis_url():
    """The shared Redis; tests keep apart by channel prefix and never stop it."""
    return os.environ.get("CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which it may stop and restart."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def brokers(io_loop):
    """``brokers(url, **kw)``: a RedisBroker on a prefix of this test's own, closed afterwards."""
    prefix = f"test-{secrets.token_hex(4)}:"
    made = []

    def make(url, **kw):
        broker = RedisBroker(url, prefix=prefix, **kw)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        io_loop.run_sync(broker.close)


@pytest.fixture
def server_procs(database, io_loop):
    """``server_procs(redis_url=None, open_files=None, **settings)``: a started server.py.

    It comes with ``.api`` (an ApiClient) and ``.sockets`` (client WebSockets
    to close at teardown).
    """
    started = []

    def start(redis_url=None, open_files=None, **settings):
        server = ServerProcess(database, TEST_SECRET, redis_url, open_files, **settings)
        started.append(server)
        server.start()
        server.api = ApiClient(server.base_url)
        server.sockets = []
        return server

    yield start
    logs = [server.close() for server in started]  # first: never leave a process behind
    for server in started:
        for conn in getattr(server, "sockets", ()):
            conn.close()
        if hasattr(server, "api"):
            server.api.close()
    failures = [log for log in logs if "Traceback" in log]
    assert not failures, "a server logged an exception:\n" + "\n".join(failures)
    leaks = [found for log in logs for found in secrets_in_log(log)]
    assert not leaks, f"a server logged secrets: {leaks}"


class _LogScanner(logging.Handler):
    """Checks every log record of the run, as it is emitted, for secrets."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.leaks = []

    def emit(self, record):
        try:
            text = self.format(record)
        except Exception:
            text = str(record.msg)
        found = secrets_in_log(text)
        if found:
            self.leaks.append((record.name, found, text[:200]))


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs():
    """The whole run's log (every logger, INFO and up) holds no token, password or hash."""
    scanner = _LogScanner()
    scanner.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(scanner)
    previous = {name: logging.getLogger(name).level for name in ("chat", "tornado")}
    for name in previous:
        logging.getLogger(name).setLevel(logging.INFO)
    yield scanner
    root.removeHandler(scanner)
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)
    # Redacted: the scanner reports which logger and what kind, not the secret itself.
    assert not scanner.leaks, [(name, found) for name, found, _ in scanner.leaks]


# -- the web client in a real browser (tests/test_webclient.py) ----------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it when missing
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WEB_ADMIN_KEY = "web-admin-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def web_server(database):
    """A server.py for a module's browser tests: operator grants, no rate limits."""
    server = ServerProcess(
        database,
        TEST_SECRET,
        admin_key=WEB_ADMIN_KEY,
        signup_grants="operator",
        rate_limits="off",
    )
    server.start()
    server.admin_key = WEB_ADMIN_KEY
    yield server
    log = server.close()
    assert "Traceback" not in log, "the server logged an exception:\n" + log


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright (never a browser Playwright downloads)."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
