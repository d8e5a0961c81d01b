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
