"""Every fixture of the suite, in one place.

The whole run uses one fresh database (``chat_test_<random>``), migrated once
and dropped at the end; tests create their own users and rooms with random
ids, so they never see each other's rows. Each test talks to a real server
over real HTTP (and WebSockets) on a free loopback port.

Set CHAT_TEST_DATABASE_URL to point the suite at another MySQL/MariaDB; the
database named in it is ignored, a fresh one is always made beside it.
"""

import asyncio
import dataclasses
import json
import os
import re
import secrets
from urllib.parse import urlencode

import jwt
import pymysql
import pytest
from tornado import httpclient, websocket

import settings as settings_module
from chat import app as app_module
from chat.context import Context
from chat.db import migrate, sqlfile
from chat.db.pool import Database
from chat.realtime.broker import LocalBroker, RedisBroker
from procs import RedisServer, ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES = sqlfile.load_dir(os.path.join(ROOT, "sql", "queries"))
TEST_SECRET = "test-secret-" + secrets.token_hex(16)
PASSWORD = "correct horse battery"


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**overrides): change the server's Settings")


def mysql_connect(url, database=None):
    return pymysql.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
    )


@pytest.fixture(scope="session")
def server_url():
    """Where MySQL/MariaDB listens, without a database chosen."""
    base = os.environ.get("CHAT_TEST_DATABASE_URL", "mysql://root@127.0.0.1:3306/test")
    return settings_module.DatabaseUrl.parse(base)


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


def query(conn, statement, *args):
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def revoke_behind_the_broker(conn, user):
    """Revoke ``user``'s token in the database only, as a logout whose broadcast was lost."""
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    query(
        conn,
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) "
        "VALUES (%s, %s, UTC_TIMESTAMP() + INTERVAL 1 HOUR)",
        claims["jti"],
        user.user_id,
    )


@pytest.fixture
def settings(request, database):
    overrides = {}
    marker = request.node.get_closest_marker("settings")
    if marker:
        overrides = marker.kwargs
    return settings_module.Settings(
        database=database, jwt_secret=TEST_SECRET, bcrypt_rounds=4, db_pool_size=30, **overrides
    )


@pytest.fixture
def ctx(io_loop, settings):
    db = io_loop.run_sync(
        lambda: Database.connect(settings.database, QUERIES, maxsize=settings.db_pool_size)
    )
    context = Context.build(settings, db, LocalBroker())
    yield context
    io_loop.run_sync(db.close)
    context.close()


@pytest.fixture
def app(ctx):
    return app_module.make_app(ctx)


def served_routes(application):
    """Route pattern -> handler class of every route ``application`` serves (not the 404)."""
    routes = {}
    for rule in application.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern  # Tornado appends "$"
        routes[pattern[:-1] if pattern.endswith("$") else pattern] = rule.target
    return routes


@dataclasses.dataclass
class Response:
    status: int
    body: object
    headers: object
    raw: bytes


@dataclasses.dataclass
class User:
    user_id: str
    token: str
    phone: str
    password: str
    profile: dict


# Every ApiClient made during the current test, for the secrets check at teardown.
_clients = []

BCRYPT_HASH = re.compile(rb"\$2[aby]\$")


def _passwords(value):
    """Every string sent under a JSON key named "password", at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "password" and isinstance(item, str):
                yield item
            else:
                yield from _passwords(item)
    elif isinstance(value, list):
        for item in value:
            yield from _passwords(item)


def _spellings(secret):
    """The ways ``secret`` can appear in a JSON body, as bytes."""
    return {
        secret.encode(),
        json.dumps(secret)[1:-1].encode(),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
    }


class ApiClient:
    """Speaks to the server under test over real HTTP.

    It keeps every response body and every password it sent, so that
    ``leaks()`` can tell whether the server ever answered with a secret.
    """

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = httpclient.AsyncHTTPClient(force_instance=True, max_clients=100)
        self.sent_passwords = set()
        self.responses = []  # (path, raw body) of every response, in order
        self.sockets = []  # every WebSocket opened, closed with the client
        _clients.append(self)

    def leaks(self):
        """What no response may hold: bcrypt hashes, passwords sent, others' invitations.

        An invitation token may appear only in the /api/invite response that
        issued it. Passwords under 4 characters (never valid, the shortest room
        password is 4 bytes) are too common to look for.
        """
        issued = {}
        for index, (path, raw) in enumerate(self.responses):
            if path == "/api/invite" and raw:
                token = json.loads(raw).get("invitation", {}).get("token")
                if token:
                    issued[token] = index
        found = []
        for index, (path, raw) in enumerate(self.responses):
            if BCRYPT_HASH.search(raw):
                found.append((path, "a bcrypt hash"))
            for password in self.sent_passwords:
                if len(password) >= 4 and any(s in raw for s in _spellings(password)):
                    found.append((path, "a password that was sent"))
            for token, issuer in issued.items():
                if index != issuer and token.encode() in raw:
                    found.append((path, "an invitation token issued by another response"))
        return found

    async def request(
        self, method, path, body=None, token=None, headers=None, raw=None, params=None
    ):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
            self.sent_passwords.update(_passwords(body))
        if raw is None and method in ("POST", "PUT", "PATCH"):
            raw = b""
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        resp = await self.http.fetch(
            url,
            method=method,
            body=raw,
            headers=headers,
            raise_error=False,
            request_timeout=60,
            allow_nonstandard_methods=True,
        )
        self.responses.append((path, resp.body or b""))
        parsed = None
        if resp.body:
            parsed = json.loads(resp.body)
        return Response(resp.code, parsed, resp.headers, resp.body or b"")

    async def post(self, path, body=None, **kw):
        return await self.request("POST", path, body, **kw)

    async def get(self, path, **kw):
        return await self.request("GET", path, **kw)

    async def delete(self, path, **kw):
        return await self.request("DELETE", path, **kw)

    async def user(self, prime=False, coins=0, **fields):
        """Register a new user with a random id and log it in."""
        user_id = fields.pop("userId", "u_" + secrets.token_hex(6))
        phone = fields.pop("phone", "+1" + str(secrets.randbelow(10**12)).zfill(12))
        body = {
            "userId": user_id,
            "deviceId": "dev-1",
            "name": "Test " + user_id,
            "phone": phone,
            "password": PASSWORD,
            **fields,
        }
        if prime:
            body["isPrime"] = True
        if coins:
            body["availCoins"] = coins
        created = await self.post("/api/create", body)
        assert created.status == 201, created.body
        login = await self.post("/api/login", {"userId": user_id, "password": PASSWORD})
        assert login.status == 200, login.body
        return User(user_id, login.body["token"], phone, PASSWORD, login.body["user"])

    async def room(self, owner, password="room-pass", name="Room"):
        """A new room owned by ``owner`` (a prime User); returns the Room object."""
        resp = await self.post(
            "/api/chatrooms", {"name": name, "password": password}, token=owner.token
        )
        assert resp.status == 201, resp.body
        return resp.body["room"]

    async def join(self, user, room_id, password="room-pass"):
        return await self.post(
            "/api/joinroom", {"roomId": room_id, "password": password}, token=user.token
        )

    def ws_url(self):
        return self.base_url.replace("http://", "ws://") + "/api/ws"

    async def ws(self, token=None, headers=None):
        """A WebSocket to /api/ws, authenticated by header when ``token`` is given."""
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = httpclient.HTTPRequest(self.ws_url(), headers=headers)
        conn = await websocket.websocket_connect(req)
        self.sockets.append(conn)
        return conn

    async def socket(self, user=None, headers=None):
        """A Socket authenticated by header as ``user`` (its ``ready`` already read)."""
        sock = Socket(await self.ws(user.token if user else None, headers))
        if user:
            assert (await sock.expect("ready"))["userId"] == user.user_id
        return sock

    def close(self):
        for conn in self.sockets:
            conn.close()
        self.http.close()


class Socket:
    """A WebSocket client that sends and reads JSON frames, each read with a timeout."""

    def __init__(self, conn):
        self.conn = conn

    async def send(self, frame):
        await self.conn.write_message(
            frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
        )

    async def recv(self, timeout=10):
        """The next frame, or None once the server closed the socket."""
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        return None if raw is None else json.loads(raw)

    async def expect(self, kind, timeout=10):
        frame = await self.recv(timeout)
        assert frame is not None and frame["type"] == kind, frame
        return frame

    async def silent(self, wait=0.3):
        """Assert that no frame arrives within ``wait`` seconds."""
        try:
            frame = await self.recv(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame}")

    async def closed(self, timeout=10):
        """Read until the server closes; returns (close code, frames read before it)."""
        frames = []
        while (frame := await self.recv(timeout)) is not None:
            frames.append(frame)
        return self.conn.close_code, frames

    def close(self):
        self.conn.close()


@pytest.fixture
def api(http_server, base_url):
    client = ApiClient(base_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_secrets_in_responses():
    """After every test: no response of any ApiClient held a secret (see ApiClient.leaks)."""
    yield
    clients = list(_clients)
    _clients.clear()
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
    """``server_procs(redis_url=None, **settings)``: a started server.py.

    It comes with ``.api`` (an ApiClient) and ``.sockets`` (client WebSockets
    to close at teardown).
    """
    started = []

    def start(redis_url=None, **settings):
        server = ServerProcess(database, TEST_SECRET, redis_url, **settings)
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
