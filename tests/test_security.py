"""What an attacker tried, re-runnable: each test failed on the code before the fix.

Bad input (lone surrogates, numbers out of range, trailing newlines, control
characters) refused at the boundary and never failing anyone else's work.
"""

import asyncio
import json
import secrets

import pytest

from helpers import query

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
