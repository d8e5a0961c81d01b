"""Logs: one JSON object a line, request ids on every line a request causes, no secrets."""

import json
import re
import signal

import pytest

from helpers import PASSWORD

BCRYPT = re.compile(r"\$2[aby]\$")


def records(server):
    """Every line the server logged, parsed; the server is stopped first."""
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    lines = server.log().splitlines()
    assert lines
    parsed = [json.loads(line) for line in lines]  # each line is one JSON object
    for record in parsed:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert record["time"].endswith("Z")
    return lines, parsed


@pytest.mark.gen_test(timeout=60)
async def test_json_lines_with_request_ids_and_nothing_secret(server_procs):
    server = server_procs(log_format="json", log_level="DEBUG")
    api = server.api
    content = "a private message 7f3a"
    room_password = "room-secret-91c2"

    created = await api.post(
        "/api/create",
        {
            "userId": "logs_owner_" + server.base_url[-5:],
            "deviceId": "d",
            "name": "Owner",
            "phone": "+1555" + server.base_url[-5:] + "01",
            "password": PASSWORD,
            "isPrime": True,
        },
        headers={"X-Request-Id": "trace-register-1"},
    )
    assert created.status == 201
    assert created.headers["X-Request-Id"] == "trace-register-1"
    owner_id = created.body["user"]["userId"]
    login = await api.post("/api/login", {"userId": owner_id, "password": PASSWORD})
    token = login.body["token"]
    assert re.fullmatch(r"[0-9a-f]{16}", login.headers["X-Request-Id"])  # one made up
    other = await api.user(prime=True)
    room = await api.room(type("U", (), {"token": token})(), password=room_password)
    invite = await api.post(
        "/api/invite", {"roomId": room["roomId"], "userId": other.user_id}, token=token
    )
    invite_token = invite.body["invitation"]["token"]
    assert (
        await api.post("/api/joinroom", {"inviteToken": invite_token}, token=other.token)
    ).status == 200
    sent = await api.post(
        "/api/messages", {"roomId": room["roomId"], "content": content}, token=token
    )
    assert sent.status == 201
    wrong = await api.post("/api/login", {"userId": owner_id, "password": "wrong password"})
    assert wrong.status == 401
    odd = await api.get("/api/health", headers={"X-Request-Id": "not a sane id!"})
    assert odd.headers["X-Request-Id"] != "not a sane id!"

    lines, parsed = records(server)
    text = "\n".join(lines)
    for secret in (
        PASSWORD,
        "wrong password",
        room_password,
        token,
        other.token,
        invite_token,
        content,
    ):
        assert secret not in text
    assert not BCRYPT.search(text)

    access = [r for r in parsed if r["logger"] == "chat.access"]
    assert access and all(
        {"requestId", "remote", "method", "route", "path", "status", "durationMs"} <= set(r)
        for r in access
    )
    # Client errors are INFO, not WARNING.
    refused = [r for r in access if r["status"] == 401]
    assert refused and {r["level"] for r in refused} == {"INFO"}
    assert not [r for r in parsed if r["level"] == "WARNING" and r["logger"] == "chat.access"]

    # Every line the registration caused carries its id: the access line and the
    # database's transaction line (DEBUG) alike.
    traced = [r for r in parsed if r.get("requestId") == "trace-register-1"]
    assert {r["logger"] for r in traced} >= {"chat.access", "chat.db"}, traced
    assert [r["route"] for r in traced if r["logger"] == "chat.access"] == ["/api/create"]


@pytest.mark.gen_test(timeout=60)
async def test_text_is_the_default_and_the_level_is_a_setting(server_procs):
    server = server_procs(log_level="WARNING")
    assert (await server.api.get("/api/health")).status == 200
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    assert " INFO " not in server.log() and "chat.access" not in server.log()
    quiet = server_procs()
    assert (await quiet.api.get("/api/health")).status == 200
    quiet.signal(signal.SIGTERM)
    assert quiet.wait(30) == 0
    assert re.search(
        r"^\S+ \S+ INFO chat.access: GET /api/health 200 .* \[[0-9a-f]{16}\]$", quiet.log(), re.M
    )
