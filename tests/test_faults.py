"""Database faults, against a mariadbd of the test's own (tests/procs.py).

Each test starts its own MariaDB on a free port and a server.py on it, then
freezes (SIGSTOP), kills or starves that database while real clients talk
to the server over HTTP and WebSockets. The contract: requests that need the
database fail within about 2 s with ``503 unavailable`` (Retry-After, the
JSON error shape), ``/api/health`` says 503 as fast, one warning is logged
when the database goes away and one when it returns (no traceback per
request), the server recovers by itself, and nothing acknowledged is lost.
"""

import asyncio
import signal
import sys
import time

import pymysql
import pytest

import settings as settings_module
from helpers import TEST_SECRET, ApiClient, room_members, send
from procs import ROOT, MariaDBServer, ServerProcess, free_port

# The contract's bound, plus room for a loaded CI machine's scheduling.
BOUND = 2.0
SLACK = 1.0


@pytest.fixture
def mariadb():
    server = MariaDBServer().start()
    yield server
    server.close()


@pytest.fixture
def servers():
    """``servers(db_url, **settings)``: a started server.py; stopped (and its log checked) after."""
    started = []

    def start(db_url, wait=True, **settings):
        server = ServerProcess(db_url, TEST_SECRET, **settings)
        started.append(server)
        if wait:
            server.start()
        server.api = ApiClient(server.base_url)
        return server

    yield start
    logs = [server.close() for server in started]
    for server in started:
        server.api.close()
    failures = [log for log in logs if "Traceback" in log]
    assert not failures, "a server logged a traceback:\n" + "\n".join(failures)


async def eventually(check, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.1)


async def timed(coro):
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


def assert_unavailable(resp):
    assert resp.status == 503, (resp.status, resp.body)
    assert resp.body["error"]["code"] == "unavailable", resp.body
    assert int(resp.headers["Retry-After"]) >= 1


@pytest.mark.gen_test(timeout=90)
async def test_a_frozen_database_is_503_within_2_s_and_the_server_recovers(mariadb, servers):
    server = servers(mariadb.url("chat_frozen"))
    api = server.api
    room_id, (user, _) = await room_members(api, 2)
    assert (await send(api, user, room_id, "before")).status == 201

    mariadb.freeze()
    try:
        # Many at once: none may wait for the whole freeze.
        results = await asyncio.gather(
            *(timed(send(api, user, room_id, f"frozen {i}")) for i in range(20)),
            timed(api.get(f"/api/profile/{user.user_id}", token=user.token)),
            timed(api.get("/api/health")),
        )
        for resp, took in results[:-1]:
            assert_unavailable(resp)
            assert took < BOUND + SLACK, took
        health, took = results[-1]
        assert health.status == 503 and health.body["checks"]["database"] == "down"
        assert took < BOUND + SLACK, took
        # Once it is known to be down, the answer is immediate.
        await eventually(lambda: _logged(server, "does not answer"), what="outage noticed")
        resp, took = await timed(send(api, user, room_id, "still frozen"))
        assert_unavailable(resp)
        assert took < 0.5, took
        health, took = await timed(api.get("/api/health"))
        assert health.status == 503 and health.body["checks"]["database"] == "down"
        assert took < 0.5, took
    finally:
        mariadb.thaw()

    await eventually(lambda: _status(api, "/api/health", 200), what="health back to 200")
    assert (await send(api, user, room_id, "after")).status == 201
    log = server.log()
    assert log.count("does not answer") == 1, log
    assert log.count("answers again") == 1, log
    assert "Traceback" not in log


@pytest.mark.gen_test(timeout=120)
async def test_database_killed_and_restarted_during_traffic_loses_nothing_acknowledged(
    mariadb, servers
):
    server = servers(mariadb.url("chat_killed"))
    api = server.api
    room_id, users = await room_members(api, 4)
    acked = {}  # clientMsgId -> seq
    statuses = []
    stop = asyncio.Event()

    async def sender(user, index):
        n = 0
        while not stop.is_set():
            client_id = f"{user.user_id}-{n}"
            # Retry the same clientMsgId until it is acknowledged.
            while True:
                resp = await send(api, user, room_id, f"m {client_id}", clientMsgId=client_id)
                statuses.append(resp.status)
                if resp.status in (200, 201):
                    acked[client_id] = resp.body["message"]["seq"]
                    break
                assert_unavailable(resp)
                await asyncio.sleep(0.05)
            n += 1

    senders = [asyncio.ensure_future(sender(u, i)) for i, u in enumerate(users)]
    await asyncio.sleep(0.5)
    mariadb.kill()
    await eventually(lambda: _status(api, "/api/health", 503), 5, what="health 503")
    await asyncio.sleep(1.0)  # traffic against a dead database
    mariadb.start()
    await eventually(lambda: _status(api, "/api/health", 200), 20, what="health back")
    await asyncio.sleep(0.5)  # traffic after recovery
    stop.set()
    await asyncio.gather(*senders)

    assert 503 in statuses and 500 not in statuses, sorted(set(statuses))
    conn = mariadb.connect("chat_killed")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT seq, client_msg_id FROM messages WHERE room_id = %s ORDER BY seq",
                (room_id,),
            )
            stored = cur.fetchall()
    finally:
        conn.close()
    seqs = [seq for seq, _ in stored]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no repeat
    by_client = {client_id: seq for seq, client_id in stored}
    assert len(by_client) == len(stored)  # every clientMsgId stored once
    for client_id, seq in acked.items():
        assert by_client.get(client_id) == seq, client_id  # nothing acknowledged lost
    log = server.log()
    assert log.count("does not answer") == 1 and log.count("answers again") == 1, log


@pytest.mark.gen_test(timeout=90)
async def test_connections_refused_by_the_database_wait_for_pooled_ones(mariadb, servers):
    server = servers(mariadb.url("chat_full"), db_pool_size=8)
    api = server.api
    users = [await api.user() for _ in range(4)]
    # The server holds a few connections now; nobody may open more.
    held = []
    admin = mariadb.connect()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST")
            (count,) = cur.fetchone()
            cur.execute(f"SET GLOBAL max_connections = {count}")
        while True:
            try:
                held.append(mariadb.connect())
            except pymysql.err.OperationalError:
                break
        results = await asyncio.gather(
            *(
                timed(api.get(f"/api/profile/{u.user_id}", token=u.token))
                for u in users
                for _ in range(25)
            )
        )
        statuses = [resp.status for resp, _ in results]
        assert 500 not in statuses
        assert statuses.count(200) >= len(statuses) * 0.9, statuses
        for resp, took in results:
            if resp.status == 503:
                assert resp.body["error"]["code"] in ("unavailable", "overloaded")
            assert took < BOUND + SLACK
        assert (await api.get("/api/health")).status == 200
    finally:
        for conn in held:
            conn.close()
        with admin.cursor() as cur:
            cur.execute("SET GLOBAL max_connections = 200")
        admin.close()


@pytest.mark.gen_test(timeout=60)
async def test_start_up_waits_for_the_database_then_gives_up_in_one_line(servers):
    port = free_port()  # nothing listens there
    db_url = settings_module.DatabaseUrl("127.0.0.1", port, "root", "s3cret-pw", "chat_absent")
    server = servers(db_url, wait=False, db_start_wait=1)
    started = time.monotonic()
    server.spawn()
    code = await asyncio.get_running_loop().run_in_executor(None, server.wait, 20)
    assert code == 1
    assert time.monotonic() - started < 10
    log = server.log()
    assert "s3cret-pw" not in log
    assert f"mysql://root@127.0.0.1:{port}/chat_absent" in log
    assert "CHAT_DATABASE_URL" in log
    assert "Traceback" not in log
    assert len(log.strip().splitlines()) <= 3, log


@pytest.mark.gen_test(timeout=90)
async def test_start_up_waits_for_a_database_that_comes_up(mariadb, servers):
    mariadb.kill()
    server = servers(mariadb.url("chat_late"), wait=False, db_start_wait=30)
    starting = asyncio.get_running_loop().run_in_executor(None, server.start, 40)
    # Wait for the line rather than a fixed time: start-up is slow on a loaded machine.
    for _ in range(300):
        if "unreachable" in server.log():
            break
        await asyncio.sleep(0.05)
    assert "unreachable" in server.log()
    mariadb.start()
    await starting
    assert (await server.api.get("/api/health")).status == 200
    assert server.log().count("unreachable") == 1


@pytest.mark.gen_test(timeout=60)
async def test_sigterm_with_a_blocked_transaction_exits_within_the_drain_and_rolls_it_back(
    mariadb, servers
):
    drain = 2.0
    server = servers(mariadb.url("chat_term"), drain_seconds=drain)
    api = server.api
    room_id, (user, other) = await room_members(api, 2)
    free_room, (free_user, _) = await room_members(api, 2)
    locker = mariadb.connect("chat_term")
    locker.autocommit(False)
    sock = None
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT room_id FROM rooms WHERE room_id = %s FOR UPDATE", (room_id,))
        blocked = asyncio.ensure_future(
            send(api, user, room_id, "blocked", clientMsgId="blocked-1")
        )
        # A WebSocket sending to a free room as the signal arrives: every frame
        # it had sent gets its answer before the 1001 close.
        sock = await api.socket(free_user)
        for i in range(20):
            await sock.send(
                {
                    "type": "message",
                    "roomId": free_room,
                    "content": f"ws {i}",
                    "clientMsgId": f"ws-{i}",
                    "ref": str(i),
                }
            )
        await asyncio.sleep(0.3)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, server.wait, drain + 10)
        took = time.monotonic() - started
        assert code == 0
        assert took < drain + 2 + SLACK, took
        resp = await blocked
        assert resp.status in (503, 599), (resp.status, resp.body)
        close_code, frames = await sock.closed()
        assert close_code == 1001
        answered = {f["ref"]: f for f in frames if f.get("ref") is not None}
        assert sorted(answered, key=int) == [str(i) for i in range(20)]
        acked = {f["message"]["clientMsgId"] for f in answered.values() if f["type"] == "ack"}
    finally:
        locker.rollback()
        locker.close()
    await asyncio.sleep(1.5)  # anything that could still commit, would have
    conn = mariadb.connect("chat_term")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT client_msg_id FROM messages WHERE room_id = %s", (room_id,))
            assert cur.fetchall() == ()  # told it failed; not stored
            cur.execute("SELECT client_msg_id FROM messages WHERE room_id = %s", (free_room,))
            assert {row[0] for row in cur.fetchall()} == acked
    finally:
        conn.close()
    assert "rolled back" in server.log()


def _logged(server, text):
    async def check():
        return text in server.log()

    return check()


async def _status(api, path, status):
    resp = await api.get(path)
    return resp.status == status


@pytest.mark.gen_test(timeout=120)
async def test_server_killed_mid_traffic_loses_nothing_acknowledged(mariadb, servers):
    db_url = mariadb.url("chat_crash")
    first = servers(db_url)
    api = first.api
    rooms = [await room_members(api, 2) for _ in range(3)]
    owner_rooms = [room_id for room_id, _ in rooms]
    # Non-prime joiners whose free join is used up: each further room costs 150 coins.
    joiners = [await api.user(coins=300) for _ in range(8)]
    free_rooms = [(await room_members(api, 1))[0] for _ in range(2)]
    for i, user in enumerate(joiners):  # the first room of each is free
        assert (await api.join(user, free_rooms[i % 2])).status == 200
    acked, joined = {}, set()
    statuses = []
    state = {"api": api}

    async def sender(user, room_id, name):
        for n in range(1000):
            client_id = f"{name}-{n}"
            while True:  # the same clientMsgId until acknowledged, across the restart
                try:
                    resp = await send(
                        state["api"], user, room_id, f"m {client_id}", clientMsgId=client_id
                    )
                except Exception:
                    resp = None
                if resp is not None and resp.status in (200, 201):
                    acked[client_id] = (room_id, resp.body["message"]["seq"])
                    break
                statuses.append(None if resp is None else resp.status)
                if state.get("done"):
                    return
                await asyncio.sleep(0.05)
            if state.get("done"):
                return

    async def joiner(user, room_id):
        while not state.get("done"):
            try:
                resp = await state["api"].join(user, room_id)
            except Exception:
                resp = None
            if resp is not None and resp.status in (200, 402, 409):
                if resp.status == 200:
                    joined.add((room_id, user.user_id))
                return
            await asyncio.sleep(0.05)

    tasks = [
        asyncio.ensure_future(sender(users[i], room_id, f"{room_id}.{i}"))
        for room_id, users in rooms
        for i in range(2)
    ]
    tasks += [
        asyncio.ensure_future(joiner(user, owner_rooms[(i + k) % 3]))
        for i, user in enumerate(joiners)
        for k in range(2)
    ]
    await asyncio.sleep(0.4)
    first.signal(signal.SIGKILL)
    await asyncio.get_running_loop().run_in_executor(None, first.wait, 10)
    second = servers(db_url)  # a new process on the same database
    state["api"] = second.api
    await asyncio.sleep(1.0)
    state["done"] = True
    await asyncio.gather(*tasks)

    conn = mariadb.connect("chat_crash")
    try:
        with conn.cursor() as cur:
            for room_id in owner_rooms:
                cur.execute(
                    "SELECT seq, client_msg_id FROM messages WHERE room_id = %s ORDER BY seq",
                    (room_id,),
                )
                stored = cur.fetchall()
                assert [s for s, _ in stored] == list(range(1, len(stored) + 1))
                ids = [c for _, c in stored]
                assert len(ids) == len(set(ids))  # retries stored once
                for client_id, (acked_room, seq) in acked.items():
                    if acked_room == room_id:
                        assert (seq, client_id) in stored, client_id
                cur.execute(
                    "SELECT COUNT(*), (SELECT member_count FROM rooms WHERE room_id = %s) "
                    "FROM room_members WHERE room_id = %s",
                    (room_id, room_id),
                )
                members, counted = cur.fetchone()
                assert members == counted <= 6
            for room_id, user_id in joined:
                cur.execute(
                    "SELECT 1 FROM room_members WHERE room_id = %s AND user_id = %s",
                    (room_id, user_id),
                )
                assert cur.fetchone(), (room_id, user_id)
    finally:
        conn.close()
    assert acked and joined
    check = await asyncio.create_subprocess_exec(
        sys.executable,
        "server.py",
        "check-ledger",
        cwd=ROOT,
        env=second.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await check.communicate()
    assert check.returncode == 0, out.decode()
