"""Friend requests and friendships: sending, listing, answering, withdrawing, concurrency."""

import asyncio
import secrets

import pytest

from helpers import query

PROFILE_KEYS = {"userId", "name", "isPrime", "createdAt"}


async def roommates(api, count=2):
    """``count`` users sharing one room: a prime owner first, then members."""
    owner = await api.user(prime=True)
    room = await api.room(owner)
    users = [owner]
    for _ in range(count - 1):
        user = await api.user()
        joined = await api.join(user, room["roomId"])
        assert joined.status == 200, joined.body
        users.append(user)
    return users, room


async def send(api, sender, receiver_id):
    return await api.post("/api/friend-requests", {"userId": receiver_id}, token=sender.token)


async def sent(api, sender, receiver):
    resp = await send(api, sender, receiver.user_id)
    assert resp.status == 201, resp.body
    return resp.body["friendRequest"]


async def answer(api, user, request_id, verb):
    return await api.post(f"/api/friend-requests/{request_id}/{verb}", token=user.token)


async def listed(api, user, **params):
    resp = await api.get("/api/friend-requests", token=user.token, params=params)
    assert resp.status == 200, resp.body
    return resp.body["friendRequests"]


async def friends_of(api, user):
    resp = await api.get("/api/friends", token=user.token)
    assert resp.status == 200, resp.body
    return resp.body["friends"]


def pair_rows(sql, a, b):
    """Every friend_requests row and friendships row between two users."""
    requests = query(
        sql,
        "SELECT request_id, from_user_id, status, pending_flag, responded_at "
        "FROM friend_requests WHERE (from_user_id = %s AND to_user_id = %s) "
        "OR (from_user_id = %s AND to_user_id = %s) ORDER BY request_id",
        a,
        b,
        b,
        a,
    )
    friendships = query(
        sql,
        "SELECT user_a, user_b FROM friendships WHERE "
        "(user_a = %s AND user_b = %s) OR (user_a = %s AND user_b = %s)",
        a,
        b,
        b,
        a,
    )
    return list(requests), list(friendships)


def error_of(resp):
    return resp.status, resp.body["error"]["code"]


# Sending


@pytest.mark.gen_test
async def test_send_creates_a_pending_request(api, sql):
    (alice, bob), _ = await roommates(api)
    resp = await send(api, alice, bob.user_id)
    assert resp.status == 201
    request = resp.body["friendRequest"]
    assert request == {
        "requestId": request["requestId"],
        "fromUserId": alice.user_id,
        "toUserId": bob.user_id,
        "status": "pending",
        "createdAt": request["createdAt"],
        "respondedAt": None,
    }
    assert request["requestId"].isdigit() and request["createdAt"].endswith("Z")
    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [(r["request_id"], r["status"], r["pending_flag"]) for r in requests] == [
        (int(request["requestId"]), "pending", 1)
    ]
    assert friendships == []


@pytest.mark.gen_test
async def test_send_names_the_receiver_as_registered(api):
    (alice, bob), _ = await roommates(api)
    resp = await send(api, alice, bob.user_id.upper())
    assert resp.status == 201
    assert resp.body["friendRequest"]["toUserId"] == bob.user_id


@pytest.mark.gen_test
async def test_send_to_yourself_is_refused(api, sql):
    (alice, _), _ = await roommates(api)
    for target in (alice.user_id, alice.user_id.upper()):
        resp = await send(api, alice, target)
        assert error_of(resp) == (400, "validation_failed")
        assert [e["field"] for e in resp.body["error"]["details"]["errors"]] == ["userId"]
    rows = query(
        sql, "SELECT COUNT(*) AS n FROM friend_requests WHERE from_user_id = %s", alice.user_id
    )
    assert rows[0]["n"] == 0


@pytest.mark.gen_test
async def test_send_with_a_bad_body_is_refused(api):
    (alice, _), _ = await roommates(api)
    missing = await api.post("/api/friend-requests", {}, token=alice.token)
    assert error_of(missing) == (400, "validation_failed")
    assert missing.body["error"]["details"]["errors"] == [
        {"field": "userId", "message": "is required"}
    ]
    not_json = await api.post("/api/friend-requests", raw=b"[1", token=alice.token)
    assert error_of(not_json) == (400, "invalid_json")


@pytest.mark.gen_test
async def test_send_to_an_unknown_user_is_404(api):
    (alice, _), _ = await roommates(api)
    resp = await send(api, alice, "nobody_" + secrets.token_hex(6))
    assert error_of(resp) == (404, "not_found")


@pytest.mark.gen_test
async def test_send_needs_a_shared_room(api, sql):
    (alice, bob), room = await roommates(api)
    stranger = await api.user()
    resp = await send(api, alice, stranger.user_id)
    assert error_of(resp) == (403, "not_participant")

    # Sharing a room is judged now: a member who left is a stranger again.
    left = await api.post(f"/api/chatrooms/{room['roomId']}/leave", token=bob.token)
    assert left.status == 204
    resp = await send(api, bob, alice.user_id)
    assert error_of(resp) == (403, "not_participant")
    rows = query(
        sql,
        "SELECT COUNT(*) AS n FROM friend_requests WHERE from_user_id IN (%s, %s)",
        alice.user_id,
        bob.user_id,
    )
    assert rows[0]["n"] == 0


@pytest.mark.gen_test
async def test_a_second_pending_request_is_409(api, sql):
    (alice, bob), _ = await roommates(api)
    await sent(api, alice, bob)
    again = await send(api, alice, bob.user_id)
    assert error_of(again) == (409, "request_exists")
    requests, _ = pair_rows(sql, alice.user_id, bob.user_id)
    assert len(requests) == 1


@pytest.mark.gen_test
async def test_requests_between_friends_are_409_both_ways(api):
    (alice, bob), _ = await roommates(api)
    request = await sent(api, alice, bob)
    assert (await answer(api, bob, request["requestId"], "accept")).status == 200
    assert error_of(await send(api, alice, bob.user_id)) == (409, "already_friends")
    assert error_of(await send(api, bob, alice.user_id)) == (409, "already_friends")


@pytest.mark.gen_test
async def test_crossing_request_accepts_the_existing_one(api, sql):
    (alice, bob), _ = await roommates(api)
    first = await sent(api, bob, alice)
    resp = await send(api, alice, bob.user_id)
    assert resp.status == 200
    accepted = resp.body["friendRequest"]
    assert accepted["requestId"] == first["requestId"]
    assert (accepted["fromUserId"], accepted["toUserId"]) == (bob.user_id, alice.user_id)
    assert accepted["status"] == "accepted" and accepted["respondedAt"].endswith("Z")
    assert accepted["createdAt"] == first["createdAt"]

    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [(r["status"], r["pending_flag"]) for r in requests] == [("accepted", None)]
    assert len(friendships) == 1
    assert [f["userId"] for f in await friends_of(api, alice)] == [bob.user_id]
    assert [f["userId"] for f in await friends_of(api, bob)] == [alice.user_id]


@pytest.mark.gen_test
async def test_concurrent_crossing_requests_make_one_friendship(api, sql):
    pairs = [(await roommates(api))[0] for _ in range(8)]
    results = await asyncio.gather(
        *(
            send(api, a, b.user_id) if i % 2 == 0 else send(api, b, a.user_id)
            for a, b in pairs
            for i in range(2)
        )
    )
    for n, (a, b) in enumerate(pairs):
        first, second = results[2 * n], results[2 * n + 1]
        assert sorted([first.status, second.status]) == [200, 201], (first.body, second.body)
        assert first.body["friendRequest"]["requestId"] == second.body["friendRequest"]["requestId"]
        assert {first.body["friendRequest"]["status"], second.body["friendRequest"]["status"]} == {
            "pending",
            "accepted",
        }
        requests, friendships = pair_rows(sql, a.user_id, b.user_id)
        assert [(r["status"], r["pending_flag"]) for r in requests] == [("accepted", None)]
        assert len(friendships) == 1


@pytest.mark.gen_test
async def test_concurrent_duplicate_sends_make_one_request(api, sql):
    (alice, bob), _ = await roommates(api)
    results = await asyncio.gather(*(send(api, alice, bob.user_id) for _ in range(6)))
    assert sorted(r.status for r in results) == [201] + [409] * 5
    assert {r.body["error"]["code"] for r in results if r.status == 409} == {"request_exists"}
    requests, _ = pair_rows(sql, alice.user_id, bob.user_id)
    assert len(requests) == 1


@pytest.mark.gen_test
async def test_friendship_pair_is_ordered_by_the_database_collation(api, sql):
    # Under ascii_general_ci "b..." sorts before "_..." and "a..." before "Z...",
    # unlike a plain or lower-cased comparison in Python.
    for low, high in (("b", "_"), ("a", "Z")):
        owner = await api.user(prime=True, userId=high + secrets.token_hex(5))
        room = await api.room(owner)
        other = await api.user(userId=low + secrets.token_hex(5))
        assert (await api.join(other, room["roomId"])).status == 200
        request = await sent(api, owner, other)
        assert (await answer(api, other, request["requestId"], "accept")).status == 200
        _, friendships = pair_rows(sql, owner.user_id, other.user_id)
        assert friendships == [{"user_a": other.user_id, "user_b": owner.user_id}]


# Listing


@pytest.mark.gen_test
async def test_listing_by_direction_and_status(api):
    (me, bob, carol, dave, erin), _ = await roommates(api, 5)
    to_bob = await sent(api, me, bob)  # outgoing, pending
    from_carol = await sent(api, carol, me)  # incoming, pending
    to_dave = await sent(api, me, dave)  # outgoing, declined
    assert (await answer(api, dave, to_dave["requestId"], "decline")).status == 200
    from_erin = await sent(api, erin, me)  # incoming, accepted
    assert (await answer(api, me, from_erin["requestId"], "accept")).status == 200

    def ids(requests):
        return [r["requestId"] for r in requests]

    everything = [from_erin, to_dave, from_carol, to_bob]  # newest first
    assert ids(await listed(api, me)) == ids(everything)
    assert ids(await listed(api, me, direction="incoming")) == ids([from_erin, from_carol])
    assert ids(await listed(api, me, direction="outgoing")) == ids([to_dave, to_bob])
    assert ids(await listed(api, me, status="pending")) == ids([from_carol, to_bob])
    assert ids(await listed(api, me, status="accepted")) == ids([from_erin])
    assert ids(await listed(api, me, status="declined")) == ids([to_dave])
    assert ids(await listed(api, me, direction="incoming", status="pending")) == ids([from_carol])
    assert ids(await listed(api, me, direction="outgoing", status="declined")) == ids([to_dave])
    assert await listed(api, me, direction="incoming", status="declined") == []

    declined = (await listed(api, me, status="declined"))[0]
    assert declined["status"] == "declined" and declined["respondedAt"].endswith("Z")
    # Only one's own requests: bob sees just the one he received.
    assert ids(await listed(api, bob)) == ids([to_bob])


@pytest.mark.gen_test
async def test_listing_with_bad_filters_is_400(api):
    (alice, _), _ = await roommates(api)
    for params, field in (
        ({"direction": "sideways"}, "direction"),
        ({"status": "maybe"}, "status"),
        ({"limit": "5"}, "limit"),
    ):
        resp = await api.get("/api/friend-requests", token=alice.token, params=params)
        assert error_of(resp) == (400, "validation_failed")
        assert [e["field"] for e in resp.body["error"]["details"]["errors"]] == [field]


@pytest.mark.gen_test
async def test_every_endpoint_needs_a_token(api):
    calls = [
        api.get("/api/friend-requests"),
        api.post("/api/friend-requests", {"userId": "abc"}),
        api.post("/api/friend-requests/1/accept"),
        api.post("/api/friend-requests/1/decline"),
        api.delete("/api/friend-requests/1"),
        api.get("/api/friends"),
    ]
    for resp in await asyncio.gather(*calls):
        assert error_of(resp) == (401, "unauthorized")


# Accepting and declining


@pytest.mark.gen_test
async def test_accept_makes_friends_with_public_profiles_only(api, sql):
    (alice, bob, carol), _ = await roommates(api, 3)
    request = await sent(api, alice, bob)
    resp = await answer(api, bob, request["requestId"], "accept")
    assert resp.status == 200
    accepted = resp.body["friendRequest"]
    assert {**accepted, "respondedAt": None} == {**request, "status": "accepted"}
    assert accepted["respondedAt"].endswith("Z")

    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [(r["status"], r["pending_flag"]) for r in requests] == [("accepted", None)]
    assert len(friendships) == 1

    friends = await friends_of(api, alice)
    assert friends == [
        {
            "userId": bob.user_id,
            "name": bob.profile["name"],
            "isPrime": False,
            "createdAt": bob.profile["createdAt"],
        }
    ]
    assert set(friends[0]) == PROFILE_KEYS  # no phone, deviceId, coins
    assert [f["userId"] for f in await friends_of(api, bob)] == [alice.user_id]
    assert await friends_of(api, carol) == []


@pytest.mark.gen_test
async def test_friends_list_holds_every_friend_by_user_id(api):
    (me, *others), _ = await roommates(api, 4)
    for i, other in enumerate(others):
        # Both directions of asking lead to the same kind of friendship.
        if i % 2:
            request = await sent(api, me, other)
            assert (await answer(api, other, request["requestId"], "accept")).status == 200
        else:
            request = await sent(api, other, me)
            assert (await answer(api, me, request["requestId"], "accept")).status == 200
    friends = await friends_of(api, me)
    assert [f["userId"] for f in friends] == sorted((o.user_id for o in others), key=str.lower)
    assert all(set(f) == PROFILE_KEYS for f in friends)


@pytest.mark.gen_test
async def test_decline_makes_no_friendship_and_allows_a_new_request(api, sql):
    (alice, bob), _ = await roommates(api)
    request = await sent(api, alice, bob)
    resp = await answer(api, bob, request["requestId"], "decline")
    assert resp.status == 200
    assert resp.body["friendRequest"]["status"] == "declined"
    assert resp.body["friendRequest"]["respondedAt"].endswith("Z")
    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [(r["status"], r["pending_flag"]) for r in requests] == [("declined", None)]
    assert friendships == []
    assert await friends_of(api, alice) == [] and await friends_of(api, bob) == []

    again = await send(api, alice, bob.user_id)
    assert again.status == 201
    assert again.body["friendRequest"]["requestId"] != request["requestId"]


@pytest.mark.gen_test
async def test_only_the_receiver_may_answer(api, sql):
    (alice, bob, carol), _ = await roommates(api, 3)
    request = await sent(api, alice, bob)
    for user in (alice, carol):
        for verb in ("accept", "decline"):
            assert error_of(await answer(api, user, request["requestId"], verb)) == (
                404,
                "not_found",
            )
    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [r["status"] for r in requests] == ["pending"] and friendships == []


@pytest.mark.gen_test
async def test_unknown_or_malformed_ids_are_404(api):
    (alice, bob), _ = await roommates(api)
    request = await sent(api, alice, bob)
    unknown = str(int(request["requestId"]) + 10**9)
    for request_id in (unknown, "abc", "-1", "1.0", "99999999999999999999999", "%C2%B2"):
        for verb in ("accept", "decline"):
            assert error_of(await answer(api, bob, request_id, verb)) == (404, "not_found")
        resp = await api.delete(f"/api/friend-requests/{request_id}", token=alice.token)
        assert error_of(resp) == (404, "not_found")


@pytest.mark.gen_test
async def test_answering_an_answered_request_is_409(api, sql):
    (alice, bob, carol), _ = await roommates(api, 3)
    accepted = await sent(api, alice, bob)
    assert (await answer(api, bob, accepted["requestId"], "accept")).status == 200
    declined = await sent(api, carol, bob)
    assert (await answer(api, bob, declined["requestId"], "decline")).status == 200

    for request, status in ((accepted, "accepted"), (declined, "declined")):
        for verb in ("accept", "decline"):
            resp = await answer(api, bob, request["requestId"], verb)
            assert error_of(resp) == (409, "request_not_pending")
            assert resp.body["error"]["details"] == {"status": status}
    _, friendships = pair_rows(sql, carol.user_id, bob.user_id)
    assert friendships == []
    _, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert len(friendships) == 1


@pytest.mark.gen_test
async def test_concurrent_answers_settle_once(api, sql):
    (alice, bob), _ = await roommates(api)
    request = await sent(api, alice, bob)
    results = await asyncio.gather(
        *(answer(api, bob, request["requestId"], verb) for verb in ("accept", "decline") * 4)
    )
    assert sorted(r.status for r in results) == [200] + [409] * 7
    (winner,) = [r.body["friendRequest"]["status"] for r in results if r.status == 200]
    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [r["status"] for r in requests] == [winner]
    assert len(friendships) == (1 if winner == "accepted" else 0)


# Withdrawing


@pytest.mark.gen_test
async def test_sender_withdraws_a_pending_request(api, sql):
    (alice, bob), _ = await roommates(api)
    request = await sent(api, alice, bob)
    path = f"/api/friend-requests/{request['requestId']}"
    assert error_of(await api.delete(path, token=bob.token)) == (404, "not_found")
    resp = await api.delete(path, token=alice.token)
    assert resp.status == 204 and resp.raw == b""
    assert pair_rows(sql, alice.user_id, bob.user_id) == ([], [])
    assert await listed(api, bob) == []

    assert error_of(await api.delete(path, token=alice.token)) == (404, "not_found")
    assert error_of(await answer(api, bob, request["requestId"], "accept")) == (404, "not_found")
    assert (await send(api, alice, bob.user_id)).status == 201


@pytest.mark.gen_test
async def test_an_answered_request_cannot_be_withdrawn(api, sql):
    (alice, bob, carol), _ = await roommates(api, 3)
    accepted = await sent(api, alice, bob)
    assert (await answer(api, bob, accepted["requestId"], "accept")).status == 200
    declined = await sent(api, alice, carol)
    assert (await answer(api, carol, declined["requestId"], "decline")).status == 200
    for request in (accepted, declined):
        resp = await api.delete(f"/api/friend-requests/{request['requestId']}", token=alice.token)
        assert error_of(resp) == (404, "not_found")
    requests, friendships = pair_rows(sql, alice.user_id, bob.user_id)
    assert [r["status"] for r in requests] == ["accepted"] and len(friendships) == 1
    requests, _ = pair_rows(sql, alice.user_id, carol.user_id)
    assert [r["status"] for r in requests] == ["declined"]


@pytest.mark.gen_test
async def test_withdraw_racing_accept_has_one_winner(api, sql):
    pairs = [(await roommates(api))[0] for _ in range(6)]
    requests = [await sent(api, a, b) for a, b in pairs]
    results = await asyncio.gather(
        *(
            call
            for (a, b), r in zip(pairs, requests, strict=True)
            for call in (
                api.delete(f"/api/friend-requests/{r['requestId']}", token=a.token),
                answer(api, b, r["requestId"], "accept"),
            )
        )
    )
    for n, (a, b) in enumerate(pairs):
        withdrawn, accepted = results[2 * n], results[2 * n + 1]
        assert (withdrawn.status, accepted.status) in ((204, 404), (404, 200))
        rows, friendships = pair_rows(sql, a.user_id, b.user_id)
        if withdrawn.status == 204:
            assert (rows, friendships) == ([], [])
        else:
            assert [r["status"] for r in rows] == ["accepted"] and len(friendships) == 1
