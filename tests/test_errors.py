"""The single error shape, for bad bodies, unknown paths, wrong methods and faults.

After every refusal the server must go on serving: each test ends with a
health check.
"""

import json
import secrets
from urllib.parse import quote

import pytest
from tornado import httpclient

from chat.actions import users as user_actions
from helpers import PASSWORD

LIMIT = 64 * 1024


def assert_error(resp, status, code):
    assert resp.status == status, resp.raw
    assert resp.headers["Content-Type"].startswith("application/json")
    assert set(resp.body) == {"error"}
    assert set(resp.body["error"]) <= {"code", "message", "details"}
    assert resp.body["error"]["code"] == code, resp.body
    assert isinstance(resp.body["error"]["message"], str) and resp.body["error"]["message"]


async def assert_still_serving(api):
    resp = await api.get("/api/health")
    assert resp.status == 200 and resp.body["status"] == "ok"


def registration(**fields):
    return {
        "userId": "e_" + secrets.token_hex(6),
        "deviceId": "d",
        "name": "E",
        "phone": "+1" + str(secrets.randbelow(10**12)).zfill(12),
        "password": PASSWORD,
        **fields,
    }


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"userId": ',
        b"[]",
        b'[{"userId": "x"}]',
        b'"a string"',
        b"42",
        b"null",
        b"",
        b"\xff\xfe{}",
        b'{"name": "\xc3\x28"}',
        b'{"a": NaN',
    ],
    ids=[
        "text",
        "truncated",
        "empty-array",
        "array",
        "string",
        "number",
        "null",
        "empty",
        "bad-utf8-bom",
        "bad-utf8-in-string",
        "nan-truncated",
    ],
)
async def test_a_body_that_is_not_a_json_object_is_invalid_json(api, raw):
    assert_error(await api.post("/api/create", raw=raw), 400, "invalid_json")
    user = await api.user()
    assert_error(await api.post("/api/chatrooms", raw=raw, token=user.token), 400, "invalid_json")
    await assert_still_serving(api)


def sized(size):
    """A registration body (with an empty name) of exactly ``size`` bytes."""
    body = registration(name="", deviceId="")
    body["deviceId"] = "d" * (size - len(json.dumps(body)))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


@pytest.mark.gen_test
async def test_a_body_of_exactly_64_kib_is_read(api):
    assert_error(await api.post("/api/create", raw=sized(LIMIT)), 400, "validation_failed")
    await assert_still_serving(api)


@pytest.mark.gen_test
async def test_a_body_over_64_kib_is_payload_too_large(api):
    assert_error(await api.post("/api/create", raw=sized(LIMIT + 1)), 413, "payload_too_large")
    await assert_still_serving(api)
    big = b'{"x": "' + b"y" * (4 * LIMIT) + b'"}'
    assert_error(await api.post("/api/login", raw=big), 413, "payload_too_large")
    await assert_still_serving(api)


@pytest.mark.gen_test
async def test_a_chunked_body_over_64_kib_is_payload_too_large(api):
    async def produce(write):
        for _ in range(5):
            await write(b'{"padding": "' + b"z" * (LIMIT // 4) + b'",')
        await write(b'"end": 1}')

    async def send(path, producer):
        request = httpclient.HTTPRequest(
            api.base_url + path, method="POST", body_producer=producer, request_timeout=30
        )
        resp = await api.http.fetch(request, raise_error=False)
        assert "Content-Length" not in request.headers
        return resp

    resp = await send("/api/create", produce)
    assert resp.code == 413
    assert resp.headers["Content-Type"].startswith("application/json")
    assert b"payload_too_large" in resp.body

    async def small(write):
        await write(b'{"userId": ')
        await write(b'"x"}')

    resp = await send("/api/create", small)
    assert resp.code == 400 and b"validation_failed" in resp.body
    await assert_still_serving(api)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/nothing-here"),
        ("POST", "/api/nothing-here"),
        ("GET", "/index.html"),
        ("GET", "/favicon.ico"),
        ("GET", "/static/app.js"),
        ("GET", "/api/profile/"),
        ("GET", "/api/profile/a/b"),
        ("DELETE", "/api/create/extra"),
        ("GET", "/api/HEALTH"),
    ],
)
async def test_an_unknown_path_is_a_json_404(api, method, path):
    resp = await api.request(method, path)
    assert_error(resp, 404, "not_found")
    await assert_still_serving(api)


ODD_IDS = ["é", "日本", "\U0001f600", "a b", "a%2Fb", "x'y", "a\\b"]


@pytest.mark.gen_test
@pytest.mark.parametrize("odd", ODD_IDS)
async def test_an_id_the_server_never_gives_out_is_refused_clearly(api, odd):
    # The id columns are ASCII: such an id must never reach a query, where the
    # database would refuse to compare it (a 500), or fail a batch it shares.
    user = await api.user(prime=True)
    room = await api.room(user)
    quoted = quote(odd, safe="%")
    for path in (f"/api/profile/{quoted}", f"/api/chatrooms/{quoted}"):
        assert_error(await api.get(path, token=user.token), 404, "not_found")
    assert_error(
        await api.post(f"/api/chatrooms/{quoted}/leave", token=user.token), 404, "not_found"
    )
    for path, body in (
        ("/api/joinroom", {"roomId": odd, "password": "room-pass"}),
        ("/api/messages", {"roomId": odd, "content": "hi"}),
        ("/api/invite", {"roomId": odd, "userId": user.user_id}),
    ):
        resp = await api.post(path, body, token=user.token)
        assert_error(resp, 400, "validation_failed")
        assert resp.body["error"]["details"]["errors"][0]["field"] == "roomId"
    resp = await api.get("/api/messages", params={"roomId": odd}, token=user.token)
    assert_error(resp, 400, "validation_failed")
    sock = await api.socket(user)
    await sock.send({"type": "subscribe", "roomId": odd, "ref": "s1"})
    error = await sock.expect("error")
    assert (error["code"], error["ref"]) == ("validation_failed", "s1")
    await sock.send({"type": "subscribe", "roomId": room["roomId"], "ref": "s2"})
    assert (await sock.expect("subscribed"))["ref"] == "s2"
    await assert_still_serving(api)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/create"),
        ("PUT", "/api/create"),
        ("DELETE", "/api/login"),
        ("PATCH", "/api/login"),
        ("POST", "/api/health"),
        ("DELETE", "/api/openapi.json"),
        ("PROPFIND", "/api/create"),
    ],
)
async def test_a_wrong_method_is_a_json_405(api, method, path):
    assert_error(await api.request(method, path), 405, "method_not_allowed")
    await assert_still_serving(api)


@pytest.mark.gen_test
async def test_a_wrong_method_on_an_authenticated_path_checks_the_token_first(api):
    user = await api.user()
    url = f"/api/profile/{user.user_id}"
    assert_error(await api.request("DELETE", url), 401, "unauthorized")
    assert_error(await api.request("DELETE", url, token=user.token), 405, "method_not_allowed")
    assert_error(
        await api.request("PUT", "/api/logout", token=user.token), 405, "method_not_allowed"
    )
    await assert_still_serving(api)


@pytest.mark.gen_test
async def test_an_unexpected_fault_is_a_500_without_its_details(api, monkeypatch):
    async def broken(ctx, **kwargs):
        raise RuntimeError("SELECT secret FROM users WHERE password = 'hunter22'")

    monkeypatch.setattr(user_actions, "register", broken)
    resp = await api.post("/api/create", registration())
    assert_error(resp, 500, "internal")
    assert resp.body == {"error": {"code": "internal", "message": resp.body["error"]["message"]}}
    for leak in (b"SELECT", b"secret", b"hunter22", b"RuntimeError", b"Traceback", b".py"):
        assert leak not in resp.raw
    await assert_still_serving(api)
    monkeypatch.undo()
    assert (await api.post("/api/create", registration())).status == 201
