"""Code the tests share: clients for HTTP and WebSockets, SQL checks, constants.

Fixtures live in conftest.py; everything a test module imports by name lives
here (``from helpers import query, PASSWORD``), so that no test module
imports conftest or another test module.
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
from tornado import httpclient, websocket

from chat.db import migrate, sqlfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES = sqlfile.load_dir(os.path.join(ROOT, "sql", "queries"))
TEST_SECRET = "test-secret-" + secrets.token_hex(16)
PASSWORD = "correct horse battery"


# Every token the server issued during the run (access, refresh, invitation) and
# the test password: none may ever appear in a log line (see secrets_in_log).
ISSUED_SECRETS = set()
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
URLSAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]{43,}")
LOGGED_HASH = re.compile(r"\$2[aby]\$[0-9]{2}\$")


def remember_issued_secrets(body):
    if isinstance(body, dict):
        for key in ("token", "refreshToken"):
            if isinstance(body.get(key), str):
                ISSUED_SECRETS.add(body[key])
        invitation = body.get("invitation")
        if isinstance(invitation, dict) and isinstance(invitation.get("token"), str):
            ISSUED_SECRETS.add(invitation["token"])


def secrets_in_log(text):
    """What a log text must never hold: tokens, bcrypt hashes, the test password."""
    found = []
    if JWT.search(text):
        found.append("a JWT")
    if LOGGED_HASH.search(text):
        found.append("a bcrypt hash")
    if PASSWORD in text:
        found.append("the test password")
    for word in URLSAFE_TOKEN.findall(text):
        if word in ISSUED_SECRETS:
            found.append("an issued refresh or invitation token")
    return found


# A plain connection to the test database's server, as the operator commands open one.
mysql_connect = migrate.connect


def query(conn, statement, *args):
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def revoke_behind_the_broker(conn, user):
    """End ``user``'s session in the database only, as a logout whose broadcast was lost."""
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    query(
        conn,
        "UPDATE sessions SET ended_at = UTC_TIMESTAMP(3) WHERE session_id = %s",
        claims["sid"],
    )


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


# Every ApiClient made during the current test, for the secrets check at teardown
# (conftest's no_secrets_in_responses empties it after each test).
clients_made = []

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
        clients_made.append(self)

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
            remember_issued_secrets(parsed)
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

    async def send_all(self, frames):
        """Write every frame at once, as a client that does not wait for answers."""
        await asyncio.gather(*(self.conn.write_message(json.dumps(f)) for f in frames))

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


# -- Rooms and messages ------------------------------------------------------


async def room_with(api, members=1):
    """A new room, its owner and ``members`` other members (all prime, joins are free)."""
    owner = await api.user(prime=True)
    room = await api.room(owner)
    others = []
    for _ in range(members):
        user = await api.user(prime=True)
        assert (await api.join(user, room["roomId"])).status == 200
        others.append(user)
    return room["roomId"], owner, others


async def room_members(api, members):
    """A new room of ``members`` prime members, its owner first: (roomId, [users])."""
    room_id, owner, others = await room_with(api, members - 1)
    return room_id, [owner, *others]


async def send(api, user, room_id, content="hello", **extra):
    """POST /api/messages as ``user``; returns the Response."""
    return await api.post(
        "/api/messages", {"roomId": room_id, "content": content, **extra}, token=user.token
    )
