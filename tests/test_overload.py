"""Overload and stuck rooms, over real HTTP and WebSockets against the real database.

- A room whose row lock another transaction holds does not stall the messages
  and joins of any other room (the writers skip it and write its items apart),
  nor, held for long, another room whose items wait for its lock.
- Past the queueing-delay bound, new messages are refused at once with
  ``503 overloaded`` (HTTP: Retry-After; WebSocket: an ``error`` frame) and
  are not stored; everything acknowledged is.
- Out of file descriptors, the server pauses accepting (one warning) and
  serves the connections it has.
"""

import asyncio
import http.client
import socket
import time

import pytest

from helpers import mysql_connect, query, room_members, send
from procs import wait_until


@pytest.mark.gen_test(timeout=60)
async def test_a_locked_room_does_not_stall_other_rooms(api, sql):
    locked_id, (locked_owner, *_) = await room_members(api, 1)
    others = [await room_members(api, 2) for _ in range(4)]
    joiner = await api.user(prime=True)

    sql.begin()  # another client holds the room's row lock
    query(sql, "SELECT room_id FROM rooms WHERE room_id = %s FOR UPDATE", locked_id)
    try:
        stuck = asyncio.ensure_future(send(api, locked_owner, locked_id, "waits for the lock"))
        stuck_join = asyncio.ensure_future(api.join(joiner, locked_id))
        await asyncio.sleep(0.05)
        flowing = await asyncio.wait_for(
            asyncio.gather(
                *(
                    send(api, users[i % 2], room_id, f"flows {i}")
                    for room_id, users in others
                    for i in range(10)
                ),
                api.join(joiner, others[0][0]),
            ),
            timeout=0.9,  # below the server's 1 s lock wait: nobody waited on the lock
        )
        assert [r.status for r in flowing] == [201] * 40 + [200]
        assert not stuck.done() and not stuck_join.done()
    finally:
        sql.rollback()
    assert (await stuck).status == 201
    assert (await stuck_join).status == 200
    for room_id, _ in others:
        seqs = [
            r["seq"] for r in query(sql, "SELECT seq FROM messages WHERE room_id = %s", room_id)
        ]
        assert sorted(seqs) == list(range(1, 11))


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(queue_delay_ms=1, message_batch=2)
async def test_past_the_queueing_bound_messages_are_refused_at_once_and_not_stored(api, sql):
    rooms = [await room_members(api, 2) for _ in range(6)]
    results = await asyncio.gather(
        *(send(api, users[i % 2], room_id, f"m{i}") for room_id, users in rooms for i in range(40))
    )
    statuses = [r.status for r in results]
    assert set(statuses) <= {201, 503}, set(statuses)
    refused = [r for r in results if r.status == 503]
    assert refused, "nothing was refused at a 1 ms bound"
    for resp in refused:
        assert resp.body["error"]["code"] == "overloaded"
        assert int(resp.headers["Retry-After"]) >= 1
    stored = 0
    for room_id, _ in rooms:
        seqs = sorted(
            r["seq"] for r in query(sql, "SELECT seq FROM messages WHERE room_id = %s", room_id)
        )
        assert seqs == list(range(1, len(seqs) + 1))
        stored += len(seqs)
    assert stored == statuses.count(201)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(queue_delay_ms=1, message_batch=2)
async def test_a_websocket_frame_past_the_bound_gets_an_overloaded_error_frame(api, sql):
    room_id, users = await room_members(api, 6)
    sockets = [await api.socket(user) for user in users for _ in range(3)]
    for n, sock in enumerate(sockets):
        for i in range(10):
            await sock.send(
                {"type": "message", "roomId": room_id, "content": f"s{n} m{i}", "ref": f"{n}.{i}"}
            )
    acked, refused = 0, 0
    for sock in sockets:
        answered = 0
        while answered < 10:
            frame = await sock.recv()
            if frame["type"] == "ack":
                acked += 1
            elif frame["type"] == "error":
                assert frame["code"] == "overloaded", frame
                assert frame["ref"] is not None
                refused += 1
            else:
                continue
            answered += 1
    assert refused > 0 and acked > 0
    (row,) = query(sql, "SELECT COUNT(*) AS n FROM messages WHERE room_id = %s", room_id)
    assert row["n"] == acked


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(queue_delay_ms=1, message_batch=2)
async def test_refusals_and_queueing_delays_are_in_the_metrics(api):
    room_id, users = await room_members(api, 2)
    results = await asyncio.gather(*(send(api, users[i % 2], room_id, f"m{i}") for i in range(120)))
    refused = sum(1 for r in results if r.status == 503)
    text = (await api.http.fetch(api.base_url + "/metrics")).body.decode()
    assert 'chat_queue_delay_seconds{queue="message_0"}' in text
    assert 'chat_queue_delay_seconds{queue="db_writes"}' in text
    assert "chat_db_up 1.0" in text
    line = next(
        (
            x
            for x in text.splitlines()
            if x.startswith("chat_refusals_total{")
            and 'reason="overloaded"' in x
            and 'transport="http"' in x
        ),
        None,
    )
    if refused:
        assert line is not None and float(line.rsplit(" ", 1)[1]) >= refused


async def behind_a_long_held_room(sql, database, long_id, short_id, long_work, short_work):
    """Hold ``long_id``'s row lock for long and ``short_id``'s briefly, both from other clients.

    ``long_work()`` starts first and waits for its room's lock in the slow
    lane; then ``short_work()``, which the writers' retries send there too.
    Once the short lock ends, the short work must get through (within 0.8 s)
    while the long lock is still held. Returns (long answer, short answers).
    """
    other = mysql_connect(database, database.database)
    sql.begin()
    query(sql, "SELECT room_id FROM rooms WHERE room_id = %s FOR UPDATE", long_id)
    other.begin()
    query(other, "SELECT room_id FROM rooms WHERE room_id = %s FOR UPDATE", short_id)
    try:
        held_long = asyncio.ensure_future(long_work())
        await asyncio.sleep(0.2)  # in the slow lane now, waiting for the lock
        waiting = asyncio.ensure_future(short_work())
        await asyncio.sleep(0.3)
        other.rollback()
        through = await asyncio.wait_for(waiting, timeout=0.8)  # the long lock still held
        assert not held_long.done()
    finally:
        sql.rollback()
        other.close()
    return await held_long, through


@pytest.mark.gen_test(timeout=60)
async def test_a_room_locked_for_long_holds_up_no_other_room_waiting_for_its_lock(
    api, sql, database
):
    long_id, (long_owner, *_) = await room_members(api, 1)
    short_id, (short_owner, *_) = await room_members(api, 1)
    held, flowed = await behind_a_long_held_room(
        sql,
        database,
        long_id,
        short_id,
        lambda: send(api, long_owner, long_id, "waits"),
        lambda: asyncio.gather(
            *(send(api, short_owner, short_id, f"then flows {i}") for i in range(20))
        ),
    )
    assert [r.status for r in flowed] == [201] * 20
    assert held.status == 201
    seqs = [r["seq"] for r in query(sql, "SELECT seq FROM messages WHERE room_id = %s", short_id)]
    assert sorted(seqs) == list(range(1, 21))


@pytest.mark.gen_test(timeout=60)
async def test_a_room_locked_for_long_holds_up_no_join_to_another_room_waiting_for_its_lock(
    api, sql, database
):
    long_id, _ = await room_members(api, 1)
    short_id, _ = await room_members(api, 1)
    joiners = [await api.user(prime=True) for _ in range(4)]
    held, joined = await behind_a_long_held_room(
        sql,
        database,
        long_id,
        short_id,
        lambda: api.join(joiners[0], long_id),
        lambda: asyncio.gather(*(api.join(user, short_id) for user in joiners[1:])),
    )
    assert [r.status for r in joined] == [200] * 3
    assert held.status == 200
    (room,) = query(sql, "SELECT member_count FROM rooms WHERE room_id = %s", short_id)
    assert room["member_count"] == 4


def test_out_of_file_descriptors_the_server_pauses_accepting_and_recovers(server_procs):
    # Out of file descriptors, accept() fails until a connection closes.
    # Tornado's own accept handler then logged a traceback every turn of the
    # loop (tens of thousands a second); the server says so once, goes on
    # answering the connections it has, and accepts again once some close.
    server = server_procs(open_files=150)
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)

    def get(connection, path):
        connection.request("GET", path)
        resp = connection.getresponse()
        resp.read()
        return resp.status

    assert get(kept, "/api/openapi.json") == 200
    # As many as its limit: more than it can open, fewer than the backlog can then hold.
    flood = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(150)]
    try:
        wait_until(
            lambda: "cannot accept connections" in server.log(), 10, "the server ran out of fds"
        )
        assert get(kept, "/api/openapi.json") == 200  # a connection it had is served
        time.sleep(1)  # ten pauses
        log = server.log()
        assert log.count("cannot accept connections") == 1 and "Traceback" not in log
    finally:
        for client in flood:
            client.close()
    fresh = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert get(fresh, "/api/health") == 200
    assert "accepting connections again" in server.log()
    fresh.close()
    kept.close()
