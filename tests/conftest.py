"""Every fixture of the suite, in one place.

The whole run uses one fresh database (``chat_test_<random>``), migrated once
and dropped at the end; tests create their own users and rooms with random
ids, so they never see each other's rows. Each test talks to a real server
over real HTTP (and WebSockets) on a free loopback port.

Set CHAT_TEST_DATABASE_URL to point the suite at another MySQL/MariaDB; the
database named in it is ignored, a fresh one is always made beside it.
"""

import dataclasses
import json
import os
import secrets
import sys
from urllib.parse import urlencode

import pymysql
import pytest
from tornado import httpclient, websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import settings as settings_module  # noqa: E402
from chat import app as app_module  # noqa: E402
from chat.broker import LocalBroker  # noqa: E402
from chat.context import Context  # noqa: E402
from chat.db import migrate, sqlfile  # noqa: E402
from chat.db.pool import Database  # noqa: E402

SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES = sqlfile.load_dir(os.path.join(ROOT, "sql", "queries"))
TEST_SECRET = "test-secret-" + secrets.token_hex(16)
PASSWORD = "correct horse battery"


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**overrides): change the server's Settings")


def mysql_connect(url, database=None):
    return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           database=database, charset="utf8mb4", autocommit=True)


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


@pytest.fixture
def settings(request, database):
    overrides = {}
    marker = request.node.get_closest_marker("settings")
    if marker:
        overrides = marker.kwargs
    return settings_module.Settings(
        database=database, jwt_secret=TEST_SECRET, bcrypt_rounds=4, db_pool_size=30,
        **overrides)


@pytest.fixture
def ctx(io_loop, settings):
    db = io_loop.run_sync(lambda: Database.connect(settings.database, QUERIES,
                                                   maxsize=settings.db_pool_size))
    context = Context.build(settings, db, LocalBroker())
    yield context
    io_loop.run_sync(db.close)
    context.close()


@pytest.fixture
def app(ctx):
    return app_module.make_app(ctx)


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


class ApiClient:
    """Speaks to the server under test over real HTTP."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = httpclient.AsyncHTTPClient(force_instance=True, max_clients=100)

    async def request(self, method, path, body=None, token=None, headers=None, raw=None,
                      params=None):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        if raw is None and method in ("POST", "PUT", "PATCH"):
            raw = b""
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        resp = await self.http.fetch(url, method=method, body=raw, headers=headers,
                                     raise_error=False, request_timeout=60,
                                     allow_nonstandard_methods=True)
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
        body = {"userId": user_id, "deviceId": "dev-1", "name": "Test " + user_id,
                "phone": phone, "password": PASSWORD, **fields}
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
        resp = await self.post("/api/chatrooms", {"name": name, "password": password},
                               token=owner.token)
        assert resp.status == 201, resp.body
        return resp.body["room"]

    async def join(self, user, room_id, password="room-pass"):
        return await self.post("/api/joinroom", {"roomId": room_id, "password": password},
                               token=user.token)

    def ws_url(self):
        return self.base_url.replace("http://", "ws://") + "/api/ws"

    async def ws(self, token=None, headers=None):
        """A WebSocket to /api/ws, authenticated by header when ``token`` is given."""
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = httpclient.HTTPRequest(self.ws_url(), headers=headers)
        return await websocket.websocket_connect(req)

    def close(self):
        self.http.close()


@pytest.fixture
def api(http_server, base_url):
    client = ApiClient(base_url)
    yield client
    client.close()
