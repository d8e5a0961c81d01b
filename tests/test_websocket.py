"""WebSocket /api/ws: authentication, frames, subscriptions, ordering, resume, sessions."""

import asyncio
import json

import jwt
import pytest
from tornado import httpclient, websocket

from helpers import TEST_SECRET, query, revoke_behind_the_broker, room_with, send


async def subscribed(api, user, room_id, after=None):
    """A socket of ``user`` subscribed to the room; returns (socket, lastSeq)."""
    sock = await api.socket(user)
    frame = {"type": "subscribe", "roomId": room_id}
    if after is not None:
        frame["after"] = after
    await sock.send(frame)
    reply = await sock.expect("subscribed")
    assert reply["roomId"] == room_id
    return sock, reply["lastSeq"]


async def read_messages(sock, until_seq, timeout=20):
    """The seqs of message frames read up to ``until_seq``; fails on anything else."""
    seqs = []
    while not seqs or seqs[-1] < until_seq:
        frame = await sock.recv(timeout)
        assert frame is not None and frame["type"] == "message", frame
        seqs.append(frame["message"]["seq"])
    return seqs


async def refused(api, **kw):
    """The status of a refused handshake, after checking the JSON error shape."""
    with pytest.raises(httpclient.HTTPClientError) as info:
        await api.ws(**kw)
    error = json.loads(info.value.response.body)["error"]
    expected = {401: "unauthorized", 403: "forbidden"}.get(info.value.code)
    assert error["code"] == expected, error
    return info.value.code


# -- authentication and the handshake -------------------------------------


@pytest.mark.gen_test
async def test_header_token_is_answered_by_ready(api):
    user = await api.user()
    sock = await api.ws(user.token)
    assert json.loads(await sock.read_message()) == {"type": "ready", "userId": user.user_id}


@pytest.mark.gen_test
async def test_auth_frame_is_answered_by_ready_with_ref(api):
    user = await api.user()
    sock = await api.socket()
    await sock.send({"type": "auth", "token": user.token, "ref": "a1"})
    assert await sock.recv() == {"type": "ready", "userId": user.user_id, "ref": "a1"}
    await sock.send({"type": "ping", "ref": "p"})
    assert await sock.recv() == {"type": "pong", "ref": "p"}


def expired_token(user_id):
    return jwt.encode(
        {"sub": user_id, "jti": "e" * 32, "iat": 1000, "exp": 2000}, TEST_SECRET, algorithm="HS256"
    )


@pytest.mark.gen_test
async def test_bad_header_tokens_refuse_the_handshake(api):
    user = await api.user()
    assert await refused(api, token="not-a-token") == 401
    assert await refused(api, token=expired_token(user.user_id)) == 401
    forged = jwt.encode(
        {"sub": user.user_id, "jti": "f" * 32, "iat": 1, "exp": 2**31},
        "another-secret-of-enough-length-000",
        algorithm="HS256",
    )
    assert await refused(api, token=forged) == 401
    assert await refused(api, headers={"Authorization": "Basic abc"}) == 401
    assert (await api.post("/api/logout", token=user.token)).status == 204
    assert await refused(api, token=user.token) == 401


@pytest.mark.gen_test
@pytest.mark.parametrize("token", ["garbage", "expired", "revoked"])
async def test_bad_auth_frame_token_closes_4001(api, token):
    user = await api.user()
    if token == "expired":
        token = expired_token(user.user_id)
    elif token == "revoked":
        token = user.token
        assert (await api.post("/api/logout", token=user.token)).status == 204
    sock = await api.socket()
    await sock.send({"type": "auth", "token": token})
    code, frames = await sock.closed()
    assert (code, frames) == (4001, [])


@pytest.mark.gen_test
@pytest.mark.settings(ws_auth_timeout=0.5)
async def test_no_auth_frame_in_time_closes_4001(api):
    sock = await api.socket()
    await sock.send({"type": "ping", "ref": "early"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("unauthorized", "early")
    assert (await sock.closed(5))[0] == 4001


@pytest.mark.gen_test
@pytest.mark.settings(ws_auth_timeout=0.5)
async def test_authenticating_in_time_cancels_the_deadline(api):
    user = await api.user()
    sock = await api.socket()
    await sock.send({"type": "auth", "token": user.token})
    await sock.expect("ready")
    await sock.silent(1.0)
    await sock.send({"type": "ping"})
    await sock.expect("pong")


@pytest.mark.gen_test
async def test_second_auth_frame_is_an_error(api):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send({"type": "auth", "token": user.token, "ref": "again"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("validation_failed", "again")


@pytest.mark.gen_test
@pytest.mark.settings(public_origin="https://chat.example")
async def test_foreign_origin_is_refused_and_the_public_origin_accepted(api, base_url):
    user = await api.user()
    assert await refused(api, token=user.token, headers={"Origin": "https://evil.example"}) == 403
    own = await api.socket(user, headers={"Origin": "https://chat.example:443"})
    await own.send({"type": "ping"})
    await own.expect("pong")


@pytest.mark.gen_test
@pytest.mark.settings(public_origin="https://chat.example")
@pytest.mark.parametrize(
    "origin",
    ["http://chat.example", "https://chat.example:8443", "null", "https://chat.example.evil"],
)
async def test_origin_differing_in_scheme_host_or_port_is_refused(api, origin):
    user = await api.user()
    assert await refused(api, token=user.token, headers={"Origin": origin}) == 403


@pytest.mark.gen_test
@pytest.mark.settings(public_origin="https://chat.example")
async def test_an_origin_equal_to_the_requests_own_host_is_not_trusted(api, base_url):
    """A page elsewhere can make a browser send any Host (DNS rebinding): it proves nothing."""
    user = await api.user()
    assert await refused(api, token=user.token, headers={"Origin": base_url}) == 403
    spoofed = {"Origin": "http://evil.example", "Host": "evil.example"}
    assert await refused(api, token=user.token, headers=spoofed) == 403


@pytest.mark.gen_test
@pytest.mark.settings(allowed_origins=("https://app.example",))
async def test_allowed_origin_is_accepted(api):
    user = await api.user()
    sock = await api.socket(user, headers={"Origin": "https://app.example"})
    await sock.send({"type": "ping"})
    await sock.expect("pong")
    assert (
        await refused(api, token=user.token, headers={"Origin": "https://app.example.evil"}) == 403
    )


# -- frames ----------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "raw, code, field",
    [
        ("not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ('"text"', "invalid_json", None),
        ('{"type": "shout"}', "validation_failed", "type"),
        ('{"ref": "r"}', "validation_failed", "type"),
        ('{"type": 7}', "validation_failed", "type"),
        ('{"type": "subscribe"}', "validation_failed", "roomId"),
        ('{"type": "subscribe", "roomId": 12}', "validation_failed", "roomId"),
        ('{"type": "subscribe", "roomId": "r", "after": -1}', "validation_failed", "after"),
        ('{"type": "subscribe", "roomId": "r", "after": "1"}', "validation_failed", "after"),
        ('{"type": "message", "roomId": "r"}', "validation_failed", "content"),
        ('{"type": "message", "roomId": "r", "content": ""}', "validation_failed", "content"),
        ('{"type": "message", "roomId": "r", "content": "hi", "x": 1}', "validation_failed", "x"),
        ('{"type": "typing"}', "validation_failed", "roomId"),
        ('{"type": "ping", "ref": 5}', "validation_failed", "ref"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(api, raw, code, field):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send(raw)
    frame = await sock.expect("error")
    assert frame["code"] == code and isinstance(frame["message"], str)
    if field is not None:
        assert field in [e["field"] for e in frame["details"]["errors"]]
    await sock.send({"type": "ping", "ref": "still"})
    assert await sock.recv() == {"type": "pong", "ref": "still"}


@pytest.mark.gen_test
async def test_error_frames_echo_ref(api):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send({"type": "subscribe", "roomId": "no-such-room", "ref": "s1"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("not_found", "s1")
    await sock.send({"type": "nonsense", "ref": "n1"})
    assert (await sock.expect("error"))["ref"] == "n1"


@pytest.mark.gen_test
async def test_oversized_frame_closes_1009(api):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send({"type": "ping", "pad": "x" * 70000})
    assert (await sock.closed())[0] == 1009


# -- delivery ----------------------------------------------------------------


@pytest.mark.gen_test
async def test_posted_message_reaches_every_subscriber_and_no_one_else(api):
    room_id, owner, (alice, bob, idle) = await room_with(api, 3)
    other_room, outsider, _ = await room_with(api, 0)
    subs = [(await subscribed(api, u, room_id))[0] for u in (owner, alice, bob)]
    second_alice, _ = await subscribed(api, alice, room_id)
    outsider_sock, _ = await subscribed(api, outsider, other_room)
    idle_sock = await api.socket(idle)  # a member, but not subscribed

    sent = (await send(api, bob, room_id, "to everyone")).body["message"]
    for sock in [*subs, second_alice]:
        assert await sock.recv() == {"type": "message", "message": sent}
    await outsider_sock.silent()
    await idle_sock.silent()
    for sock in subs:
        await sock.silent(0.1)


@pytest.mark.gen_test
async def test_non_member_cannot_subscribe_or_send_over_the_socket(api, sql):
    room_id, owner, _ = await room_with(api, 0)
    stranger = await api.user()
    sock = await api.socket(stranger)
    await sock.send({"type": "subscribe", "roomId": room_id, "after": 0, "ref": "s"})
    assert (await sock.expect("error"))["code"] == "not_room_member"
    await sock.send({"type": "message", "roomId": room_id, "content": "let me in", "ref": "m"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("not_room_member", "m")
    await sock.send({"type": "typing", "roomId": room_id})
    assert (await sock.expect("error"))["code"] == "not_room_member"
    await send(api, owner, room_id, "members only")
    await sock.silent()
    assert len(query(sql, "SELECT 1 FROM messages WHERE room_id = %s", room_id)) == 1


@pytest.mark.gen_test
async def test_message_frame_is_acked_and_delivered(api, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    listener, last_seq = await subscribed(api, member, room_id)
    assert last_seq == 0
    sock = await api.socket(owner)
    await sock.send({"type": "message", "roomId": room_id, "content": "over ws", "ref": "m1"})
    ack = await sock.expect("ack")
    assert ack["ref"] == "m1"
    message = ack["message"]
    assert (message["seq"], message["senderId"], message["content"]) == (
        1,
        owner.user_id,
        "over ws",
    )
    assert await listener.recv() == {"type": "message", "message": message}
    (row,) = query(sql, "SELECT message_id, seq FROM messages WHERE room_id = %s", room_id)
    assert (str(row["message_id"]), row["seq"]) == (message["messageId"], 1)


@pytest.mark.gen_test
async def test_client_msg_id_over_the_socket_is_stored_and_delivered_once(api, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    listener, _ = await subscribed(api, member, room_id)
    sock = await api.socket(owner)
    frame = {"type": "message", "roomId": room_id, "content": "once", "clientMsgId": "ws-1"}
    await sock.send(frame)
    first = (await sock.expect("ack"))["message"]
    await sock.send(frame)
    again = (await sock.expect("ack"))["message"]
    # The same clientMsgId over HTTP is the same message too.
    http = await send(api, owner, room_id, "once", clientMsgId="ws-1")
    assert first == again == http.body["message"] and http.status == 200
    assert (await listener.recv())["message"] == first
    await listener.silent()
    assert len(query(sql, "SELECT 1 FROM messages WHERE room_id = %s", room_id)) == 1


@pytest.mark.gen_test
async def test_concurrent_senders_over_socket_and_http_are_seen_in_order(api):
    room_id, owner, (alice, bob) = await room_with(api, 2)
    listeners = [(await subscribed(api, u, room_id))[0] for u in (owner, alice, bob)]
    sender_sockets = [await api.socket(u) for u in (owner, alice)]

    async def over_socket(sock, tag):
        # Frames are sent without waiting for acks, so the server has many in flight.
        for i in range(20):
            await sock.send({"type": "message", "roomId": room_id, "content": f"{tag}{i}"})
        return [(await sock.expect("ack", 30))["message"]["seq"] for _ in range(20)]

    async def over_http():
        results = await asyncio.gather(*(send(api, bob, room_id, f"h{i}") for i in range(20)))
        return [r.body["message"]["seq"] for r in results]

    acked = await asyncio.gather(
        over_socket(sender_sockets[0], "o"), over_socket(sender_sockets[1], "a"), over_http()
    )
    assert sorted(sum(acked, [])) == list(range(1, 61))
    for sock in listeners:
        assert await read_messages(sock, 60) == list(range(1, 61))
        await sock.silent(0.1)


@pytest.mark.gen_test
async def test_frames_that_wait_for_nothing_take_no_turn_of_the_event_loop_each(api):
    # A frame handled by a coroutine costs its socket three turns of the
    # loop before the next frame is read; under load a socket then reads a
    # dozen frames a second and the rest wait unread. Pings (like message
    # frames handed to the writer) wait for nothing: forty of them sent at
    # once are answered within a few turns.
    user = await api.user()
    # A client that reads every frame as it arrives (the test helper's queue
    # of one frame would take turns of its own).
    pongs = []
    everything = asyncio.Event()

    def received(raw):
        frame = json.loads(raw) if raw is not None else {}
        if frame.get("type") == "pong":
            pongs.append(frame["ref"])
            if len(pongs) == 40:
                everything.set()

    req = httpclient.HTTPRequest(api.ws_url(), headers={"Authorization": f"Bearer {user.token}"})
    conn = await websocket.websocket_connect(req, on_message_callback=received)
    api.sockets.append(conn)
    loop = asyncio.get_running_loop()
    turns = 0
    ticking = True

    def tick():
        nonlocal turns
        turns += 1
        if ticking:
            loop.call_soon(tick)

    tick()
    await asyncio.gather(
        *(conn.write_message(json.dumps({"type": "ping", "ref": str(i)})) for i in range(40))
    )
    await asyncio.wait_for(everything.wait(), 10)
    ticking = False
    assert pongs == [str(i) for i in range(40)]
    assert turns < 40, f"{turns} turns of the event loop for 40 pings"


@pytest.mark.gen_test
async def test_one_sockets_burst_of_messages_is_stored_in_the_order_sent(api, sql):
    room_id, owner, _ = await room_with(api, 1)
    sock = await api.socket(owner)
    await sock.send_all(
        [
            {"type": "message", "roomId": room_id, "content": f"m{i}", "ref": str(i)}
            for i in range(30)
        ],
    )
    acks = [await sock.expect("ack", 30) for _ in range(30)]
    seq_by_ref = {int(a["ref"]): a["message"]["seq"] for a in acks}
    assert [seq_by_ref[i] for i in range(30)] == list(range(1, 31))
    stored = query(sql, "SELECT content FROM messages WHERE room_id = %s ORDER BY seq", room_id)
    assert [r["content"] for r in stored] == [f"m{i}" for i in range(30)]


@pytest.mark.gen_test
async def test_resume_while_messages_keep_arriving(api):
    room_id, owner, (member,) = await room_with(api, 1)
    # More than one page (200) of history to replay, so that the replay takes
    # several reads while live messages keep coming.
    total, resume_after, backlog = 400, 7, 250
    stored_enough = asyncio.Event()

    async def keep_sending():
        for start in range(0, total, 10):
            results = await asyncio.gather(
                *(send(api, owner, room_id, f"m{i}") for i in range(start, start + 10))
            )
            assert all(r.status == 201 for r in results)
            if start + 10 >= backlog:
                stored_enough.set()

    sender = asyncio.ensure_future(keep_sending())
    await stored_enough.wait()
    sock, last_seq = await subscribed(api, member, room_id, after=resume_after)
    assert backlog <= last_seq < total
    seqs = await read_messages(sock, total)
    await sender
    assert seqs == list(range(resume_after + 1, total + 1))
    await sock.silent(0.2)


@pytest.mark.gen_test
async def test_many_resumes_at_once_while_messages_keep_arriving(api):
    """Subscriptions opening at every moment of a stream each see an exact sequence."""
    room_id, owner, (member,) = await room_with(api, 1)
    total = 60
    sock_out = await api.socket(owner)

    async def keep_sending():
        for i in range(total):
            await sock_out.send({"type": "message", "roomId": room_id, "content": f"m{i}"})
        for _ in range(total):
            await sock_out.expect("ack", 30)

    async def resume(delay, after):
        await asyncio.sleep(delay)
        sock, last_seq = await subscribed(api, member, room_id, after=after)
        first = after + 1 if after is not None else last_seq + 1
        if first > total:
            return
        assert await read_messages(sock, total) == list(range(first, total + 1))

    await asyncio.gather(
        keep_sending(), *(resume(i * 0.01, (i * 3) % 20 if i % 4 else None) for i in range(16))
    )


def store_elsewhere(sql, room_id, sender_id, content):
    """Store a message the way another server process would, without telling this one."""
    with sql.cursor() as cur:
        cur.execute(
            "UPDATE rooms SET last_seq = LAST_INSERT_ID(last_seq + 1) WHERE room_id = %s",
            (room_id,),
        )
        cur.execute(
            "INSERT INTO messages (room_id, seq, sender_id, content, created_at) "
            "VALUES (%s, LAST_INSERT_ID(), %s, %s, UTC_TIMESTAMP(3))",
            (room_id, sender_id, content),
        )


@pytest.mark.gen_test
async def test_a_jump_in_seq_is_filled_from_the_database_and_repeats_are_dropped(api, ctx, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    sock, _ = await subscribed(api, member, room_id)
    for n in range(3):
        store_elsewhere(sql, room_id, owner.user_id, f"elsewhere {n}")
    history = (await api.get("/api/messages", params={"roomId": room_id}, token=owner.token)).body[
        "messages"
    ]
    # Only the last one is announced, as when the broker lost or reordered the others.
    ctx.broker.publish(room_id, {"type": "message", "message": history[2]})
    frames = [await sock.recv() for _ in range(3)]
    assert frames == [{"type": "message", "message": m} for m in history]
    for late in (history[0], history[2], history[1]):
        ctx.broker.publish(room_id, {"type": "message", "message": late})
    await sock.silent()
    sent = (await send(api, owner, room_id, "back to normal")).body["message"]
    assert await sock.recv() == {"type": "message", "message": sent}


@pytest.mark.gen_test
async def test_resync_reads_what_the_broker_missed(api, ctx, sql):
    room_id, owner, (member,) = await room_with(api, 1)
    sock, _ = await subscribed(api, member, room_id)
    await send(api, owner, room_id, "before the outage")
    assert await read_messages(sock, 1) == [1]
    for n in range(2):
        store_elsewhere(sql, room_id, owner.user_id, f"during the outage {n}")
    await sock.silent(0.1)
    ctx.broker.publish(room_id, {"type": "resync", "roomId": room_id})
    assert await read_messages(sock, 3) == [2, 3]
    await sock.silent(0.1)


@pytest.mark.gen_test
async def test_subscribe_without_after_gets_live_messages_only(api):
    room_id, owner, (member,) = await room_with(api, 1)
    for i in range(3):
        await send(api, owner, room_id, f"old{i}")
    sock, last_seq = await subscribed(api, member, room_id)
    assert last_seq == 3
    await sock.silent()
    await send(api, owner, room_id, "new")
    assert await read_messages(sock, 4) == [4]


@pytest.mark.gen_test
async def test_resume_when_nothing_was_missed_replays_nothing(api):
    room_id, owner, (member,) = await room_with(api, 1)
    await send(api, owner, room_id, "one")
    await send(api, owner, room_id, "two")
    sock, last_seq = await subscribed(api, member, room_id, after=2)
    assert last_seq == 2
    await sock.silent()
    await send(api, owner, room_id, "three")
    assert await read_messages(sock, 3) == [3]


@pytest.mark.gen_test
async def test_unsubscribe_stops_delivery(api):
    room_id, owner, (member,) = await room_with(api, 1)
    sock, _ = await subscribed(api, member, room_id)
    await sock.send({"type": "unsubscribe", "roomId": room_id, "ref": "u"})
    assert await sock.recv() == {"type": "unsubscribed", "roomId": room_id, "ref": "u"}
    await send(api, owner, room_id, "gone")
    await sock.silent()


@pytest.mark.gen_test
async def test_typing_reaches_the_others_only_and_is_not_stored(api, sql):
    room_id, owner, (alice, bob) = await room_with(api, 2)
    socks = {u.user_id: (await subscribed(api, u, room_id))[0] for u in (owner, alice, bob)}
    typist = await api.socket(alice)  # alice's second device, not subscribed
    await socks[alice.user_id].send({"type": "typing", "roomId": room_id})
    expected = {"type": "typing", "roomId": room_id, "userId": alice.user_id}
    assert await socks[owner.user_id].recv() == expected
    assert await socks[bob.user_id].recv() == expected
    await typist.send({"type": "typing", "roomId": room_id})
    assert await socks[bob.user_id].recv() == expected
    await socks[alice.user_id].silent()
    await typist.silent(0.1)
    assert query(sql, "SELECT 1 FROM messages WHERE room_id = %s", room_id) == ()


@pytest.mark.gen_test
async def test_join_and_leave_reach_subscribers_and_leaving_ends_the_subscription(api):
    room_id, owner, (member,) = await room_with(api, 1)
    owner_sock, _ = await subscribed(api, owner, room_id)
    member_socks = [(await subscribed(api, member, room_id))[0] for _ in range(2)]
    newcomer = await api.user(prime=True)
    assert (await api.join(newcomer, room_id)).status == 200
    joined = {"type": "member_joined", "roomId": room_id, "userId": newcomer.user_id}
    for sock in [owner_sock, *member_socks]:
        assert await sock.recv() == joined

    assert (await api.post(f"/api/chatrooms/{room_id}/leave", token=member.token)).status == 204
    left = {"type": "member_left", "roomId": room_id, "userId": member.user_id}
    for sock in [owner_sock, *member_socks]:
        assert await sock.recv() == left
    sent = (await send(api, owner, room_id, "after the leave")).body["message"]
    assert await owner_sock.recv() == {"type": "message", "message": sent}
    for sock in member_socks:
        await sock.silent()
        await sock.send({"type": "ping"})
        await sock.expect("pong")


# -- sessions --------------------------------------------------------------


@pytest.mark.gen_test
async def test_logout_closes_the_tokens_sockets_with_4001(api):
    user = await api.user()
    first = await api.socket(user)
    second = await api.socket()
    await second.send({"type": "auth", "token": user.token})
    await second.expect("ready")
    other_login = await api.post("/api/login", {"userId": user.user_id, "password": user.password})
    user_elsewhere = await api.socket()
    await user_elsewhere.send({"type": "auth", "token": other_login.body["token"]})
    await user_elsewhere.expect("ready")

    assert (await api.post("/api/logout", token=user.token)).status == 204
    assert (await first.closed())[0] == 4001
    assert (await second.closed())[0] == 4001
    await user_elsewhere.send({"type": "ping"})
    await user_elsewhere.expect("pong")


@pytest.mark.gen_test
@pytest.mark.settings(token_recheck=0.3)
async def test_a_revocation_the_broker_never_carried_still_closes_the_socket(api, sql):
    user = await api.user()
    sock = await api.socket(user)
    # Written straight to the database, as a logout on a process whose
    # broadcast was lost would leave it.
    revoke_behind_the_broker(sql, user)
    assert (await sock.closed(5))[0] == 4001


@pytest.mark.gen_test
@pytest.mark.settings(token_ttl=2)
async def test_token_expiry_closes_the_socket_with_4001(api):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send({"type": "ping"})
    await sock.expect("pong")
    code, _ = await sock.closed(5)
    assert code == 4001


@pytest.mark.gen_test
@pytest.mark.settings(ws_max_buffer_bytes=65536)
async def test_a_client_that_stops_reading_is_disconnected(api):
    room_id, owner, (member, reader) = await room_with(api, 2)
    slow, _ = await subscribed(api, member, room_id)  # never reads from here on
    fast, _ = await subscribed(api, reader, room_id)
    sender = await api.socket(owner)
    # 4000 characters of 4 bytes each: 16 KB a frame, so that the kernel's
    # socket buffers (a few MB on loopback) fill up quickly.
    content = "\U0001f600" * 4000
    total = 800

    async def pump():
        # Two at a time: a socket's frames are stored concurrently, so a
        # bigger burst would exceed even the fast reader's 64 KB allowance.
        for start in range(0, total, 2):
            for _ in range(start, start + 2):
                await sender.send({"type": "message", "roomId": room_id, "content": content})
            for _ in range(2):
                await sender.expect("ack", 30)

    async def read_all():
        return await read_messages(fast, total, timeout=30)

    _, seqs = await asyncio.gather(pump(), read_all())
    assert seqs == list(range(1, total + 1))
    code, frames = await slow.closed(10)
    # Dropped mid-stream: far fewer messages reached it than were sent.
    assert len([f for f in frames if f["type"] == "message"]) < total
    await fast.send({"type": "ping"})
    await fast.expect("pong")
