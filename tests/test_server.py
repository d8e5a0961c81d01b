"""server.py as a process: start-up, health with and without Redis, graceful shutdown."""

import asyncio
import inspect
import secrets
import signal
import socket
import time

import pytest
from tornado import httpclient

from helpers import PASSWORD, query, revoke_behind_the_broker


async def eventually(check, timeout=15, what="condition"):
    """Wait until ``check()`` (a value or an awaitable) is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)


async def broker_state(server):
    resp = await server.api.get("/api/health")
    assert resp.status == 200, resp.body
    return resp.body["checks"]["broker"]


async def _is(server, state):
    return await broker_state(server) == state


def refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.gen_test
async def test_health_reports_redis_down_and_back(private_redis, server_procs):
    server = server_procs(redis_url=private_redis.url)
    assert await broker_state(server) == "ok"

    private_redis.stop()
    await eventually(lambda: _is(server, "down"), what="broker down")
    resp = await server.api.get("/api/health")
    assert resp.body["status"] == "ok"
    assert resp.body["checks"] == {"database": "ok", "broker": "down"}
    # Requests that need no fan-out go on as before.
    user = await server.api.user()
    assert (await server.api.get(f"/api/profile/{user.user_id}", token=user.token)).status == 200
    await asyncio.sleep(1.5)  # several reconnect attempts, one warning

    private_redis.start()
    await eventually(lambda: _is(server, "ok"), what="broker back")
    log = server.log()
    assert log.count("Redis unreachable") == 1
    assert "Redis reconnected" in log


@pytest.mark.gen_test
async def test_starts_while_redis_is_down(private_redis, server_procs):
    private_redis.stop()
    server = server_procs(redis_url=private_redis.url)
    assert await broker_state(server) == "down"
    private_redis.start()
    await eventually(lambda: _is(server, "ok"), what="broker connected")


@pytest.mark.gen_test
async def test_sigterm_lets_requests_in_flight_finish(server_procs):
    # A costly hash keeps the login in flight while the signal arrives.
    server = server_procs(bcrypt_rounds=15)
    digits = str(secrets.randbelow(10**8)).zfill(8)
    user_id = "slow_" + digits
    created = await server.api.post(
        "/api/create",
        {
            "userId": user_id,
            "deviceId": "d",
            "name": "Slow",
            "phone": "+1555" + digits,
            "password": PASSWORD,
        },
    )
    assert created.status == 201, created.body
    login = asyncio.ensure_future(
        server.api.post("/api/login", {"userId": user_id, "password": PASSWORD})
    )
    await asyncio.sleep(0.3)
    assert not login.done()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    await eventually(lambda: refuses_connections(server.port), 5, what="listening socket closed")
    assert not login.done()  # still being answered, yet no new connection is taken
    resp = await login
    assert resp.status == 200 and resp.body["token"]
    assert await asyncio.get_running_loop().run_in_executor(None, server.wait, 15) == 0
    assert time.monotonic() - started < 12
    log = server.log()
    for step in (
        "SIGTERM received",
        "no longer accepting connections",
        "waiting for 1 requests in flight",
        "no requests in flight",
        "broker closed",
        "database pool closed",
        "stopped",
    ):
        assert step in log, step


@pytest.mark.gen_test
async def test_sigint_with_idle_keepalive_connection_exits_promptly(server_procs):
    server = server_procs()
    # A kept-alive connection with no request on it holds nothing up.
    http = httpclient.AsyncHTTPClient(force_instance=True)
    try:
        resp = await http.fetch(server.base_url + "/api/health")
        assert resp.code == 200
        started = time.monotonic()
        server.signal(signal.SIGINT)
        code = await asyncio.get_running_loop().run_in_executor(None, server.wait, 10)
    finally:
        http.close()
    assert code == 0
    assert time.monotonic() - started < 3
    assert "SIGINT received" in server.log()


@pytest.mark.gen_test(timeout=60)
async def test_a_logout_lost_during_a_redis_outage_still_takes_effect(
    private_redis, server_procs, sql
):
    server = server_procs(redis_url=private_redis.url)
    user = await server.api.user()
    path = f"/api/profile/{user.user_id}"
    assert (await server.api.get(path, token=user.token)).status == 200

    private_redis.stop()
    await eventually(lambda: _is(server, "down"), what="broker down")
    # A logout served by another process while Redis was down: only the
    # database knows of it. The process had this token checked already.
    revoke_behind_the_broker(sql, user)
    resp = await server.api.get(path, token=user.token)
    assert (resp.status, resp.body["error"]["code"]) == (401, "unauthorized")
    private_redis.start()
    await eventually(lambda: _is(server, "ok"), what="broker back")
    assert (await server.api.get(path, token=user.token)).status == 401


@pytest.mark.gen_test
@pytest.mark.parametrize("behind_proxy, logged", [(0, "(127.0.0.1)"), (1, "(203.0.113.9)")])
async def test_proxy_headers_are_trusted_only_behind_a_proxy(server_procs, behind_proxy, logged):
    server = server_procs(behind_proxy=behind_proxy)
    resp = await server.api.get("/api/health", headers={"X-Real-IP": "203.0.113.9"})
    assert resp.status == 200
    await eventually(
        lambda: any(
            "GET /api/health 200 " in line and logged in line for line in server.log().splitlines()
        ),
        what="the access log line",
    )


@pytest.mark.gen_test(timeout=60)
async def test_a_process_holds_no_more_connections_than_its_pool_size(server_procs, sql, database):
    server = server_procs(db_pool_size=4)
    users = [await server.api.user() for _ in range(6)]
    owner = await server.api.user(prime=True)
    await asyncio.gather(
        *(
            server.api.get(f"/api/profile/{u.user_id}", token=u.token)
            for u in users
            for _ in range(5)
        ),
        *(server.api.room(owner, name=f"R{i}") for i in range(6)),
    )
    (row,) = query(
        sql,
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST "
        "WHERE DB = %s AND ID <> CONNECTION_ID()",
        database.database,
    )
    assert 2 <= row["n"] <= 4
