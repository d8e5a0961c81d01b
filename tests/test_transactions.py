"""Statements sent together in one round trip, and a commit riding with the last of them."""

import pytest

from chat.db import pool
from chat.db.errors import DuplicateKey
from chat.util.times import utcnow
from helpers import query, room_with


def message_rows(room_id, sender_id, seqs, size=10):
    return [
        {
            "room_id": room_id,
            "seq": seq,
            "sender_id": sender_id,
            "content": f"{seq} " + "z" * size,
            "client_msg_id": None,
            "created_at": utcnow(),
        }
        for seq in seqs
    ]


def stored_seqs(sql, room_id):
    rows = query(sql, "SELECT seq FROM messages WHERE room_id = %s ORDER BY seq", room_id)
    (room,) = query(sql, "SELECT last_seq FROM rooms WHERE room_id = %s", room_id)
    return [r["seq"] for r in rows], room["last_seq"]


@pytest.mark.gen_test
async def test_together_runs_statements_in_order_and_returns_each_ones_rows(ctx, api):
    room_id, owner, (member,) = await room_with(api, 1)

    async def read(tx):
        return await tx.together(
            tx.statement("lock_rooms_for_messages", room_ids=(room_id, "no-such-room")),
            tx.statement("members_among", pairs=((room_id, member.user_id), (room_id, "nobody"))),
            tx.statement("existing_rooms", room_ids=("no-such-room",)),
        )

    locked, members, existing = await ctx.db.transaction("test", read)
    assert locked == [{"room_id": room_id, "last_seq": 0}]
    assert [r["user_id"] for r in members] == [member.user_id]
    assert existing == []


@pytest.mark.gen_test
async def test_commit_with_commits_everything_and_then_runs_the_after_commit_callbacks(
    ctx, api, sql, monkeypatch
):
    # Round trips of at most 2,000 characters: these rows take several.
    monkeypatch.setattr(pool, "MAX_STATEMENT", 2_000)
    room_id, owner, _ = await room_with(api, 0)
    rows = message_rows(room_id, owner.user_id, range(1, 13), size=500)
    called = []

    async def store(tx):
        tx.after_commit(called.append, "committed")
        returned, counter = await tx.commit_with(
            tx.insert_rows("insert_messages", rows),
            tx.statement("sync_last_seq", room_ids=(room_id,)),
        )
        assert counter == []
        return returned

    returned = await ctx.db.transaction("test", store)
    assert [r["seq"] for r in returned] == list(range(1, 13))
    assert stored_seqs(sql, room_id) == (list(range(1, 13)), 12)
    assert called == ["committed"]


@pytest.mark.gen_test
async def test_a_failing_statement_stops_the_rest_and_the_commit(ctx, api, sql):
    room_id, owner, _ = await room_with(api, 0)
    called = []

    async def store(tx):
        tx.after_commit(called.append, "committed")
        await tx.commit_with(
            tx.insert_rows("insert_messages", message_rows(room_id, owner.user_id, [1, 2])),
            tx.statement("sync_last_seq", room_ids=(room_id,)),
            # seq 2 again: a duplicate key, after the first two statements ran.
            tx.insert_rows("insert_messages", message_rows(room_id, owner.user_id, [2])),
        )

    with pytest.raises(DuplicateKey):
        await ctx.db.transaction("test", store)
    assert stored_seqs(sql, room_id) == ([], 0)  # rolled back, counter included
    assert called == []
    # The connection went back to the pool clean: the next transaction works.
    rows = message_rows(room_id, owner.user_id, [1])
    await ctx.db.transaction(
        "test", lambda tx: tx.commit_with(tx.insert_rows("insert_messages", rows))
    )
    assert stored_seqs(sql, room_id) == ([1], 0)


@pytest.mark.gen_test
async def test_no_statement_may_follow_commit_with(ctx, api, sql):
    room_id, owner, _ = await room_with(api, 0)

    async def store(tx):
        await tx.commit_with(
            tx.insert_rows("insert_messages", message_rows(room_id, owner.user_id, [1]))
        )
        await tx.execute("sync_last_seq", room_ids=(room_id,))

    with pytest.raises(RuntimeError, match="after the transaction's commit_with"):
        await ctx.db.transaction("test", store)
    # What was committed stays; what would have followed never ran.
    assert stored_seqs(sql, room_id) == ([1], 0)
