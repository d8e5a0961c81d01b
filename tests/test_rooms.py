"""Rooms: creation, listing, viewing, invitations and leaving."""

import datetime
import hashlib

import pytest

from helpers import query


@pytest.mark.gen_test
async def test_prime_member_creates_room_and_is_its_first_member(api):
    owner = await api.user(prime=True)
    resp = await api.post(
        "/api/chatrooms", {"name": "Book club", "password": "s3cret"}, token=owner.token
    )
    assert resp.status == 201
    room = resp.body["room"]
    assert set(room) == {
        "roomId",
        "name",
        "ownerId",
        "capacity",
        "memberCount",
        "members",
        "createdAt",
    }
    assert (
        room["name"],
        room["ownerId"],
        room["capacity"],
        room["memberCount"],
        room["members"],
    ) == ("Book club", owner.user_id, 6, 1, [owner.user_id])


@pytest.mark.gen_test
async def test_non_prime_member_cannot_create_room(api):
    user = await api.user()
    resp = await api.post(
        "/api/chatrooms", {"name": "Nope", "password": "s3cret"}, token=user.token
    )
    assert (resp.status, resp.body["error"]["code"]) == (403, "not_prime")


@pytest.mark.gen_test
async def test_room_password_is_stored_hashed(api, sql):
    owner = await api.user(prime=True)
    room = await api.room(owner, password="plain-room-pw")
    (row,) = query(sql, "SELECT password_hash FROM rooms WHERE room_id = %s", room["roomId"])
    assert row["password_hash"].startswith("$2b$")
    assert "plain-room-pw" not in row["password_hash"]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "body, field",
    [
        ({"password": "s3cret"}, "name"),
        ({"name": "", "password": "s3cret"}, "name"),
        ({"name": "x" * 65, "password": "s3cret"}, "name"),
        ({"name": "ok", "password": "abc"}, "password"),
        ({"name": "ok", "password": "p" * 73}, "password"),
        ({"name": "ok", "password": 1234}, "password"),
    ],
)
async def test_create_room_validation(api, body, field):
    owner = await api.user(prime=True)
    resp = await api.post("/api/chatrooms", body, token=owner.token)
    assert (resp.status, resp.body["error"]["code"]) == (400, "validation_failed")
    assert field in [e["field"] for e in resp.body["error"]["details"]["errors"]]


@pytest.mark.gen_test
async def test_list_and_get_rooms_for_members_only(api):
    owner = await api.user(prime=True)
    guest = await api.user()
    outsider = await api.user()
    first = await api.room(owner, name="First")
    second = await api.room(owner, name="Second")
    assert (await api.join(guest, first["roomId"])).status == 200

    mine = await api.get("/api/chatrooms", token=owner.token)
    assert [r["roomId"] for r in mine.body["rooms"]] == [first["roomId"], second["roomId"]]
    theirs = await api.get("/api/chatrooms", token=guest.token)
    assert [(r["roomId"], r["members"]) for r in theirs.body["rooms"]] == [
        (first["roomId"], [owner.user_id, guest.user_id])
    ]
    assert (await api.get("/api/chatrooms", token=outsider.token)).body == {"rooms": []}

    got = await api.get(f"/api/chatrooms/{first['roomId']}", token=guest.token)
    assert got.status == 200 and got.body["room"]["memberCount"] == 2
    denied = await api.get(f"/api/chatrooms/{first['roomId']}", token=outsider.token)
    assert (denied.status, denied.body["error"]["code"]) == (403, "not_room_member")
    missing = await api.get("/api/chatrooms/no-such-room", token=guest.token)
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")


@pytest.mark.gen_test
async def test_rooms_need_a_token(api):
    assert (await api.get("/api/chatrooms")).status == 401
    assert (await api.post("/api/chatrooms", {"name": "x", "password": "abcd"})).status == 401
    assert (await api.post("/api/joinroom", {"inviteToken": "x"})).status == 401
    assert (await api.post("/api/invite", {"roomId": "x", "userId": "abc"})).status == 401


@pytest.mark.gen_test
async def test_invitation_shape_and_storage(api, sql):
    owner = await api.user(prime=True)
    invitee = await api.user(prime=True)
    room = await api.room(owner)
    resp = await api.post(
        "/api/invite", {"roomId": room["roomId"], "userId": invitee.user_id}, token=owner.token
    )
    assert resp.status == 201
    inv = resp.body["invitation"]
    assert set(inv) == {"token", "roomId", "inviteeId", "expiresAt"}
    assert (inv["roomId"], inv["inviteeId"]) == (room["roomId"], invitee.user_id)
    assert len(inv["token"]) >= 22  # at least 128 bits in URL-safe base64
    expires = datetime.datetime.fromisoformat(inv["expiresAt"].replace("Z", "+00:00"))
    lifetime = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=23, minutes=59) < lifetime <= datetime.timedelta(hours=24)
    rows = query(sql, "SELECT token_hash FROM invitations WHERE invitee_id = %s", invitee.user_id)
    assert [r["token_hash"] for r in rows] == [hashlib.sha256(inv["token"].encode()).digest()]


@pytest.mark.gen_test
async def test_invite_errors(api):
    owner = await api.user(prime=True)
    member = await api.user(prime=True)
    prime = await api.user(prime=True)
    plain = await api.user()
    room = await api.room(owner)
    await api.join(member, room["roomId"])

    async def invite(by, room_id, user_id):
        resp = await api.post("/api/invite", {"roomId": room_id, "userId": user_id}, token=by.token)
        return resp.status, resp.body["error"]["code"] if resp.status >= 400 else None

    assert await invite(member, room["roomId"], prime.user_id) == (403, "forbidden")
    assert await invite(owner, room["roomId"], plain.user_id) == (403, "not_prime")
    assert await invite(owner, "no-such-room", prime.user_id) == (404, "not_found")
    assert await invite(owner, room["roomId"], "nobody_here") == (404, "not_found")
    assert await invite(owner, room["roomId"], prime.user_id) == (201, None)


@pytest.mark.gen_test
async def test_member_leaves_without_refund_and_free_join_stays_used(api, sql):
    owner = await api.user(prime=True)
    user = await api.user(coins=150)
    room = await api.room(owner)
    other = await api.room(owner, name="Other")
    assert (await api.join(user, room["roomId"])).body["charged"] == 0

    resp = await api.post(f"/api/chatrooms/{room['roomId']}/leave", token=user.token)
    assert resp.status == 204 and resp.raw == b""
    after = await api.get(f"/api/chatrooms/{room['roomId']}", token=owner.token)
    assert after.body["room"]["members"] == [owner.user_id]
    assert after.body["room"]["memberCount"] == 1
    profile = await api.get(f"/api/profile/{user.user_id}", token=user.token)
    assert profile.body["user"]["freeJoinUsed"] is True

    again = await api.join(user, other["roomId"])
    assert (again.body["charged"], again.body["availCoins"]) == (150, 0)


@pytest.mark.gen_test
async def test_leave_errors(api):
    owner = await api.user(prime=True)
    outsider = await api.user()
    room = await api.room(owner)
    path = f"/api/chatrooms/{room['roomId']}/leave"
    owner_leaves = await api.post(path, token=owner.token)
    assert (owner_leaves.status, owner_leaves.body["error"]["code"]) == (403, "forbidden")
    stranger = await api.post(path, token=outsider.token)
    assert (stranger.status, stranger.body["error"]["code"]) == (403, "not_room_member")
    missing = await api.post("/api/chatrooms/nope/leave", token=owner.token)
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")
