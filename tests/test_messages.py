"""Messages over HTTP: storing with per-room seq, idempotent retries, history paging."""

import asyncio

import pytest

from chat import errors
from chat.db import pool
from chat.util.times import utcnow
from helpers import query, room_with, send


def stored(sql, room_id):
    return query(
        sql,
        "SELECT seq, sender_id, content, client_msg_id FROM messages "
        "WHERE room_id = %s ORDER BY seq",
        room_id,
    )


@pytest.mark.gen_test
async def test_post_message_stores_it_with_the_next_seq(api, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    first = await send(api, owner, room_id, "hi all")
    second = await send(api, member, room_id, "héllo ✓", clientMsgId="c-1")
    assert (first.status, second.status) == (201, 201)
    message = second.body["message"]
    assert set(message) == {
        "messageId",
        "roomId",
        "seq",
        "senderId",
        "content",
        "clientMsgId",
        "createdAt",
    }
    assert isinstance(message["messageId"], str) and message["createdAt"].endswith("Z")
    assert (first.body["message"]["seq"], first.body["message"]["clientMsgId"]) == (1, None)
    assert (message["seq"], message["senderId"], message["content"], message["clientMsgId"]) == (
        2,
        member.user_id,
        "héllo ✓",
        "c-1",
    )
    assert [(r["seq"], r["sender_id"], r["content"]) for r in stored(sql, room_id)] == [
        (1, owner.user_id, "hi all"),
        (2, member.user_id, "héllo ✓"),
    ]
    (room,) = query(sql, "SELECT last_seq FROM rooms WHERE room_id = %s", room_id)
    assert room["last_seq"] == 2


@pytest.mark.gen_test
async def test_concurrent_sends_to_many_rooms_each_fail_or_succeed_alone(api, sql):
    rooms = [await room_with(api, 1) for _ in range(4)]
    outsider = await api.user(prime=True)
    sends = []
    for i in range(40):
        room_id, owner, (member,) = rooms[i % 4]
        sends.append(send(api, owner if i % 2 else member, room_id, f"m{i}"))
        if i % 10 == 0:
            sends.append(send(api, outsider, room_id, "not mine"))
            sends.append(send(api, owner, "no-such-room", "nowhere"))
    results = await asyncio.gather(*sends)
    codes = sorted((r.status, r.body["error"]["code"]) for r in results if r.status != 201)
    assert codes == [(403, "not_room_member")] * 4 + [(404, "not_found")] * 4
    assert sum(r.status == 201 for r in results) == 40
    for room_id, _, _ in rooms:
        assert [r["seq"] for r in stored(sql, room_id)] == list(range(1, 11))
        (room,) = query(sql, "SELECT last_seq FROM rooms WHERE room_id = %s", room_id)
        assert room["last_seq"] == 10
    after = await send(api, rooms[0][1], rooms[0][0], "next")
    assert after.body["message"]["seq"] == 11


@pytest.mark.gen_test
async def test_messages_stored_together_each_get_the_id_the_database_gave_them(
    api, sql, monkeypatch
):
    # Statements of at most 3,000 characters: a batch of these spans several.
    monkeypatch.setattr(pool, "MAX_STATEMENT", 3_000)
    rooms = [await room_with(api, 1) for _ in range(3)]
    results = await asyncio.gather(
        *(
            send(api, owner if i % 2 else member, room_id, f"{i} " + "x" * 900)
            for room_id, owner, (member,) in rooms
            for i in range(20)
        )
    )
    assert [r.status for r in results] == [201] * 60
    for r in results:
        message = r.body["message"]
        (row,) = query(
            sql,
            "SELECT message_id, content FROM messages WHERE room_id = %s AND seq = %s",
            message["roomId"],
            message["seq"],
        )
        assert (str(row["message_id"]), row["content"]) == (
            message["messageId"],
            message["content"],
        )


@pytest.mark.gen_test
async def test_insert_rows_spans_statements_and_keeps_the_order(ctx, api, sql, monkeypatch):
    monkeypatch.setattr(pool, "MAX_STATEMENT", 2_000)
    room_id, owner, _ = await room_with(api, 1)
    rows = [
        {
            "room_id": room_id,
            "seq": seq,
            "sender_id": owner.user_id,
            "content": f"{seq} " + "y" * 500,
            "client_msg_id": None,
            "created_at": utcnow(),
        }
        for seq in range(1, 13)
    ]

    async def insert(tx):
        (returned,) = await tx.together(tx.insert_rows("insert_messages", rows))
        return returned

    returned = await ctx.db.transaction("test", insert)
    assert [r["seq"] for r in returned] == list(range(1, 13))
    in_db = query(sql, "SELECT message_id, seq FROM messages WHERE room_id = %s", room_id)
    assert sorted((r["seq"], r["message_id"]) for r in returned) == sorted(
        (r["seq"], r["message_id"]) for r in in_db
    )


@pytest.mark.gen_test
async def test_one_client_msg_id_sent_many_times_at_once_is_stored_once(api, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    others = [send(api, member, room_id, f"other {i}") for i in range(5)]
    retries = [send(api, owner, room_id, "only once", clientMsgId="dup-1") for _ in range(10)]
    results = await asyncio.gather(*others, *retries)
    retried = results[5:]
    assert sorted(r.status for r in retried) == [200] * 9 + [201]
    assert len({r.body["message"]["messageId"] for r in retried}) == 1
    assert len({r.body["message"]["seq"] for r in retried}) == 1
    rows = stored(sql, room_id)
    assert [r["seq"] for r in rows] == list(range(1, 7))
    assert sum(r["client_msg_id"] == "dup-1" for r in rows) == 1


@pytest.mark.gen_test
async def test_seqs_of_concurrent_senders_have_no_gap_and_no_repeat(api, sql):
    room_id, owner, members = await room_with(api, 2)
    senders = [owner, *members]
    results = await asyncio.gather(
        *(send(api, senders[i % 3], room_id, f"m{i}") for i in range(60))
    )
    assert [r.status for r in results] == [201] * 60
    assert sorted(r.body["message"]["seq"] for r in results) == list(range(1, 61))
    assert [r["seq"] for r in stored(sql, room_id)] == list(range(1, 61))


@pytest.mark.gen_test
async def test_seqs_are_counted_per_room(api):
    room_a, owner_a, _ = await room_with(api, 0)
    room_b, owner_b, _ = await room_with(api, 0)
    await send(api, owner_a, room_a)
    await send(api, owner_a, room_a)
    assert (await send(api, owner_b, room_b)).body["message"]["seq"] == 1


@pytest.mark.gen_test
async def test_non_member_cannot_send_or_read(api, sql):
    room_id, owner, _ = await room_with(api, 0)
    await send(api, owner, room_id)
    stranger = await api.user()
    resp = await send(api, stranger, room_id)
    assert (resp.status, resp.body["error"]["code"]) == (403, "not_room_member")
    resp = await api.get("/api/messages", params={"roomId": room_id}, token=stranger.token)
    assert (resp.status, resp.body["error"]["code"]) == (403, "not_room_member")
    assert len(stored(sql, room_id)) == 1
    (room,) = query(sql, "SELECT last_seq FROM rooms WHERE room_id = %s", room_id)
    assert room["last_seq"] == 1  # the refused send took no seq


@pytest.mark.gen_test
async def test_a_member_who_left_can_no_longer_send(api):
    room_id, _, (member,) = await room_with(api, 1)
    assert (await send(api, member, room_id)).status == 201
    assert (await api.post(f"/api/chatrooms/{room_id}/leave", token=member.token)).status == 204
    resp = await send(api, member, room_id)
    assert (resp.status, resp.body["error"]["code"]) == (403, "not_room_member")


@pytest.mark.gen_test
async def test_unknown_room_and_missing_token(api):
    user = await api.user()
    resp = await send(api, user, "no-such-room")
    assert (resp.status, resp.body["error"]["code"]) == (404, "not_found")
    resp = await api.get("/api/messages", params={"roomId": "no-such-room"}, token=user.token)
    assert (resp.status, resp.body["error"]["code"]) == (404, "not_found")
    resp = await api.post("/api/messages", {"roomId": "x", "content": "hi"})
    assert (resp.status, resp.body["error"]["code"]) == (401, "unauthorized")
    resp = await api.get("/api/messages", params={"roomId": "x"})
    assert resp.status == 401


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "body, field",
    [
        ({"content": "hi"}, "roomId"),
        ({"roomId": "r"}, "content"),
        ({"roomId": "r", "content": ""}, "content"),
        ({"roomId": "r", "content": "x" * 4001}, "content"),
        ({"roomId": "r", "content": 5}, "content"),
        ({"roomId": "r", "content": "hi", "clientMsgId": ""}, "clientMsgId"),
        ({"roomId": "r", "content": "hi", "clientMsgId": "c" * 65}, "clientMsgId"),
        ({"roomId": "r", "content": "hi", "seq": 3}, "seq"),
    ],
)
async def test_send_validation(api, body, field):
    user = await api.user()
    resp = await api.post("/api/messages", body, token=user.token)
    assert (resp.status, resp.body["error"]["code"]) == (400, "validation_failed")
    assert field in [e["field"] for e in resp.body["error"]["details"]["errors"]]


@pytest.mark.gen_test
async def test_longest_content_is_accepted_and_bad_json_refused(api):
    room_id, owner, _ = await room_with(api, 0)
    resp = await send(api, owner, room_id, "é" * 4000)
    assert (resp.status, len(resp.body["message"]["content"])) == (201, 4000)
    resp = await api.post("/api/messages", raw=b"{not json", token=owner.token)
    assert (resp.status, resp.body["error"]["code"]) == (400, "invalid_json")


@pytest.mark.gen_test
async def test_client_msg_id_retry_returns_the_original(api, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    first = await send(api, owner, room_id, "once", clientMsgId="retry-1")
    again = await send(api, owner, room_id, "once (retried)", clientMsgId="retry-1")
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    # The key is per sender and room: someone else may use the same clientMsgId.
    other = await send(api, member, room_id, "mine", clientMsgId="retry-1")
    assert other.status == 201 and other.body["message"]["seq"] == 2
    rows = stored(sql, room_id)
    assert [(r["seq"], r["content"]) for r in rows] == [(1, "once"), (2, "mine")]


@pytest.mark.gen_test
async def test_concurrent_retries_store_one_message(api, sql):
    room_id, owner, _ = await room_with(api, 0)
    results = await asyncio.gather(
        *(send(api, owner, room_id, "same", clientMsgId="burst") for _ in range(12))
    )
    assert sorted(r.status for r in results) == [200] * 11 + [201]
    assert len({r.body["message"]["messageId"] for r in results}) == 1
    assert len(stored(sql, room_id)) == 1
    (room,) = query(sql, "SELECT last_seq FROM rooms WHERE room_id = %s", room_id)
    assert room["last_seq"] == 1


async def fill(api, owner, room_id, count):
    for start in range(0, count, 40):
        results = await asyncio.gather(
            *(send(api, owner, room_id, f"m{i}") for i in range(start, min(count, start + 40)))
        )
        assert all(r.status == 201 for r in results)


async def page(api, user, room_id, **params):
    resp = await api.get("/api/messages", params={"roomId": room_id, **params}, token=user.token)
    assert resp.status == 200, resp.body
    return [m["seq"] for m in resp.body["messages"]], resp.body["hasMore"]


@pytest.mark.gen_test
async def test_history_paging(api):
    room_id, owner, (member,) = await room_with(api, 1)
    assert await page(api, member, room_id) == ([], False)
    await fill(api, owner, room_id, 120)
    assert await page(api, member, room_id) == (list(range(71, 121)), True)
    assert await page(api, member, room_id, limit=200) == (list(range(1, 121)), False)
    assert await page(api, member, room_id, after=0, limit=200) == (list(range(1, 121)), False)
    assert await page(api, member, room_id, after=10, limit=5) == ([11, 12, 13, 14, 15], True)
    assert await page(api, member, room_id, after=115) == ([116, 117, 118, 119, 120], False)
    assert await page(api, member, room_id, after=120) == ([], False)
    assert await page(api, member, room_id, before=11) == (list(range(1, 11)), False)
    assert await page(api, member, room_id, before=60, limit=5) == ([55, 56, 57, 58, 59], True)
    assert await page(api, member, room_id, after=10, before=20) == (list(range(11, 20)), False)
    assert await page(api, member, room_id, after=10, before=20, limit=5) == (
        [11, 12, 13, 14, 15],
        True,
    )
    assert await page(api, member, room_id, limit=1) == ([120], True)
    # Paging backwards from the latest page reaches the first message.
    seqs, before = [], None
    while True:
        chunk, more = await page(
            api, member, room_id, limit=50, **({"before": before} if before else {})
        )
        seqs = chunk + seqs
        if not more:
            break
        before = chunk[0]
    assert seqs == list(range(1, 121))


@pytest.mark.gen_test
async def test_history_messages_are_full_message_objects(api):
    room_id, owner, _ = await room_with(api, 0)
    sent = (await send(api, owner, room_id, "kept", clientMsgId="k1")).body["message"]
    resp = await api.get("/api/messages", params={"roomId": room_id}, token=owner.token)
    assert resp.body == {"messages": [sent], "hasMore": False}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "params, field",
    [
        ({"roomId": None}, "roomId"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": -1}, "after"),
        ({"before": "x"}, "before"),
        ({"sort": "desc"}, "sort"),
    ],
)
async def test_history_validation(api, params, field):
    room_id, owner, _ = await room_with(api, 0)
    params = {k: v for k, v in {"roomId": room_id, **params}.items() if v is not None}
    resp = await api.get("/api/messages", params=params, token=owner.token)
    assert (resp.status, resp.body["error"]["code"]) == (400, "validation_failed")
    assert field in [e["field"] for e in resp.body["error"]["details"]["errors"]]


@pytest.mark.gen_test
async def test_history_limit_bounds_are_accepted(api):
    room_id, owner, _ = await room_with(api, 0)
    await fill(api, owner, room_id, 3)
    assert await page(api, owner, room_id, limit=200) == ([1, 2, 3], False)
    assert await page(api, owner, room_id, limit=1, after=0) == ([1], True)


@pytest.mark.gen_test
async def test_membership_checks_asked_together_share_a_query_and_get_their_own_answers(
    ctx, api, monkeypatch
):
    room_a, owner_a, (member_a,) = await room_with(api, 1)
    room_b, owner_b, (member_b,) = await room_with(api, 1)
    assert (await send(api, owner_a, room_a, "one")).status == 201
    queries = []
    fetch_all = ctx.db.fetch_all

    async def counted(name, /, **params):
        queries.append(name)
        return await fetch_all(name, **params)

    monkeypatch.setattr(ctx.db, "fetch_all", counted)
    asks = [
        (member_a.user_id, room_a),
        (member_b.user_id, room_b),
        (member_a.user_id, room_b),  # a member of the other room only
        (member_b.user_id, room_a),
        (owner_a.user_id.upper(), room_a),  # userIds compare without case
        (owner_b.user_id, "NoSuchRoom123456"),
    ]
    results = await asyncio.gather(
        *(ctx.room_access.check(user_id, room_id) for user_id, room_id in asks),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[1] == 0 and results[4] == 1
    assert all(isinstance(r, errors.NotRoomMember) for r in results[2:4])
    assert isinstance(results[5], errors.NotFound)
    assert queries == ["room_access_among"]
