"""What an attacker tried, re-runnable: each test failed on the code before the fix.

Bad input (lone surrogates, numbers out of range, trailing newlines, control
characters) refused at the boundary and never failing anyone else's work.
"""

import asyncio
import json
import os
import secrets

import jwt
import pytest

from chat.auth.ratelimit import parse_rates
from helpers import PASSWORD, TEST_SECRET, Socket, User, query

SURROGATE = "\\ud800"  # as it appears in JSON text: a lone UTF-16 surrogate escape
HUGE = "9" * 5000  # beyond Python's 4,300-digit int parsing limit


def raw_body(fields, bad_field, bad_json_value):
    """A JSON body of ``fields`` with ``bad_field`` replaced by raw JSON text."""
    body = {k: v for k, v in fields.items() if k != bad_field}
    text = json.dumps(body)
    extra = f'"{bad_field}": {bad_json_value}'
    return (text[:-1] + (", " if body else "") + extra + "}").encode()


def assert_validation_failed(resp, field=None):
    assert resp.status == 400, (resp.status, resp.body)
    assert resp.body["error"]["code"] == "validation_failed"
    if field is not None:
        assert field in [e["field"] for e in resp.body["error"]["details"]["errors"]]


def new_user_fields():
    return {
        "userId": "u_" + secrets.token_hex(6),
        "deviceId": "dev-1",
        "name": "Someone",
        "phone": "+1" + str(secrets.randbelow(10**12)).zfill(12),
        "password": "long enough password",
    }


# -- invalid Unicode and numbers out of range --------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("field", ["userId", "deviceId", "name", "phone", "password"])
async def test_lone_surrogate_in_registration_is_400(api, field):
    raw = raw_body(new_user_fields(), field, f'"ab{SURROGATE}cdefgh"')
    assert_validation_failed(await api.post("/api/create", raw=raw), field)


@pytest.mark.gen_test
@pytest.mark.parametrize("field", ["password", "deviceId"])
async def test_lone_surrogate_in_login_is_400(api, field):
    user = await api.user()
    raw = raw_body({"userId": user.user_id, "password": "x" * 10}, field, f'"{SURROGATE}x"')
    assert_validation_failed(await api.post("/api/login", raw=raw), field)


@pytest.mark.gen_test
async def test_lone_surrogate_in_room_and_join_fields_is_400(api):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    raw = raw_body({"password": "room-pass"}, "name", f'"room{SURROGATE}"')
    assert_validation_failed(await api.post("/api/chatrooms", raw=raw, token=owner.token), "name")
    raw = raw_body({"name": "r"}, "password", f'"pass{SURROGATE}word"')
    resp = await api.post("/api/chatrooms", raw=raw, token=owner.token)
    assert_validation_failed(resp, "password")
    raw = raw_body({"roomId": room["roomId"]}, "password", f'"pass{SURROGATE}"')
    assert_validation_failed(await api.post("/api/joinroom", raw=raw, token=owner.token))
    raw = raw_body({}, "inviteToken", f'"tok{SURROGATE}"')
    assert_validation_failed(await api.post("/api/joinroom", raw=raw, token=owner.token))


@pytest.mark.gen_test
@pytest.mark.parametrize("field", ["content", "clientMsgId"])
async def test_lone_surrogate_in_a_message_is_400(api, field):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    fields = {"roomId": room["roomId"], "content": "hi", "clientMsgId": "c1"}
    raw = raw_body(fields, field, f'"x{SURROGATE}"')
    assert_validation_failed(await api.post("/api/messages", raw=raw, token=owner.token), field)


@pytest.mark.gen_test
async def test_lone_surrogate_as_a_key_is_400(api):
    raw = b'{"\\udc00": 1}'
    assert_validation_failed(await api.post("/api/create", raw=raw))


@pytest.mark.gen_test
async def test_integer_over_4300_digits_is_400(api):
    raw = raw_body(new_user_fields(), "availCoins", HUGE)
    assert_validation_failed(await api.post("/api/create", raw=raw))
    user = await api.user()
    resp = await api.get("/api/messages", params={"roomId": "abc", "after": HUGE}, token=user.token)
    assert_validation_failed(resp, "after")
    resp = await api.get(
        "/api/messages", params={"roomId": "abc", "after": str(2**64)}, token=user.token
    )
    assert_validation_failed(resp, "after")


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "raw, field",
    [
        (
            '{"type": "message", "roomId": "r", "content": "x' + SURROGATE + '", "ref": "m1"}',
            "content",
        ),
        ('{"type": "subscribe", "roomId": "r", "after": ' + HUGE + ', "ref": "m1"}', ""),
        ('{"type": "subscribe", "roomId": "r", "after": 1e400, "ref": "m1"}', "after"),
        (
            '{"type": "message", "roomId": "r", "content": "hi", "clientMsgId": "\\u0007"}',
            "clientMsgId",
        ),
    ],
)
async def test_bad_text_or_number_in_a_frame_is_an_error_frame(api, raw, field):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send(raw)
    frame = await sock.expect("error")
    assert frame["code"] == "validation_failed"
    assert field in [e["field"] for e in frame["details"]["errors"]]
    await sock.send({"type": "ping", "ref": "still"})
    assert await sock.recv() == {"type": "pong", "ref": "still"}


@pytest.mark.gen_test
async def test_a_frame_whose_ref_is_a_lone_surrogate_leaves_the_socket_open(api):
    user = await api.user()
    sock = await api.socket(user)
    await sock.send('{"type": "ping", "ref": "' + SURROGATE + '"}')
    frame = await sock.expect("error")
    assert frame["code"] == "validation_failed" and frame["ref"] is None
    await sock.send('{"type": "nonsense", "ref": "\\udfff"}')
    assert (await sock.expect("error"))["ref"] is None
    await sock.send({"type": "ping", "ref": "still"})
    assert await sock.recv() == {"type": "pong", "ref": "still"}


# -- identifiers match as whole strings --------------------------------------


@pytest.mark.gen_test
async def test_user_id_with_a_trailing_newline_is_refused(api):
    user = await api.user()
    fields = new_user_fields()
    fields["userId"] = user.user_id + "\n"
    assert_validation_failed(await api.post("/api/create", fields), "userId")


@pytest.mark.gen_test
async def test_phone_with_a_trailing_newline_is_refused(api):
    user = await api.user()
    fields = new_user_fields()
    fields["phone"] = user.phone + "\n"
    assert_validation_failed(await api.post("/api/create", fields), "phone")
    resp = await api.post("/api/login", {"phone": user.phone + "\n", "password": "x" * 10})
    assert_validation_failed(resp, "phone")


@pytest.mark.gen_test
@pytest.mark.parametrize("field, value", [("deviceId", "dev\n1"), ("name", "Bob\x1b[31m")])
async def test_control_characters_in_identifiers_are_refused(api, field, value):
    fields = new_user_fields()
    fields[field] = value
    assert_validation_failed(await api.post("/api/create", fields), field)


# -- one bad item never fails a batch ----------------------------------------


@pytest.mark.gen_test(timeout=120)
async def test_poison_messages_sent_with_good_ones_fail_alone(api, sql):
    """4 attackers send lone surrogates while 40 members post: every member's message is stored."""
    owner = await api.user(prime=True)
    room = await api.room(owner)
    attacker = await api.user(prime=True)
    assert (await api.join(attacker, room["roomId"])).status == 200
    poison = raw_body({"roomId": room["roomId"]}, "content", f'"boom{SURROGATE}"')

    async def attack():
        return [
            (await api.post("/api/messages", raw=poison, token=attacker.token)).status
            for _ in range(10)
        ]

    good = [
        api.post("/api/messages", {"roomId": room["roomId"], "content": f"m{i}"}, token=owner.token)
        for i in range(40)
    ]
    results = await asyncio.gather(*good, *(attack() for _ in range(4)))
    statuses = [r.status for r in results[:40]]
    assert statuses == [201] * 40, statuses
    assert all(s == 400 for attack_statuses in results[40:] for s in attack_statuses)
    stored = query(sql, "SELECT COUNT(*) AS n FROM messages WHERE room_id = %s", room["roomId"])
    assert stored[0]["n"] == 40


@pytest.mark.gen_test(timeout=60)
async def test_a_message_the_database_refuses_fails_alone_in_its_batch(api, ctx, sql):
    """Past the boundary (defence in depth): a batch with one unstorable message stores the rest."""
    owner = await api.user(prime=True)
    room = await api.room(owner)
    futures = [
        ctx.message_writer.submit(owner.user_id, room["roomId"], f"good {i}", None)
        for i in range(5)
    ]
    futures.insert(2, ctx.message_writer.submit(owner.user_id, room["roomId"], "\ud800", None))
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failed) == 1 and outcomes[2] is failed[0]
    seqs = sorted(created[1].seq for created in outcomes if not isinstance(created, Exception))
    assert seqs == [1, 2, 3, 4, 5]


@pytest.mark.gen_test(timeout=60)
async def test_a_join_the_database_refuses_fails_alone_in_its_batch(api, ctx):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    joiners = [await api.user(prime=True) for _ in range(3)]
    futures = [ctx.join_writer.submit(u.user_id, room_id=room["roomId"]) for u in joiners]
    futures.insert(1, ctx.join_writer.submit(joiners[0].user_id, room_id="\ud800room"))
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(outcomes[1], Exception)
    good = [o for i, o in enumerate(outcomes) if i != 1]
    assert all(not isinstance(o, Exception) and o.charged == 0 for o in good), good
    assert len(good[-1].room.members) == 4


# -- headers on every response, CORS, idle connections -----------------------

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def assert_secure_headers(resp):
    status = getattr(resp, "status", None) or resp.code
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (name, status, dict(resp.headers))
    csp = resp.headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "script-src 'self'"):
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "Server" not in resp.headers, resp.headers.get("Server")


@pytest.mark.gen_test
async def test_every_kind_of_response_carries_the_security_headers(api):
    user = await api.user()
    owner = await api.user(prime=True)
    room = await api.room(owner)
    responses = [
        await api.get("/api/health"),
        await api.get("/api/openapi.json"),
        await api.get(f"/api/profile/{user.user_id}", token=user.token),  # 200
        await api.post(
            "/api/messages", {"roomId": room["roomId"], "content": "x"}, token=owner.token
        ),  # 201
        await api.post(f"/api/chatrooms/{room['roomId']}/leave", token=owner.token),  # 403
        await api.get("/api/chatrooms", token="forged"),  # 401
        await api.post("/api/create", raw=b"nope"),  # 400
        await api.get("/api/no-such-path"),  # 404
        await api.request("PUT", "/api/login", raw=b"{}"),  # 405
        await api.post("/api/login", raw=b"{" + b" " * 70000 + b"}"),  # 413
        await api.get("/api/ws", headers=_upgrade({"Origin": "https://evil.example"})),  # 403
        await api.get("/api/ws", headers=_upgrade({"Authorization": "Bearer forged"})),  # 401
        await api.get("/api/admin/users", headers={"X-Admin-Key": "wrong" * 4}),
    ]
    statuses = {r.status for r in responses}
    assert {200, 201, 400, 401, 403, 404, 405, 413} <= statuses, statuses
    for resp in responses:
        assert_secure_headers(resp)
    # A WebSocket handshake refused by Tornado itself (not an upgrade): plain text, same headers.
    plain = await api.http.fetch(api.base_url + "/api/ws", raise_error=False)
    assert plain.code == 400
    assert_secure_headers(plain)
    logout = await api.post("/api/logout", token=user.token)  # 204
    assert logout.status == 204
    assert_secure_headers(logout)


def _upgrade(headers):
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        **headers,
    }


@pytest.mark.gen_test
async def test_an_accepted_websocket_handshake_carries_the_security_headers(api):
    user = await api.user()
    sock = await api.ws(user.token)
    headers = sock.headers
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value
    assert "Server" not in headers


@pytest.mark.gen_test
@pytest.mark.settings(allowed_origins=("https://app.example",))
async def test_cors_answers_allowed_origins_only(api):
    user = await api.user()
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    resp = await api.request("OPTIONS", "/api/messages", headers=preflight)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert set(resp.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST"}
    allowed_headers = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert_secure_headers(resp)

    ok = await api.get(
        "/api/chatrooms", token=user.token, headers={"Origin": "https://app.example"}
    )
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Retry-After" in ok.headers["Access-Control-Expose-Headers"]

    for origin in ("https://evil.example", "http://app.example", "https://app.example:444"):
        other = {**preflight, "Origin": origin}
        refused = await api.request("OPTIONS", "/api/messages", headers=other)
        assert refused.status == 405
        assert "Access-Control-Allow-Origin" not in refused.headers
        assert "Access-Control-Allow-Methods" not in refused.headers
        answered = await api.get("/api/chatrooms", token=user.token, headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in answered.headers
    admin = await api.request(
        "OPTIONS",
        "/api/admin/users",
        headers={**preflight, "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in admin.headers


def test_idle_http_connections_are_closed(server_procs):
    import socket
    import time

    server = server_procs(http_idle_timeout=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert conn.recv(65536) == b""  # the server closed the idle connection
        assert time.monotonic() - started < 8


# -- rate limits ---------------------------------------------------------------

LIMITS_ON = {"rate_limits": "on"}


def assert_rate_limited(resp, most=3600):
    assert resp.status == 429, (resp.status, resp.body)
    assert resp.body["error"]["code"] == "rate_limited"
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= most
    assert resp.body["error"]["details"]["retryAfter"] == retry_after
    assert_secure_headers(resp)


def random_address():
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


@pytest.mark.gen_test(timeout=120)
@pytest.mark.settings(**LIMITS_ON, bcrypt_rounds=8, limit_login_failures=parse_rates("5/300"))
async def test_simultaneous_guesses_cannot_exceed_the_failed_login_limit(api):
    """40 wrong guesses and the right password, all in flight at once: at most 5 are checked."""
    victim = await api.user()
    guesses = [
        api.post("/api/login", {"userId": victim.user_id, "password": f"guess {i:04}"})
        for i in range(40)
    ]
    guesses.insert(26, api.post("/api/login", {"userId": victim.user_id, "password": PASSWORD}))
    results = await asyncio.gather(*guesses)
    statuses = [r.status for r in results]
    assert set(statuses) <= {200, 401, 429, 503}, statuses  # 503: overloaded, not checked
    # At most 5 wrong passwords were checked (a right one is given back, not a failure).
    assert statuses.count(401) <= 5, statuses
    for resp in results:
        if resp.status == 429:
            assert_rate_limited(resp)


@pytest.mark.gen_test(timeout=120)
@pytest.mark.settings(
    **LIMITS_ON,
    limit_login_failures_address=parse_rates("30/300"),
    limit_logins_address=parse_rates("1000/60"),
    limit_registrations_address=parse_rates("1000/60"),
    bcrypt_queue=100,
)
async def test_guesses_over_many_accounts_from_one_address_are_limited(api):
    accounts = [await api.user() for _ in range(20)]
    results = await asyncio.gather(
        *(
            api.post("/api/login", {"userId": user.user_id, "password": f"wrong {i}"})
            for i in range(3)
            for user in accounts
        )
    )
    statuses = [r.status for r in results]
    # 503: refused by admission control on a loaded machine, never checked, not counted.
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses.count(401) <= 30, statuses
    assert statuses.count(429) >= 30 - statuses.count(503), statuses


@pytest.mark.gen_test(timeout=60)
async def test_someone_elses_failures_never_lock_a_user_out_from_their_address(server_procs):
    server = server_procs(
        behind_proxy="true", rate_limits="on", limit_registrations_address="100/60"
    )
    api = server.api
    victim = await api.user()
    attacker_ip, victim_ip = random_address(), random_address()
    wrong = {"userId": victim.user_id, "password": "not the password"}
    statuses = [
        (await api.post("/api/login", wrong, headers={"X-Real-IP": attacker_ip})).status
        for _ in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3
    # The same account from the victim's own address: not affected.
    right = {"userId": victim.user_id, "password": PASSWORD}
    ok = await api.post("/api/login", right, headers={"X-Real-IP": victim_ip})
    assert ok.status == 200, ok.body
    # Failures slow down progressively: still refused from the attacker's address.
    assert_rate_limited(await api.post("/api/login", wrong, headers={"X-Real-IP": attacker_ip}))


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(**LIMITS_ON, limit_messages=parse_rates("3/60"))
async def test_messages_per_user_count_http_and_websocket_together(api, sql):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    sock = await api.socket(owner)
    for i in range(2):
        resp = await api.post(
            "/api/messages", {"roomId": room["roomId"], "content": f"h{i}"}, token=owner.token
        )
        assert resp.status == 201
    await sock.send({"type": "message", "roomId": room["roomId"], "content": "w", "ref": "a"})
    assert (await sock.expect("ack"))["ref"] == "a"
    await sock.send({"type": "message", "roomId": room["roomId"], "content": "x", "ref": "b"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("rate_limited", "b")
    assert frame["retryAfter"] >= 1 and frame["details"]["retryAfter"] == frame["retryAfter"]
    resp = await api.post(
        "/api/messages", {"roomId": room["roomId"], "content": "y"}, token=owner.token
    )
    assert_rate_limited(resp, 60)
    stored = query(sql, "SELECT COUNT(*) AS n FROM messages WHERE room_id = %s", room["roomId"])
    assert stored[0]["n"] == 3  # the refused ones were not acted on


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(
    **LIMITS_ON,
    limit_typing=parse_rates("2/60"),
    limit_subscribes=parse_rates("2/60"),
)
async def test_typing_and_subscribe_frames_are_limited(api):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    sock = await api.socket(owner)
    for i in range(2):
        await sock.send({"type": "subscribe", "roomId": room["roomId"], "ref": f"s{i}"})
        assert (await sock.expect("subscribed"))["ref"] == f"s{i}"
    await sock.send({"type": "subscribe", "roomId": room["roomId"], "ref": "s2"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("rate_limited", "s2") and frame["retryAfter"] >= 1
    for _ in range(2):
        await sock.send({"type": "typing", "roomId": room["roomId"]})
    await sock.send({"type": "typing", "roomId": room["roomId"], "ref": "t"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("rate_limited", "t")
    await sock.send({"type": "ping", "ref": "p"})
    assert (await sock.expect("pong"))["ref"] == "p"


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(**LIMITS_ON, limit_ws_frames=parse_rates("5/60"))
async def test_frames_per_socket_are_limited(api):
    user = await api.user()
    sock = await api.socket(user)
    for i in range(5):
        await sock.send({"type": "ping", "ref": str(i)})
        assert (await sock.expect("pong"))["ref"] == str(i)
    await sock.send({"type": "ping", "ref": "over"})
    frame = await sock.expect("error")
    assert (frame["code"], frame["ref"]) == ("rate_limited", "over")
    other = await api.socket(user)  # another socket has its own allowance
    await other.send({"type": "ping"})
    await other.expect("pong")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(**LIMITS_ON, ws_per_user=2, limit_ws_opens=parse_rates("3/60"))
async def test_open_websockets_per_user_are_capped(api):
    user = await api.user()
    first, second = await api.socket(user), await api.socket(user)
    third = Socket(await api.ws(user.token))
    code, _ = await third.closed()
    assert code == 4008
    await first.send({"type": "ping"})
    await first.expect("pong")
    first.close()
    await asyncio.sleep(0.2)
    # Opening sockets is rate limited too: the fourth handshake in a minute is refused.
    refused = await api.get("/api/ws", headers=_upgrade({"Authorization": f"Bearer {user.token}"}))
    assert_rate_limited(refused, 60)
    assert second is not None


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(**LIMITS_ON, limit_invitations=parse_rates("2/3600"))
async def test_invitations_are_limited(api):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    invitee = await api.user(prime=True)
    body = {"roomId": room["roomId"], "userId": invitee.user_id}
    for _ in range(2):
        assert (await api.post("/api/invite", body, token=owner.token)).status == 201
    assert_rate_limited(await api.post("/api/invite", body, token=owner.token))


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(
    **LIMITS_ON,
    limit_room_password_failures=parse_rates("3/300"),
    limit_room_password_failures_room=parse_rates("5/3600"),
)
async def test_wrong_room_passwords_are_limited_per_user_and_per_room(api):
    owner = await api.user(prime=True)
    room = await api.room(owner, password="the-room-pass")
    first, second = await api.user(prime=True), await api.user(prime=True)
    for _ in range(3):
        assert (await api.join(first, room["roomId"], "guess-x1")).status == 403
    assert_rate_limited(await api.join(first, room["roomId"], "guess-x1"))
    for _ in range(2):
        assert (await api.join(second, room["roomId"], "guess-x1")).status == 403
    # The room has had 5 wrong guesses: a sixth from anyone waits.
    assert_rate_limited(await api.join(second, room["roomId"], "guess-x1"))
    # The right password, known to open the room, needs no bcrypt and is not limited.
    assert (await api.join(second, room["roomId"], "the-room-pass")).status == 200


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(**LIMITS_ON, limit_friend_requests=parse_rates("2/3600"))
async def test_friend_requests_are_limited(api):
    sender = await api.user(prime=True)
    room = await api.room(sender)
    others = [await api.user(prime=True) for _ in range(3)]
    for other in others:
        assert (await api.join(other, room["roomId"])).status == 200
    for other in others[:2]:
        body = {"userId": other.user_id}
        assert (await api.post("/api/friend-requests", body, token=sender.token)).status == 201
    body = {"userId": others[2].user_id}
    assert_rate_limited(await api.post("/api/friend-requests", body, token=sender.token))


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(
    **LIMITS_ON,
    admin_key="k" * 32,
    limit_admin_key_failures=parse_rates("3/3600"),
)
async def test_admin_key_failures_are_limited_and_logged(api, caplog):
    wrong = {"X-Admin-Key": "w" * 32}
    for _ in range(3):
        assert (await api.get("/api/admin/users", headers=wrong)).status == 403
    assert_rate_limited(await api.get("/api/admin/users", headers=wrong))
    events = [r for r in caplog.records if r.name == "chat.security"]
    assert len(events) == 3 and all("X-Admin-Key" in r.getMessage() for r in events)
    assert not any("w" * 32 in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(
    **LIMITS_ON,
    limit_registrations_address=parse_rates("2/3600"),
    limit_logins_address=parse_rates("3/60"),
)
async def test_registrations_and_logins_per_address_are_limited(api):
    first = await api.user()  # a registration and a login
    await api.user()
    assert_rate_limited(await api.post("/api/create", new_user_fields()))
    right = {"userId": first.user_id, "password": PASSWORD}
    assert (await api.post("/api/login", right)).status == 200
    assert_rate_limited(await api.post("/api/login", right), 60)


@pytest.mark.gen_test(timeout=90)
async def test_two_processes_share_one_limit_through_redis(server_procs, redis_url):
    settings = {
        "rate_limits": "on",
        "behind_proxy": "true",
        "limit_login_failures": "4/300",
    }
    a = server_procs(redis_url=redis_url, **settings)
    b = server_procs(redis_url=redis_url, **settings)
    address = random_address()
    user = await a.api.user()
    wrong = {"userId": user.user_id, "password": "not the password"}
    headers = {"X-Real-IP": address}
    statuses = []
    for i in range(6):
        server = (a, b)[i % 2]
        statuses.append((await server.api.post("/api/login", wrong, headers=headers)).status)
    assert statuses == [401, 401, 401, 401, 429, 429]


@pytest.mark.gen_test(timeout=90)
async def test_message_frames_counted_through_redis_keep_their_order(server_procs, redis_url, sql):
    # With the counts in Redis, a message frame waits for its round trip
    # before the socket's next frame is read: a burst is stored in the order
    # sent, and the limit is one for every process, HTTP and WebSocket.
    settings = {"rate_limits": "on", "limit_messages": "5/60"}
    a = server_procs(redis_url=redis_url, **settings)
    b = server_procs(redis_url=redis_url, **settings)
    owner = await a.api.user(prime=True)
    room_id = (await a.api.room(owner))["roomId"]
    sock = await a.api.socket(owner)
    frames = [
        {"type": "message", "roomId": room_id, "content": f"m{i}", "ref": str(i)} for i in range(6)
    ]
    await sock.send_all(frames)
    answers = [await sock.recv() for _ in range(6)]
    acks = [f for f in answers if f["type"] == "ack"]
    assert [(f["ref"], f["message"]["seq"]) for f in acks] == [(str(i), i + 1) for i in range(5)]
    (refused,) = [f for f in answers if f["type"] == "error"]
    assert (refused["code"], refused["ref"]) == ("rate_limited", "5")
    body = {"roomId": room_id, "content": "over HTTP"}
    assert_rate_limited(await b.api.post("/api/messages", body, token=owner.token), 60)
    stored = query(sql, "SELECT content FROM messages WHERE room_id = %s ORDER BY seq", room_id)
    assert [r["content"] for r in stored] == [f"m{i}" for i in range(5)]


# -- sessions: access tokens, rotating refresh tokens, ending sessions -------


async def login(api, user, device="dev-1"):
    resp = await api.post(
        "/api/login", {"userId": user.user_id, "password": PASSWORD, "deviceId": device}
    )
    assert resp.status == 200, resp.body
    return resp.body


async def refresh(api, token):
    return await api.post("/api/token/refresh", {"refreshToken": token})


@pytest.mark.gen_test
async def test_login_starts_a_session_with_a_short_access_token(api, settings, sql):
    user = await api.user()
    body = await login(api, user)
    assert body["expiresIn"] == settings.token_ttl == 900
    assert body["refreshExpiresIn"] == settings.refresh_ttl
    assert len(body["refreshToken"]) >= 43  # 256 bits, URL-safe base64
    claims = jwt.decode(body["token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sid"] == body["sessionId"] and claims["exp"] - claims["iat"] == 900
    (row,) = query(sql, "SELECT * FROM sessions WHERE session_id = %s", body["sessionId"])
    # Only the hash of the refresh token is stored.
    assert body["refreshToken"].encode() not in row["refresh_hash"]
    assert len(row["refresh_hash"]) == 32


@pytest.mark.gen_test
async def test_a_refresh_token_rotates_and_works_once(api):
    user = await api.user()
    first = await login(api, user)
    second = await refresh(api, first["refreshToken"])
    assert second.status == 200
    assert second.body["sessionId"] == first["sessionId"]
    assert second.body["refreshToken"] != first["refreshToken"]
    assert second.body["user"]["userId"] == user.user_id
    me = await api.get(f"/api/profile/{user.user_id}", token=second.body["token"])
    assert me.status == 200
    third = await refresh(api, second.body["refreshToken"])
    assert third.status == 200


@pytest.mark.gen_test
async def test_a_reused_refresh_token_ends_the_whole_session(api, caplog):
    user = await api.user()
    first = await login(api, user)
    sock = await api.socket(User(user.user_id, first["token"], user.phone, PASSWORD, {}))
    rotated = await refresh(api, first["refreshToken"])  # the legitimate client
    assert rotated.status == 200
    stolen = await refresh(api, first["refreshToken"])  # the thief replays the old one
    assert stolen.status == 401 and stolen.body["error"]["code"] == "unauthorized"
    # Every token of the session is dead: the new refresh token, both access tokens.
    assert (await refresh(api, rotated.body["refreshToken"])).status == 401
    for token in (first["token"], rotated.body["token"]):
        resp = await api.get(f"/api/profile/{user.user_id}", token=token)
        assert resp.status == 401
    code, _ = await sock.closed()
    assert code == 4001
    assert any("refresh token was presented again" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test(timeout=60)
async def test_two_refreshes_racing_with_one_token_end_the_session(api):
    user = await api.user()
    first = await login(api, user)
    results = await asyncio.gather(*(refresh(api, first["refreshToken"]) for _ in range(5)))
    statuses = sorted(r.status for r in results)
    assert statuses.count(200) <= 1, statuses
    for resp in results:
        if resp.status == 200:  # the winner's tokens died with the detected reuse
            assert (await refresh(api, resp.body["refreshToken"])).status == 401


@pytest.mark.gen_test
async def test_unknown_and_forged_refresh_tokens_are_401(api):
    for token in ("x", secrets.token_urlsafe(32), "a" * 256):
        resp = await refresh(api, token)
        assert resp.status == 401 and resp.body["error"]["code"] == "unauthorized"


@pytest.mark.gen_test
async def test_logout_ends_the_session_refresh_token_included(api):
    user = await api.user()
    body = await login(api, user)
    assert (await api.post("/api/logout", token=body["token"])).status == 204
    assert (await api.get(f"/api/profile/{user.user_id}", token=body["token"])).status == 401
    assert (await refresh(api, body["refreshToken"])).status == 401
    # The user's other session is untouched.
    assert (await api.get(f"/api/profile/{user.user_id}", token=user.token)).status == 200


@pytest.mark.gen_test
async def test_sessions_are_listed_and_ended_by_their_owner_only(api):
    user = await api.user()
    phone = await login(api, user, device="phone")
    laptop = await login(api, user, device="laptop")
    listed = await api.get("/api/sessions", token=laptop["token"])
    assert listed.status == 200
    sessions = {s["sessionId"]: s for s in listed.body["sessions"]}
    assert {phone["sessionId"], laptop["sessionId"]} <= set(sessions)
    assert sessions[laptop["sessionId"]]["current"] is True
    assert sessions[phone["sessionId"]]["current"] is False
    assert sessions[phone["sessionId"]]["deviceId"] == "phone"
    assert set(sessions[phone["sessionId"]]) == {
        "sessionId",
        "deviceId",
        "createdAt",
        "lastUsedAt",
        "current",
    }
    other = await api.user()
    resp = await api.delete(f"/api/sessions/{phone['sessionId']}", token=other.token)
    assert resp.status == 404  # someone else's
    resp = await api.delete(f"/api/sessions/{'0' * 32}", token=laptop["token"])
    assert resp.status == 404  # unknown
    resp = await api.delete(f"/api/sessions/{phone['sessionId']}", token=laptop["token"])
    assert resp.status == 204
    assert (await api.get(f"/api/profile/{user.user_id}", token=phone["token"])).status == 401
    assert (await refresh(api, phone["refreshToken"])).status == 401
    listed = await api.get("/api/sessions", token=laptop["token"])
    assert phone["sessionId"] not in {s["sessionId"] for s in listed.body["sessions"]}


@pytest.mark.gen_test
async def test_a_password_change_ends_every_other_session(api):
    user = await api.user()
    here = await login(api, user)
    elsewhere = await login(api, user)
    sock = await api.socket(User(user.user_id, elsewhere["token"], user.phone, PASSWORD, {}))
    new = "a brand new password"
    resp = await api.post(
        "/api/password",
        {"currentPassword": PASSWORD, "newPassword": new},
        token=here["token"],
    )
    assert resp.status == 204
    assert (await api.get(f"/api/profile/{user.user_id}", token=here["token"])).status == 200
    assert (await api.get(f"/api/profile/{user.user_id}", token=elsewhere["token"])).status == 401
    assert (await refresh(api, elsewhere["refreshToken"])).status == 401
    assert (await sock.closed())[0] == 4001
    old = await api.post("/api/login", {"userId": user.user_id, "password": PASSWORD})
    assert old.status == 401
    assert (await api.post("/api/login", {"userId": user.user_id, "password": new})).status == 200


@pytest.mark.gen_test
@pytest.mark.settings(**LIMITS_ON, limit_login_failures=parse_rates("2/300"))
async def test_a_wrong_current_password_is_a_failed_login(api):
    user = await api.user()
    wrong = {"currentPassword": "not my password", "newPassword": "whatever password"}
    for _ in range(2):
        resp = await api.post("/api/password", wrong, token=user.token)
        assert resp.status == 401 and resp.body["error"]["code"] == "invalid_credentials"
    assert_rate_limited(await api.post("/api/password", wrong, token=user.token))
    # ... and the login limit is the same one.
    login_wrong = {"userId": user.user_id, "password": "not my password"}
    assert_rate_limited(await api.post("/api/login", login_wrong))


@pytest.mark.gen_test
async def test_a_token_whose_user_no_longer_exists_is_401(api, sql):
    user = await api.user()
    body = await login(api, user)
    query(sql, "DELETE FROM users WHERE user_id = %s", user.user_id)
    resp = await api.get("/api/chatrooms", token=body["token"])  # never checked before
    assert resp.status == 401
    assert (await refresh(api, body["refreshToken"])).status == 401


@pytest.mark.gen_test
async def test_forged_expired_and_alg_none_tokens_are_401(api):
    user = await api.user()
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    forged = [
        jwt.encode({**claims, "sub": "someone_else"}, "x" * 40, algorithm="HS256"),
        jwt.encode({**claims, "exp": claims["iat"] - 1}, TEST_SECRET, algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
        user.token.rsplit(".", 1)[0] + ".",
    ]
    for token in forged:
        resp = await api.get(f"/api/profile/{user.user_id}", token=token)
        assert resp.status == 401, token


@pytest.mark.gen_test(timeout=60)
async def test_ending_a_session_closes_its_sockets_on_every_process(server_procs, redis_url):
    import time

    a = server_procs(redis_url=redis_url)
    b = server_procs(redis_url=redis_url)
    user = await a.api.user()
    body = await login(a.api, user)
    socks = [Socket(await server.api.ws(body["token"])) for server in (a, b, b)]
    for sock in socks:
        await sock.expect("ready")
    other = await b.api.socket(user)  # the user's other session
    started = time.monotonic()
    resp = await a.api.delete(f"/api/sessions/{body['sessionId']}", token=user.token)
    assert resp.status == 204
    for sock in socks:
        code, _ = await sock.closed()
        assert code == 4001
    assert time.monotonic() - started < 1.5
    refused = await b.api.get(f"/api/profile/{user.user_id}", token=body["token"])
    assert refused.status == 401
    await other.send({"type": "ping", "ref": "p"})
    assert (await other.expect("pong"))["ref"] == "p"


# -- secure defaults -------------------------------------------------------------


def test_defaults_are_secure(tmp_path):
    import settings as settings_module

    loaded = settings_module.load_settings(["server.py"], environ={}, var_dir=str(tmp_path))
    assert loaded.signup_grants == "operator"
    assert loaded.rate_limits == "on"
    assert loaded.token_ttl == 900
    # A first run generates the admin key beside the JWT secret, readable by the owner only.
    key_file = tmp_path / "admin_key"
    assert key_file.read_text().strip() == loaded.admin_key and len(loaded.admin_key) >= 32
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "jwt_secret").exists()
    again = settings_module.load_settings(["server.py"], environ={}, var_dir=str(tmp_path))
    assert again.admin_key == loaded.admin_key  # kept, not regenerated
    assert loaded.admin_key not in repr(loaded)


@pytest.mark.gen_test
@pytest.mark.settings(signup_grants="operator", admin_key="k" * 32)
async def test_every_grant_is_a_ledger_or_audit_row(api, sql):
    fields = new_user_fields()
    refused = await api.post("/api/create", {**fields, "isPrime": True})
    assert refused.status == 403  # clients cannot grant themselves prime
    assert (await api.post("/api/create", fields)).status == 201
    user_id = fields["userId"]
    key = {"X-Admin-Key": "k" * 32}
    resp = await api.post(
        f"/api/admin/users/{user_id}/grants", {"coins": 500, "isPrime": True}, headers=key
    )
    assert resp.status == 200
    audit = query(
        sql,
        "SELECT action, actor, details FROM audit_log WHERE user_id = %s ORDER BY audit_id",
        user_id,
    )
    assert [(row["action"], json.loads(row["details"])) for row in audit] == [
        ("grant_coins", {"coins": 500}),
        ("set_prime", {"isPrime": True}),
    ]
    assert all(row["actor"].startswith("admin-key@") for row in audit)
    ledger = query(sql, "SELECT delta, reason FROM coin_ledger WHERE user_id = %s", user_id)
    assert ledger == [{"delta": 500, "reason": "operator_grant"}]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.settings(bcrypt_rounds=12, bcrypt_queue=2)
async def test_password_checks_beyond_the_bcrypt_queue_are_refused_at_once(api):
    user = await api.user()
    wrong = {"userId": user.user_id, "password": "not the password"}
    results = await asyncio.gather(*(api.post("/api/login", wrong) for _ in range(24)))
    statuses = [r.status for r in results]
    # Two waiting plus one per bcrypt thread are checked; the rest are refused at once.
    assert set(statuses) <= {401, 503}, statuses
    assert statuses.count(503) >= 24 - 2 - (os.cpu_count() or 2) - 2, statuses
    for resp in results:
        if resp.status == 503:
            assert resp.body["error"]["code"] == "overloaded"
            assert int(resp.headers["Retry-After"]) >= 1
    # Once the queue drains, logins are checked again.
    right = await api.post("/api/login", {"userId": user.user_id, "password": PASSWORD})
    assert right.status == 200


# -- secrets never reach a log line ----------------------------------------------


@pytest.mark.gen_test
async def test_the_log_scan_catches_what_it_must(api, no_secrets_in_logs):
    """The run-wide log scan (conftest.no_secrets_in_logs) recognises each kind of secret."""
    import logging

    from helpers import secrets_in_log

    user = await api.user()
    body = await login(api, user)
    assert secrets_in_log(f"token {body['token']}") == ["a JWT"]
    assert secrets_in_log(f"refresh {body['refreshToken']}") == [
        "an issued refresh or invitation token"
    ]
    assert secrets_in_log("hash $2b$12$abcdefghijklmnopqrstuv") == ["a bcrypt hash"]
    assert secrets_in_log(f"password {PASSWORD}") == ["the test password"]
    assert secrets_in_log("GET /api/profile/u_1234 200") == []
    # The scanner is attached to the run's root logger.
    before = len(no_secrets_in_logs.leaks)
    logging.getLogger("chat.test").warning("probe without secrets")
    assert len(no_secrets_in_logs.leaks) == before


@pytest.mark.gen_test(timeout=30)
async def test_limits_hold_per_process_while_redis_is_unreachable(private_redis):
    from chat.auth.ratelimit import RedisLimiter

    limiter = RedisLimiter(private_redis.url, prefix="chat:outage-test:")
    check = [("messages", "alice", parse_rates("2/60"))]
    assert await limiter.acquire(check) == 0
    private_redis.stop()
    # Redis is gone: the process's own counts take over (still limited), and recover later.
    assert await limiter.acquire(check) == 0
    assert await limiter.acquire(check) == 0
    assert await limiter.acquire(check) > 0
    await limiter.close()
