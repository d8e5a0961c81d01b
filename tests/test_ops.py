"""The ops command line, run as an operator would: ``python server.py COMMAND``.

This module works on a database of its own (``database`` is overridden
below), since it corrupts rows on purpose to see ``check-ledger`` find them.
"""

import dataclasses
import os
import secrets
import subprocess
import sys
import warnings

import pymysql
import pytest

import chat
from chat.db import migrate
from helpers import ROOT, SCHEMA_DIR, TEST_SECRET, mysql_connect, query
from procs import RedisServer, database_url, free_port


@pytest.fixture(scope="module")
def database(server_url):
    """This module's own migrated database, dropped afterwards."""
    url = dataclasses.replace(server_url, database="chat_ops_" + secrets.token_hex(4))
    migrate.migrate(url, SCHEMA_DIR, create_database=True)
    yield url
    drop(url)


def drop(url):
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cur, warnings.catch_warnings():
            warnings.simplefilter("ignore", pymysql.Warning)
            cur.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
    finally:
        conn.close()


def ops(*args, database=None, **settings):
    """``python server.py *args`` with the settings given; returns (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env["CHAT_JWT_SECRET"] = TEST_SECRET
    env["CHAT_ADMIN_KEY"] = "ops-test-admin-key-" + "k" * 16
    if database is not None:
        env["CHAT_DATABASE_URL"] = database_url(database)
    for name, value in settings.items():
        env["CHAT_" + name.upper()] = str(value)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "server.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    return done.returncode, done.stdout, done.stderr


def schema_names():
    return [filename for _, filename, _ in migrate.schema_files(SCHEMA_DIR)]


def test_help_lists_the_commands():
    code, out, _ = ops("--help")
    assert code == 0
    for command in ("migrate", "status", "check-ledger", "--database_url", "CHAT_REDIS_URL"):
        assert command in out
    code, _, err = ops("no-such-command")
    assert code == 2 and "migrate, status, check-ledger" in err


def test_migrate_and_status_on_a_new_database(server_url):
    url = dataclasses.replace(server_url, database="chat_ops_" + secrets.token_hex(4))
    try:
        code, out, _ = ops("status", database=url)
        assert code == 1, out
        assert "database: ok" in out
        assert f"pending: {', '.join(schema_names())}" in out
        assert "redis: not configured" in out

        code, out, _ = ops("migrate", database=url)
        assert code == 0
        assert out.splitlines() == [f"applied {name}" for name in schema_names()] + [
            f"schema is up to date at version {len(schema_names())} "
            f"({url.user}@{url.host}:{url.port}/{url.database})"
        ]
        code, out, _ = ops("migrate", database=url)
        assert code == 0 and "applied" not in out

        code, out, _ = ops("status", database=url)
        assert code == 0, out
        last = schema_names()[-1].removesuffix(".sql")
        assert f"schema: version {len(schema_names())}: {last}" in out
        assert "pending: none" in out
    finally:
        drop(url)


def test_status_reports_what_does_not_answer(database):
    redis = RedisServer().start()
    try:
        code, out, _ = ops("status", database=database, redis_url=redis.url)
        assert code == 0 and "redis: ok" in out, out
        redis.stop()
        code, out, _ = ops("status", database=database, redis_url=redis.url)
        assert code == 1 and "redis: down" in out, out
    finally:
        redis.close()
    nowhere = dataclasses.replace(database, port=free_port())
    code, out, _ = ops("status", database=nowhere)
    assert code == 1
    assert f"database: down (root@127.0.0.1:{nowhere.port}/" in out


@pytest.mark.gen_test
async def test_check_ledger_finds_every_kind_of_mismatch(api, database):
    # Real traffic: coins granted at sign-up, paid joins, a full room.
    owner = await api.user(prime=True)
    rooms = [await api.room(owner) for _ in range(2)]
    payer = await api.user(coins=400)
    for room in rooms:
        assert (await api.join(payer, room["roomId"])).status == 200
    full = rooms[1]
    for _ in range(4):
        assert (await api.join(await api.user(prime=True), full["roomId"])).status == 200
    outsider = await api.user(prime=True)

    code, out, _ = ops("check-ledger", database=database)
    assert (code, out.splitlines()[-1]) == (
        0,
        "check-ledger: 7 balances and 2 rooms checked, all consistent",
    ), out

    sql = mysql_connect(database, database.database)
    try:
        query(
            sql, "UPDATE users SET avail_coins = avail_coins + 7 WHERE user_id = %s", payer.user_id
        )
        query(sql, "UPDATE rooms SET member_count = 0 WHERE room_id = %s", rooms[0]["roomId"])
        # A seventh member written behind the server's back.
        query(
            sql,
            "INSERT INTO room_members (room_id, user_id, charged, joined_at) "
            "VALUES (%s, %s, 0, UTC_TIMESTAMP(3))",
            full["roomId"],
            outsider.user_id,
        )
    finally:
        sql.close()

    code, out, _ = ops("check-ledger", database=database)
    assert code == 1
    assert sorted(out.splitlines()[:-1]) == sorted(
        [
            f"MISMATCH balance: user {payer.user_id} has 257 coins, its ledger adds up to 250",
            f"MISMATCH members: room {rooms[0]['roomId']} counts 0 members, "
            "it has 2 membership rows",
            f"MISMATCH members: room {full['roomId']} counts 6 members, it has 7 membership rows",
            f"MISMATCH capacity: room {full['roomId']} has 7 members, capacity 6",
        ]
    )
    assert out.splitlines()[-1] == "check-ledger: 4 mismatches in 7 balances and 2 rooms"


def test_a_command_on_an_unreachable_database_fails_in_one_line(database):
    nowhere = dataclasses.replace(database, port=free_port())
    for command in ("migrate", "check-ledger"):
        code, out, err = ops(command, database=nowhere)
        assert code == 1
        assert err.strip().count("\n") == 0 and "Can't connect" in err, err
        assert "Traceback" not in err


# --- health -------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_health_names_the_release_the_schema_and_a_missing_broker(api):
    resp = await api.get("/api/health")
    assert resp.status == 200
    assert resp.body == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "not_configured"},
        "version": chat.__version__,
        "schemaVersion": len(schema_names()),
    }


@pytest.mark.gen_test
async def test_health_says_broker_ok_with_redis(server_procs, redis_url):
    server = server_procs(redis_url=redis_url)
    resp = await server.api.get("/api/health")
    assert resp.status == 200 and resp.body["checks"] == {"database": "ok", "broker": "ok"}
