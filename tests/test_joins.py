"""Joining rooms: passwords, invitations, pricing, the ledger and the capacity cap."""

import asyncio
import secrets

import bcrypt
import pymysql
import pytest

from chat.actions import join_writer
from helpers import mysql_connect, query


def ledger_matches_balance(sql, user_id):
    (row,) = query(
        sql,
        "SELECT avail_coins, (SELECT COALESCE(SUM(delta), 0) FROM coin_ledger "
        "WHERE user_id = %s) AS total FROM users WHERE user_id = %s",
        user_id,
        user_id,
    )
    return int(row["total"]) == row["avail_coins"], row["avail_coins"]


async def invite(api, owner, room_id, invitee):
    resp = await api.post(
        "/api/invite", {"roomId": room_id, "userId": invitee.user_id}, token=owner.token
    )
    assert resp.status == 201, resp.body
    return resp.body["invitation"]["token"]


async def seat_prime_members(api, room_id, count):
    """Fill ``count`` seats of the room with new prime members."""
    for _ in range(count):
        assert (await api.join(await api.user(prime=True), room_id)).status == 200


@pytest.mark.gen_test
async def test_non_prime_first_room_free_then_150_each(api, sql):
    owner = await api.user(prime=True)
    rooms = [await api.room(owner, name=f"R{i}") for i in range(3)]
    user = await api.user(coins=200)

    first = await api.join(user, rooms[0]["roomId"])
    assert (first.status, first.body["charged"], first.body["availCoins"]) == (200, 0, 200)
    assert first.body["room"]["members"] == [owner.user_id, user.user_id]
    second = await api.join(user, rooms[1]["roomId"])
    assert (second.status, second.body["charged"], second.body["availCoins"]) == (200, 150, 50)
    third = await api.join(user, rooms[2]["roomId"])
    assert (third.status, third.body["error"]["code"]) == (402, "insufficient_coins")
    assert third.body["error"]["details"] == {"required": 150, "available": 50}

    assert ledger_matches_balance(sql, user.user_id) == (True, 50)
    entries = query(
        sql,
        "SELECT delta, reason, room_id FROM coin_ledger WHERE user_id = %s ORDER BY entry_id",
        user.user_id,
    )
    assert [(e["delta"], e["reason"], e["room_id"]) for e in entries] == [
        (200, "signup_grant", None),
        (-150, "join_charge", rooms[1]["roomId"]),
    ]
    members = query(
        sql, "SELECT COUNT(*) AS n FROM room_members WHERE room_id = %s", rooms[2]["roomId"]
    )
    assert members[0]["n"] == 1


@pytest.mark.gen_test
async def test_prime_members_join_free(api, sql):
    owner = await api.user(prime=True)
    prime = await api.user(prime=True)
    for i in range(3):
        room = await api.room(owner, name=f"P{i}")
        resp = await api.join(prime, room["roomId"])
        assert (resp.status, resp.body["charged"], resp.body["availCoins"]) == (200, 0, 0)
    assert ledger_matches_balance(sql, prime.user_id) == (True, 0)


@pytest.mark.gen_test
@pytest.mark.settings(join_price=40)
async def test_join_price_is_a_setting(api):
    owner = await api.user(prime=True)
    user = await api.user(coins=100)
    await api.join(user, (await api.room(owner))["roomId"])
    resp = await api.join(user, (await api.room(owner))["roomId"])
    assert (resp.body["charged"], resp.body["availCoins"]) == (40, 60)


@pytest.mark.gen_test
async def test_joining_again_is_free_and_changes_nothing(api, sql):
    owner = await api.user(prime=True)
    user = await api.user(coins=300)
    first, second = await api.room(owner), await api.room(owner)
    await api.join(user, first["roomId"])
    paid = await api.join(user, second["roomId"])
    assert paid.body["charged"] == 150
    again = await api.join(user, second["roomId"])
    assert (again.status, again.body["charged"], again.body["availCoins"]) == (200, 0, 150)
    assert again.body["room"]["memberCount"] == 2
    assert ledger_matches_balance(sql, user.user_id) == (True, 150)


@pytest.mark.gen_test
async def test_a_member_of_a_full_room_joining_again_is_told_so(api, sql):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    users = [await api.user(coins=300) for _ in range(5)]
    for user in users:
        assert (await api.join(user, room["roomId"])).status == 200
    again = await api.join(users[0], room["roomId"])
    assert (again.status, again.body["charged"], again.body["availCoins"]) == (200, 0, 300)
    assert set(again.body["room"]["members"]) == {owner.user_id} | {u.user_id for u in users}
    (row,) = query(sql, "SELECT member_count FROM rooms WHERE room_id = %s", room["roomId"])
    assert row["member_count"] == 6


@pytest.mark.gen_test
async def test_join_errors(api):
    owner = await api.user(prime=True)
    user = await api.user()
    room = await api.room(owner, password="right-pw")
    wrong = await api.join(user, room["roomId"], password="wrong-pw")
    assert (wrong.status, wrong.body["error"]["code"]) == (403, "wrong_room_password")
    missing = await api.join(user, "no-such-room")
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")
    for body in (
        {},
        {"roomId": room["roomId"]},
        {"password": "x"},
        {"roomId": room["roomId"], "password": "right-pw", "inviteToken": "t"},
        {"roomId": 5, "password": "right-pw"},
    ):
        resp = await api.post("/api/joinroom", body, token=user.token)
        assert (resp.status, resp.body["error"]["code"]) == (400, "validation_failed"), body


@pytest.mark.gen_test
async def test_full_room_refuses_the_seventh(api):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    for _ in range(5):
        assert (await api.join(await api.user(), room["roomId"])).status == 200
    late = await api.join(await api.user(), room["roomId"])
    assert (late.status, late.body["error"]["code"]) == (409, "room_full")


@pytest.mark.gen_test
async def test_full_room_does_not_charge_or_use_free_join(api, sql):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    await seat_prime_members(api, room["roomId"], 5)
    user = await api.user(coins=500)
    assert (await api.join(user, room["roomId"])).status == 409
    profile = (await api.get(f"/api/profile/{user.user_id}", token=user.token)).body["user"]
    assert (profile["availCoins"], profile["freeJoinUsed"]) == (500, False)
    assert ledger_matches_balance(sql, user.user_id) == (True, 500)


@pytest.mark.gen_test
async def test_twelve_concurrent_joins_to_five_free_seats(api, sql):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    users = [await api.user(prime=i % 2 == 0, coins=300) for i in range(12)]
    results = await asyncio.gather(*(api.join(u, room["roomId"]) for u in users))
    statuses = sorted(r.status for r in results)
    assert statuses == [200] * 5 + [409] * 7
    assert {r.body["error"]["code"] for r in results if r.status == 409} == {"room_full"}
    members = query(
        sql, "SELECT COUNT(*) AS n FROM room_members WHERE room_id = %s", room["roomId"]
    )
    (row,) = query(sql, "SELECT member_count FROM rooms WHERE room_id = %s", room["roomId"])
    assert members[0]["n"] == row["member_count"] == 6


@pytest.mark.gen_test
async def test_six_concurrent_paid_joins_with_300_coins(api, sql):
    owner = await api.user(prime=True)
    user = await api.user(coins=300)
    await api.join(user, (await api.room(owner, name="free one"))["roomId"])
    rooms = [await api.room(owner, name=f"paid {i}") for i in range(6)]
    results = await asyncio.gather(*(api.join(user, r["roomId"]) for r in rooms))
    ok = [r for r in results if r.status == 200]
    assert len(ok) == 2 and all(r.body["charged"] == 150 for r in ok)
    refused = [r for r in results if r.status != 200]
    assert {(r.status, r.body["error"]["code"]) for r in refused} == {(402, "insufficient_coins")}
    assert ledger_matches_balance(sql, user.user_id) == (True, 0)
    joined = query(sql, "SELECT COUNT(*) AS n FROM room_members WHERE user_id = %s", user.user_id)
    assert joined[0]["n"] == 3


@pytest.mark.gen_test
async def test_concurrent_free_joins_use_the_free_join_once(api, sql):
    owner = await api.user(prime=True)
    user = await api.user(coins=150)
    rooms = [await api.room(owner, name=f"f{i}") for i in range(4)]
    results = await asyncio.gather(*(api.join(user, r["roomId"]) for r in rooms))
    charged = sorted(r.body["charged"] for r in results if r.status == 200)
    assert charged == [0, 150]
    assert ledger_matches_balance(sql, user.user_id) == (True, 0)


@pytest.mark.gen_test
async def test_a_join_waiting_on_the_free_join_taken_elsewhere_pays(api, sql, database):
    # Another transaction holds the user's row while it takes their free join:
    # the join waits for the row, then finds the free join gone and pays.
    owner = await api.user(prime=True)
    user = await api.user(coins=150)
    room = await api.room(owner)
    other = mysql_connect(database, database.database)
    try:
        other.begin()
        query(other, "UPDATE users SET free_join_used = TRUE WHERE user_id = %s", user.user_id)
        join = asyncio.ensure_future(api.join(user, room["roomId"]))
        await asyncio.sleep(0.3)
        assert not join.done()
        other.commit()
        resp = await join
    finally:
        other.close()
    assert (resp.status, resp.body["charged"], resp.body["availCoins"]) == (200, 150, 0)
    assert ledger_matches_balance(sql, user.user_id) == (True, 0)


@pytest.mark.gen_test
async def test_same_room_joined_concurrently_is_charged_once(api, sql):
    owner = await api.user(prime=True)
    user = await api.user(coins=1000)
    await api.join(user, (await api.room(owner))["roomId"])
    room = await api.room(owner)
    results = await asyncio.gather(*(api.join(user, room["roomId"]) for _ in range(5)))
    assert [r.status for r in results] == [200] * 5
    assert sorted(r.body["charged"] for r in results) == [0, 0, 0, 0, 150]
    assert ledger_matches_balance(sql, user.user_id) == (True, 850)


@pytest.mark.gen_test
async def test_invitation_joins_the_room_once(api):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    room = await api.room(owner, password="secret-pw")
    token = await invite(api, owner, room["roomId"], invitee)
    resp = await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    assert (resp.status, resp.body["charged"]) == (200, 0)
    assert invitee.user_id in resp.body["room"]["members"]
    reused = await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    assert (reused.status, reused.body["error"]["code"]) == (403, "invite_invalid")


@pytest.mark.gen_test
async def test_invitation_is_bound_to_its_invitee(api):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    thief = await api.user(prime=True)
    room = await api.room(owner)
    token = await invite(api, owner, room["roomId"], invitee)
    stolen = await api.post("/api/joinroom", {"inviteToken": token}, token=thief.token)
    assert (stolen.status, stolen.body["error"]["code"]) == (403, "invite_invalid")
    own = await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    assert own.status == 200


@pytest.mark.gen_test
async def test_unknown_and_expired_invitations(api, sql):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    room = await api.room(owner)
    unknown = await api.post(
        "/api/joinroom", {"inviteToken": "not-a-real-token"}, token=invitee.token
    )
    assert (unknown.status, unknown.body["error"]["code"]) == (403, "invite_invalid")
    token = await invite(api, owner, room["roomId"], invitee)
    query(
        sql,
        "UPDATE invitations SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND "
        "WHERE invitee_id = %s",
        invitee.user_id,
    )
    expired = await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    assert (expired.status, expired.body["error"]["code"]) == (403, "invite_invalid")


@pytest.mark.gen_test
async def test_used_invitation_is_refused_even_for_a_member(api):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    room = await api.room(owner)
    token = await invite(api, owner, room["roomId"], invitee)
    assert (
        await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    ).status == 200
    again = await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    assert (again.status, again.body["error"]["code"]) == (403, "invite_invalid")
    owners_try = await api.post("/api/joinroom", {"inviteToken": token}, token=owner.token)
    assert (owners_try.status, owners_try.body["error"]["code"]) == (403, "invite_invalid")


@pytest.mark.gen_test
async def test_two_concurrent_uses_of_one_invitation(api, sql):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    room = await api.room(owner)
    token = await invite(api, owner, room["roomId"], invitee)
    results = await asyncio.gather(
        *(api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token) for _ in range(2))
    )
    assert sorted(r.status for r in results) == [200, 403]
    used = query(sql, "SELECT used_at FROM invitations WHERE invitee_id = %s", invitee.user_id)
    assert len(used) == 1 and used[0]["used_at"] is not None


@pytest.mark.gen_test
async def test_invitation_to_a_full_room_is_not_consumed(api, sql):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    room = await api.room(owner)
    token = await invite(api, owner, room["roomId"], invitee)
    await seat_prime_members(api, room["roomId"], 5)
    full = await api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token)
    assert (full.status, full.body["error"]["code"]) == (409, "room_full")
    used = query(sql, "SELECT used_at FROM invitations WHERE invitee_id = %s", invitee.user_id)
    assert used[0]["used_at"] is None


@pytest.mark.gen_test
async def test_capacity_holds_even_for_a_buggy_writer(sql, api):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    with pytest.raises(pymysql.err.OperationalError):
        query(sql, "UPDATE rooms SET member_count = 7 WHERE room_id = %s", room["roomId"])
    with pytest.raises(pymysql.err.OperationalError):
        query(sql, "UPDATE users SET avail_coins = -1 WHERE user_id = %s", owner.user_id)


@pytest.mark.gen_test
async def test_a_remembered_room_password_never_admits_a_wrong_one(api):
    owner = await api.user(prime=True)
    room = await api.room(owner, password="right-pw")
    assert (await api.join(await api.user(prime=True), room["roomId"], "right-pw")).status == 200
    for wrong in ("wrong-pw", "right-pw ", "RIGHT-PW", "right-p"):
        resp = await api.join(await api.user(prime=True), room["roomId"], wrong)
        assert (resp.status, resp.body["error"]["code"]) == (403, "wrong_room_password")
    other = await api.room(owner, password="other-pw")
    resp = await api.join(await api.user(prime=True), other["roomId"], "right-pw")
    assert (resp.status, resp.body["error"]["code"]) == (403, "wrong_room_password")
    assert (await api.join(await api.user(prime=True), room["roomId"], "right-pw")).status == 200


def count_bcrypt_checks(ctx, monkeypatch):
    """A list that grows by one for every bcrypt check the server runs from now on."""
    checks = []
    real = ctx.passwords.verify

    async def verify(password, hashed):
        checks.append(password)
        return await real(password, hashed)

    monkeypatch.setattr(ctx.passwords, "verify", verify)
    return checks


@pytest.mark.gen_test
async def test_a_burst_of_joins_to_a_room_checks_its_password_once(api, ctx, sql, monkeypatch):
    owner = await api.user(prime=True)
    users = [await api.user(prime=True) for _ in range(5)]
    # Made behind this process's back (as another process would), so its
    # password is not known here yet.
    room_id = "r_" + secrets.token_hex(6)
    hashed = bcrypt.hashpw(b"burst-pw", bcrypt.gensalt(4)).decode()
    query(
        sql,
        "INSERT INTO rooms (room_id, name, owner_id, password_hash, capacity, "
        "member_count, last_seq, created_at) VALUES (%s, 'B', %s, %s, 6, 1, 0, "
        "UTC_TIMESTAMP(3))",
        room_id,
        owner.user_id,
        hashed,
    )
    query(
        sql,
        "INSERT INTO room_members (room_id, user_id, charged, joined_at) "
        "VALUES (%s, %s, 0, UTC_TIMESTAMP(3))",
        room_id,
        owner.user_id,
    )
    checks = count_bcrypt_checks(ctx, monkeypatch)
    results = await asyncio.gather(*(api.join(u, room_id, "burst-pw") for u in users))
    assert [r.status for r in results] == [200] * 5
    assert len(checks) == 1
    wrong = await asyncio.gather(
        *(api.join(owner, room_id, guess) for guess in ("guess-1", "guess-2", "guess-3"))
    )
    assert {(r.status, r.body["error"]["code"]) for r in wrong} == {(403, "wrong_room_password")}
    assert len(checks) == 4


@pytest.mark.gen_test
async def test_the_process_that_made_a_room_knows_its_password(api, ctx, monkeypatch):
    owner = await api.user(prime=True)
    user = await api.user(prime=True)
    room = await api.room(owner, password="made-here")
    checks = count_bcrypt_checks(ctx, monkeypatch)
    assert (await api.join(user, room["roomId"], "made-here")).status == 200
    assert checks == []
    assert (await api.join(user, room["roomId"], "made-her")).status == 403
    assert checks == ["made-her"]


@pytest.mark.gen_test
async def test_refusals_among_concurrent_joins_change_nothing(api, sql):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    await seat_prime_members(api, room["roomId"], 3)
    invitee = await api.user(prime=True)
    token = await invite(api, owner, room["roomId"], invitee)
    broke = await api.user(coins=100)
    await api.join(broke, (await api.room(owner, name="free"))["roomId"])
    payers = [await api.user(coins=150) for _ in range(3)]
    for payer in payers:
        await api.join(payer, (await api.room(owner, name="free"))["roomId"])

    # Two free seats; six joins at once.
    results = await asyncio.gather(
        api.post("/api/joinroom", {"inviteToken": token}, token=invitee.token),
        api.join(broke, room["roomId"]),
        *(api.join(payer, room["roomId"]) for payer in payers),
        api.join(payers[0], room["roomId"], password="wrong-pw"),
    )
    invited, short, *paid, wrong = results
    assert (short.status, short.body["error"]["code"]) in {
        (402, "insufficient_coins"),
        (409, "room_full"),
    }
    assert (wrong.status, wrong.body["error"]["code"]) == (403, "wrong_room_password")
    admitted = [r for r in [invited, *paid] if r.status == 200]
    assert len(admitted) == 2
    assert all(r.status == 409 for r in [invited, *paid] if r.status != 200)
    (row,) = query(sql, "SELECT member_count FROM rooms WHERE room_id = %s", room["roomId"])
    assert row["member_count"] == 6
    used = query(sql, "SELECT used_at FROM invitations WHERE invitee_id = %s", invitee.user_id)
    assert (used[0]["used_at"] is not None) == (invited.status == 200)
    for user, resp in [(broke, short), *zip(payers, paid, strict=True)]:
        expected = 0 if resp.status == 200 else (100 if user is broke else 150)
        assert ledger_matches_balance(sql, user.user_id) == (True, expected)


@pytest.mark.gen_test
async def test_batch_writes_refuse_what_the_rows_cannot_hold(api, ctx, sql):
    # Should a batch's decisions ever disagree with its locked rows, its
    # guarded writes notice and the whole batch rolls back.
    owner = await api.user(prime=True)
    room = await api.room(owner)
    user = await api.user(coins=100)

    async def overcharge(tx):
        await join_writer._all_rows(
            tx, "add_seats", [room["roomId"]], seats=1, room_ids=(room["roomId"],)
        )
        await join_writer._all_rows(
            tx, "take_coins", [user.user_id], amount=150, user_ids=(user.user_id,)
        )

    async def overbook(tx):
        await join_writer._all_rows(
            tx, "add_seats", [room["roomId"]], seats=6, room_ids=(room["roomId"],)
        )

    for writes in (overcharge, overbook):
        with pytest.raises(RuntimeError):
            await ctx.db.transaction("buggy_batch", writes)
    (row,) = query(sql, "SELECT member_count FROM rooms WHERE room_id = %s", room["roomId"])
    assert row["member_count"] == 1
    assert ledger_matches_balance(sql, user.user_id) == (True, 100)
