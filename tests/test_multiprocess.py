"""Several server.py processes on one database and one Redis, as in production.

Each test starts real processes (tests/procs.py) and talks to them over real
HTTP and WebSockets; a test that restarts Redis uses a redis-server of its own.
"""

import asyncio
import json
import signal
import time

import pytest
import redis
from tornado import httpclient, websocket

from helpers import query


class Listener:
    """One client WebSocket: send frames, read frames with a timeout."""

    def __init__(self, conn):
        self.conn = conn
        self._next = None
        self.seqs = []  # seq of every message frame read, in order
        self.contents = {}  # seq -> content

    @classmethod
    async def open(cls, server, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = httpclient.HTTPRequest(server.api.ws_url(), headers=headers)
        listener = cls(await websocket.websocket_connect(request))
        server.sockets.append(listener.conn)  # closed at teardown whatever happens
        if token:
            assert (await listener.read())["type"] == "ready"
        return listener

    def send(self, **frame):
        self.conn.write_message(json.dumps(frame))

    async def read(self, timeout=10):
        """The next frame as a dict; None once the socket is closed; TimeoutError if none."""
        if self._next is None:
            self._next = asyncio.ensure_future(self.conn.read_message())
        done, _ = await asyncio.wait({self._next}, timeout=timeout)
        if not done:
            raise TimeoutError(f"no frame within {timeout} s")
        raw, self._next = self._next.result(), None
        return None if raw is None else json.loads(raw)

    async def subscribe(self, room_id, after=None):
        frame = {"type": "subscribe", "roomId": room_id}
        if after is not None:
            frame["after"] = after
        self.send(**frame)
        while True:
            reply = await self.read()
            if reply["type"] == "subscribed":
                return reply
            self._take(reply)

    async def messages(self, count, timeout=30):
        """Read until ``count`` message frames have come in all; returns every one's seq."""
        deadline = time.monotonic() + timeout
        while len(self.seqs) < count:
            self._take(await self.read(max(0.01, deadline - time.monotonic())))
        return self.seqs

    async def quiet(self, seconds=0.5):
        """True when no message frame arrives for ``seconds``."""
        try:
            while True:
                frame = await self.read(seconds)
                if frame is None or frame["type"] == "message":
                    self._take(frame)
                    return False
        except TimeoutError:
            return True

    def _take(self, frame):
        assert frame is not None, f"socket closed ({self.conn.close_code})"
        if frame["type"] == "message":
            self.seqs.append(frame["message"]["seq"])
            self.contents[frame["message"]["seq"]] = frame["message"]["content"]

    def close(self):
        self.conn.close()


async def room_with(first, second, members):
    """A room created on ``first``, ``members`` more prime members joined on ``second``."""
    owner = await first.api.user(prime=True)
    room = await first.api.room(owner)
    users = [owner]
    for _ in range(members):
        user = await second.api.user(prime=True)
        assert (await second.api.join(user, room["roomId"])).status == 200
        users.append(user)
    return room["roomId"], users


async def post(server, user, room_id, content):
    return await server.api.post(
        "/api/messages", {"roomId": room_id, "content": content}, token=user.token
    )


async def broker_ok(server):
    resp = await server.api.get("/api/health")
    return resp.status == 200 and resp.body["checks"]["broker"] == "ok"


async def broker_down(server):
    return not await broker_ok(server)


async def eventually(check, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=120)
async def test_two_processes_deliver_every_message_once_in_order(server_procs, redis_url, sql):
    a = server_procs(redis_url=redis_url)
    b = server_procs(redis_url=redis_url)
    room_id, users = await room_with(a, b, 3)
    listeners = [
        await Listener.open(server, user.token)
        for server, user in zip((a, b, a, b), users, strict=True)
    ]
    for listener in listeners:
        assert (await listener.subscribe(room_id))["lastSeq"] == 0

    results = await asyncio.gather(
        *(post((a, b)[i % 2], users[i % 4], room_id, f"message {i}") for i in range(200))
    )
    assert [r.status for r in results] == [201] * 200
    sent = {r.body["message"]["seq"]: r.body["message"]["content"] for r in results}
    assert sorted(sent) == list(range(1, 201))

    for listener in listeners:
        assert await listener.messages(200) == list(range(1, 201))
        assert listener.contents == sent
    for listener in listeners:
        assert await listener.quiet()
        listener.close()
    stored = query(sql, "SELECT seq FROM messages WHERE room_id = %s ORDER BY seq", room_id)
    assert [r["seq"] for r in stored] == list(range(1, 201))


@pytest.mark.gen_test(timeout=120)
async def test_redis_restart_during_traffic_loses_nothing_acknowledged(
    private_redis, server_procs, sql
):
    a = server_procs(redis_url=private_redis.url)
    b = server_procs(redis_url=private_redis.url)
    room_id, users = await room_with(a, b, 3)
    listeners = [
        await Listener.open(server, user.token)
        for server, user in zip((a, b, a, b), users, strict=True)
    ]
    for listener in listeners:
        await listener.subscribe(room_id)

    acked = {}

    async def traffic(start, count):
        """Two senders at a time, alternating processes, as fast as answered."""
        for i in range(start, start + count, 2):
            results = await asyncio.gather(
                post(a, users[i % 4], room_id, f"m{i}"),
                post(b, users[(i + 1) % 4], room_id, f"m{i + 1}"),
            )
            for resp in results:
                assert resp.status == 201, resp.body  # stored and answered, Redis or not
                acked[resp.body["message"]["seq"]] = resp.body["message"]["content"]

    await traffic(0, 40)
    private_redis.stop()
    await eventually(lambda: broker_down(a), what="process A sees Redis down")
    await traffic(40, 40)  # while Redis is down
    private_redis.start()
    await traffic(80, 20)  # while the processes reconnect
    await eventually(lambda: broker_ok(a), what="A reconnected")
    await eventually(lambda: broker_ok(b), what="B reconnected")
    assert "Redis reconnected" in a.log() and "Redis reconnected" in b.log()

    assert sorted(acked) == list(range(1, 101))
    stored = query(
        sql, "SELECT seq, content FROM messages WHERE room_id = %s ORDER BY seq", room_id
    )
    assert {r["seq"]: r["content"] for r in stored} == acked

    for listener in listeners:
        # Whatever came live came in order, without a gap or a repeat...
        while not await listener.quiet():
            pass
        seen = list(listener.seqs)
        assert seen == list(range(1, len(seen) + 1))
        # ...and resuming after the last one seen brings the rest.
        reply = await listener.subscribe(room_id, after=len(seen))
        assert reply["lastSeq"] <= 100
        assert await listener.messages(100, timeout=20) == list(range(1, 101)), seen
        assert listener.contents == acked
        assert await listener.quiet(), (seen, listener.seqs)
        listener.close()


@pytest.mark.gen_test(timeout=60)
async def test_logout_on_one_process_closes_the_sockets_on_the_other(server_procs, redis_url):
    a = server_procs(redis_url=redis_url)
    b = server_procs(redis_url=redis_url)
    user = await a.api.user()
    second = await a.api.post("/api/login", {"userId": user.user_id, "password": user.password})
    on_b = await Listener.open(b, user.token)
    on_a = await Listener.open(a, user.token)
    other_token = await Listener.open(b, second.body["token"])

    assert (await a.api.post("/api/logout", token=user.token)).status == 204
    assert await on_b.read() is None and on_b.conn.close_code == 4001
    assert await on_a.read() is None and on_a.conn.close_code == 4001
    # B heard of the logout (it closed the socket): its HTTP API refuses the token too,
    # although B had checked that token before.
    refused = await b.api.get(f"/api/profile/{user.user_id}", token=user.token)
    assert (refused.status, refused.body["error"]["code"]) == (401, "unauthorized")
    # Only that token's sockets: the same user's other login stays connected.
    other_token.send(type="ping", ref="p")
    assert await other_token.read() == {"type": "pong", "ref": "p"}
    other_token.close()


@pytest.mark.gen_test(timeout=60)
async def test_sigterm_closes_sockets_with_1001_and_exits_0(server_procs, redis_url):
    server = server_procs(redis_url=redis_url)
    owner = await server.api.user(prime=True)
    room = await server.api.room(owner)
    subscribed = await Listener.open(server, owner.token)
    await subscribed.subscribe(room["roomId"])
    unauthenticated = await Listener.open(server)

    started = time.monotonic()
    server.signal(signal.SIGTERM)
    for listener in (subscribed, unauthenticated):
        assert await listener.read(5) is None
        assert listener.conn.close_code == 1001
    code = await asyncio.get_running_loop().run_in_executor(None, server.wait, 10)
    assert code == 0
    assert time.monotonic() - started < 5
    log = server.log()
    assert "closing 2 WebSockets" in log and "all WebSockets closed" in log


@pytest.mark.gen_test(timeout=60)
async def test_without_redis_fan_out_stays_in_the_process(server_procs):
    a = server_procs()
    b = server_procs()
    room_id, users = await room_with(a, b, 1)
    on_a = await Listener.open(a, users[0].token)
    on_b = await Listener.open(b, users[1].token)
    await on_a.subscribe(room_id)
    await on_b.subscribe(room_id)
    assert (await post(a, users[1], room_id, "hi")).status == 201
    assert await on_a.messages(1) == [1]
    assert await on_b.quiet(1.0)
    assert "fan-out: in this process only" in b.log()
    on_a.close()
    on_b.close()


@pytest.mark.gen_test(timeout=120)
async def test_subscribers_catch_up_by_resuming_after_a_redis_outage(private_redis, server_procs):
    a = server_procs(redis_url=private_redis.url)
    b = server_procs(redis_url=private_redis.url)
    room_id, users = await room_with(a, b, 3)
    # One client on each process stays; one on each goes away and comes back.
    staying = [await Listener.open(a, users[0].token), await Listener.open(b, users[1].token)]
    leaving = [await Listener.open(a, users[2].token), await Listener.open(b, users[3].token)]
    for listener in staying + leaving:
        await listener.subscribe(room_id)
    for i in range(10):
        assert (await post((a, b)[i % 2], users[i % 4], room_id, f"m{i}")).status == 201
    for listener in staying + leaving:
        assert await listener.messages(10) == list(range(1, 11))
    for listener in leaving:
        listener.close()

    private_redis.stop()
    await eventually(lambda: broker_down(a), what="process A sees Redis down")
    await eventually(lambda: broker_down(b), what="process B sees Redis down")
    for i in range(10, 30):
        assert (await post((a, b)[i % 2], users[i % 4], room_id, f"m{i}")).status == 201
    private_redis.start()
    await eventually(lambda: broker_ok(a), what="A reconnected")
    await eventually(lambda: broker_ok(b), what="B reconnected")

    for server, user in ((a, users[2]), (b, users[3])):
        back = await Listener.open(server, user.token)
        reply = await back.subscribe(room_id, after=10)
        assert reply["lastSeq"] <= 30
        assert await back.messages(20) == list(range(11, 31))
        assert await back.quiet()
        back.close()
    for listener in staying:
        while not await listener.quiet():
            pass
        seen = list(listener.seqs)
        assert seen == list(range(1, len(seen) + 1))  # in order, no gap, no repeat
        await listener.subscribe(room_id, after=len(seen))
        assert await listener.messages(30) == list(range(1, 31)), seen
        assert await listener.quiet()
        listener.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_process_that_missed_messages_catches_up(private_redis, server_procs):
    # B reaches Redis as its own user, so that B alone can be cut off.
    with redis.Redis.from_url(private_redis.url) as r:
        r.acl_setuser(
            "proc_b",
            enabled=True,
            passwords=["+b-secret"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
    b_url = private_redis.url.replace("redis://", "redis://proc_b:b-secret@")
    a = server_procs(redis_url=private_redis.url)
    b = server_procs(redis_url=b_url)
    room_id, users = await room_with(a, b, 2)
    staying = await Listener.open(b, users[1].token)
    leaving = await Listener.open(b, users[2].token)
    for listener in (staying, leaving):
        await listener.subscribe(room_id)
    assert (await post(a, users[0], room_id, "m1")).status == 201
    for listener in (staying, leaving):
        assert await listener.messages(1) == [1]
    leaving.close()

    with redis.Redis.from_url(private_redis.url) as r:
        r.acl_setuser("proc_b", enabled=False)
        r.client_kill_filter(user="proc_b")
    await eventually(lambda: broker_down(b), what="B cut off")
    for n in (2, 3):  # stored through A, fanned out to nobody on B
        assert (await post(a, users[0], room_id, f"m{n}")).status == 201
    with redis.Redis.from_url(private_redis.url) as r:
        r.acl_setuser("proc_b", enabled=True)
    await eventually(lambda: broker_ok(b), what="B back")
    assert "b-secret" not in b.log()

    # The socket that stayed gets them without waiting for a next message...
    assert await staying.messages(3, timeout=5) == [1, 2, 3]
    # ...and a client that comes back resumes after the last seq it saw.
    back = await Listener.open(b, users[2].token)
    await back.subscribe(room_id, after=1)
    assert await back.messages(2) == [2, 3]
    for listener in (staying, back):
        assert await listener.quiet(), listener.seqs


@pytest.mark.gen_test(timeout=120)
async def test_joins_through_two_processes_never_overbook_or_overcharge(server_procs, sql):
    a = server_procs()
    b = server_procs()
    owner = await a.api.user(prime=True)
    rooms = [await a.api.room(owner, name=f"J{i}") for i in range(3)]
    users = [await (a, b)[i % 2].api.user(coins=150) for i in range(12)]
    for i, user in enumerate(users):  # everyone's free join goes to a room of their own
        own = await (a, b)[i % 2].api.room(owner, name=f"own {i}")
        assert (await (a, b)[i % 2].api.join(user, own["roomId"])).status == 200
    # 12 users, each trying all 3 rooms (15 free seats) with coins for one
    # paid join, through both processes at once.
    tries = [
        ((a, b)[(i + k) % 2], user, room["roomId"])
        for i, user in enumerate(users)
        for k, room in enumerate(rooms)
    ]
    results = await asyncio.gather(
        *(server.api.join(user, room_id) for server, user, room_id in tries)
    )
    paid = [r for r in results if r.status == 200]
    assert len(paid) == 12 and all(r.body["charged"] == 150 for r in paid)
    assert {r.status for r in results} <= {200, 402, 409}
    for room in rooms:
        (row,) = query(
            sql,
            "SELECT member_count, (SELECT COUNT(*) FROM room_members m "
            "WHERE m.room_id = r.room_id) AS n FROM rooms r WHERE room_id = %s",
            room["roomId"],
        )
        assert row["member_count"] == row["n"] <= 6
    for user in users:
        (row,) = query(
            sql,
            "SELECT avail_coins, (SELECT SUM(delta) FROM coin_ledger l "
            "WHERE l.user_id = u.user_id) AS total FROM users u "
            "WHERE user_id = %s",
            user.user_id,
        )
        assert row["avail_coins"] == row["total"] == 0
