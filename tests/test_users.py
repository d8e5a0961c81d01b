"""Accounts: registration, login, logout, profiles, operator grants."""

import asyncio
import secrets
import time
import warnings

import jwt
import pytest

from chat import routes
from chat.auth.ratelimit import parse_rates
from helpers import PASSWORD, TEST_SECRET, query, revoke_behind_the_broker, served_routes

ADMIN_KEY = "operator-key-" + "0123456789abcdef"
OWN_PROFILE = {
    "userId",
    "name",
    "isPrime",
    "createdAt",
    "phone",
    "deviceId",
    "availCoins",
    "freeJoinUsed",
}
PROFILE = {"userId", "name", "isPrime", "createdAt"}


def phone():
    return "+1" + str(secrets.randbelow(10**12)).zfill(12)


def new_user(**fields):
    """A valid registration body with a fresh userId and phone."""
    return {
        "userId": "u_" + secrets.token_hex(6),
        "deviceId": "dev-1",
        "name": "Someone",
        "phone": phone(),
        "password": PASSWORD,
        **fields,
    }


def count_users(sql, user_id=None, phone=None):
    column, value = ("user_id", user_id) if phone is None else ("phone", phone)
    return query(sql, f"SELECT COUNT(*) AS n FROM users WHERE {column} = %s", value)[0]["n"]


def ledger(sql, user_id):
    return list(
        query(
            sql,
            "SELECT delta, balance_after, reason FROM coin_ledger "
            "WHERE user_id = %s ORDER BY entry_id",
            user_id,
        )
    )


def balance(sql, user_id):
    return query(sql, "SELECT avail_coins FROM users WHERE user_id = %s", user_id)[0]["avail_coins"]


def assert_error(resp, status, code):
    assert resp.status == status, resp.body
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.body["error"]["code"] == code, resp.body
    assert isinstance(resp.body["error"]["message"], str)


def token_for(user_id, secret=TEST_SECRET, algorithm="HS256", **changes):
    now = int(time.time())
    claims = {"sub": user_id, "jti": secrets.token_hex(16), "iat": now, "exp": now + 600}
    claims["sid"] = None
    claims.update(changes)
    with warnings.catch_warnings():
        # HS512 with the (HS256-sized) test secret: PyJWT warns about the key length.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(
            {k: v for k, v in claims.items() if v is not None}, secret, algorithm=algorithm
        )


# --- registration ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_register_returns_own_profile_without_secrets(api):
    resp = await api.post(
        "/api/create",
        {
            "userId": "reg_alice",
            "deviceId": "d1",
            "name": "Alice",
            "phone": "+15550000001",
            "password": PASSWORD,
            "availCoins": 300,
            "isPrime": True,
        },
    )
    assert resp.status == 201
    assert resp.body == {
        "user": {
            "userId": "reg_alice",
            "name": "Alice",
            "isPrime": True,
            "createdAt": resp.body["user"]["createdAt"],
            "phone": "+15550000001",
            "deviceId": "d1",
            "availCoins": 300,
            "freeJoinUsed": False,
        }
    }
    assert resp.body["user"]["createdAt"].endswith("Z")


@pytest.mark.gen_test
async def test_register_defaults_to_no_coins_and_not_prime(api):
    resp = await api.post("/api/create", new_user())
    assert resp.status == 201
    assert set(resp.body["user"]) == OWN_PROFILE
    assert resp.body["user"]["availCoins"] == 0
    assert resp.body["user"]["isPrime"] is False


@pytest.mark.gen_test
async def test_register_accepts_every_boundary_value(api):
    body = new_user(
        userId="a." + secrets.token_hex(31),
        deviceId="d" * 128,
        name="n" * 64,
        phone="+" + "9" * 15,
        password="é" * 36,
        availCoins=0,
        isPrime=False,
    )
    assert len(body["userId"]) == 64 and len(body["password"].encode()) == 72
    resp = await api.post("/api/create", body)
    assert resp.status == 201, resp.body
    short = new_user(
        userId="x_" + secrets.token_hex(1)[:1],
        phone="+" + str(secrets.randbelow(10**7)).zfill(7),
        password="éééé",
        deviceId="d",
        name="n",
    )
    assert len(short["userId"]) == 3 and len(short["password"].encode()) == 8
    resp = await api.post("/api/create", short)
    assert resp.status == 201, resp.body


@pytest.mark.gen_test
async def test_a_72_byte_multibyte_password_logs_in(api):
    body = new_user(password="é" * 36)
    assert (await api.post("/api/create", body)).status == 201
    login = await api.post("/api/login", {"userId": body["userId"], "password": "é" * 36})
    assert login.status == 200
    wrong = await api.post("/api/login", {"userId": body["userId"], "password": "é" * 35 + "e"})
    assert_error(wrong, 401, "invalid_credentials")


INVALID = [
    # (field, value): value None means "leave the field out", except for isPrime: null
    ("userId", None),
    ("userId", "ab"),
    ("userId", "a" * 65),
    ("userId", "has space"),
    ("userId", "slash/user"),
    ("userId", "ünïcode"),
    ("userId", 12345),
    ("deviceId", None),
    ("deviceId", ""),
    ("deviceId", "d" * 129),
    ("deviceId", 7),
    ("name", None),
    ("name", ""),
    ("name", "n" * 65),
    ("name", "    "),
    ("name", ["x"]),
    ("phone", None),
    ("phone", "15551234567"),
    ("phone", "+123456"),
    ("phone", "+1234567890123456"),
    ("phone", "+1555abc4567"),
    ("phone", 15551234567),
    ("password", None),
    ("password", "seven77"),
    ("password", "ééé7"),
    ("password", "é" * 36 + "x"),
    ("password", "p" * 73),
    ("password", 12345678),
    ("availCoins", -1),
    ("availCoins", 1.5),
    ("availCoins", True),
    ("availCoins", "10"),
    ("availCoins", 10**12),
    ("isPrime", "true"),
    ("isPrime", 1),
    ("isPrime", None),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("field,value", INVALID)
async def test_register_rejects_invalid_field(api, sql, field, value):
    body = new_user()
    if value is None and field != "isPrime":
        del body[field]
    else:
        body[field] = value
    resp = await api.post("/api/create", body)
    assert_error(resp, 400, "validation_failed")
    problems = resp.body["error"]["details"]["errors"]
    assert {p["field"] for p in problems} == {field}, problems
    for problem in problems:
        assert set(problem) == {"field", "message"} and problem["message"]
    if isinstance(value, str) and len(value) >= 5:
        assert value.encode() not in resp.raw, "the value sent must not be echoed"
    if field == "userId":
        assert count_users(sql, phone=body["phone"]) == 0
    else:
        assert count_users(sql, body["userId"]) == 0


@pytest.mark.gen_test
async def test_register_rejects_unknown_fields_and_lists_every_problem(api, sql):
    body = new_user(isAdmin=True, phone="555", name="")
    resp = await api.post("/api/create", body)
    assert_error(resp, 400, "validation_failed")
    problems = {p["field"]: p["message"] for p in resp.body["error"]["details"]["errors"]}
    assert set(problems) == {"isAdmin", "phone", "name"}
    assert problems["isAdmin"] == "is not allowed here"
    assert count_users(sql, body["userId"]) == 0


@pytest.mark.gen_test
async def test_register_refuses_a_taken_user_id_in_any_case_and_a_taken_phone(api, sql):
    first = new_user(userId="Taken_" + secrets.token_hex(4))
    assert (await api.post("/api/create", first)).status == 201
    same = await api.post("/api/create", new_user(userId=first["userId"]))
    assert_error(same, 409, "user_exists")
    other_case = await api.post("/api/create", new_user(userId=first["userId"].lower()))
    assert_error(other_case, 409, "user_exists")
    upper = await api.post("/api/create", new_user(userId=first["userId"].upper()))
    assert_error(upper, 409, "user_exists")
    same_phone = new_user(phone=first["phone"])
    assert_error(await api.post("/api/create", same_phone), 409, "user_exists")
    assert count_users(sql, first["userId"]) == 1
    assert count_users(sql, same_phone["userId"]) == 0


@pytest.mark.gen_test
async def test_registration_grant_is_in_the_ledger(api, sql):
    rich = await api.post("/api/create", new_user(availCoins=300))
    user_id = rich.body["user"]["userId"]
    assert ledger(sql, user_id) == [{"delta": 300, "balance_after": 300, "reason": "signup_grant"}]
    assert balance(sql, user_id) == 300
    poor = await api.post("/api/create", new_user())
    assert ledger(sql, poor.body["user"]["userId"]) == []


# --- login ------------------------------------------------------------------


@pytest.mark.gen_test
async def test_login_by_user_id_and_by_phone(api, settings):
    body = new_user()
    created = await api.post("/api/create", body)
    for credentials in ({"userId": body["userId"]}, {"phone": body["phone"]}):
        resp = await api.post("/api/login", {**credentials, "password": PASSWORD})
        assert resp.status == 200, resp.body
        assert set(resp.body) == {
            "token",
            "tokenType",
            "expiresIn",
            "refreshToken",
            "refreshExpiresIn",
            "sessionId",
            "user",
        }
        assert resp.body["tokenType"] == "Bearer"
        assert resp.body["expiresIn"] == settings.token_ttl
        assert resp.body["user"] == created.body["user"]
        claims = jwt.decode(resp.body["token"], TEST_SECRET, algorithms=["HS256"])
        assert claims["sub"] == body["userId"]
        assert claims["exp"] - claims["iat"] == settings.token_ttl
        me = await api.get(f"/api/profile/{body['userId']}", token=resp.body["token"])
        assert me.status == 200


@pytest.mark.gen_test
async def test_login_takes_an_optional_device_id(api):
    body = new_user()
    await api.post("/api/create", body)
    resp = await api.post(
        "/api/login", {"userId": body["userId"], "password": PASSWORD, "deviceId": "tablet-2"}
    )
    assert resp.status == 200
    assert jwt.decode(resp.body["token"], TEST_SECRET, algorithms=["HS256"])["did"] == "tablet-2"
    bad = await api.post(
        "/api/login", {"userId": body["userId"], "password": PASSWORD, "deviceId": ""}
    )
    assert_error(bad, 400, "validation_failed")


@pytest.mark.gen_test
async def test_login_needs_exactly_one_of_user_id_and_phone(api):
    body = new_user()
    await api.post("/api/create", body)
    both = await api.post(
        "/api/login", {"userId": body["userId"], "phone": body["phone"], "password": PASSWORD}
    )
    assert_error(both, 400, "validation_failed")
    neither = await api.post("/api/login", {"password": PASSWORD})
    assert_error(neither, 400, "validation_failed")


@pytest.mark.gen_test
async def test_invalid_credentials_look_the_same_for_unknown_user_and_wrong_password(api):
    body = new_user()
    await api.post("/api/create", body)
    answers = [
        await api.post("/api/login", {"userId": body["userId"], "password": "wrong password"}),
        await api.post(
            "/api/login", {"userId": "nobody_" + secrets.token_hex(4), "password": "wrong password"}
        ),
        await api.post("/api/login", {"phone": body["phone"], "password": "wrong password"}),
        await api.post("/api/login", {"phone": phone(), "password": "wrong password"}),
    ]
    for resp in answers:
        assert_error(resp, 401, "invalid_credentials")
    assert len({resp.raw for resp in answers}) == 1


@pytest.mark.gen_test
async def test_login_with_an_overlong_password_is_invalid_credentials(api):
    """bcrypt refuses more than 72 bytes; a login must still be a plain 401."""
    body = new_user()
    await api.post("/api/create", body)
    resp = await api.post("/api/login", {"userId": body["userId"], "password": PASSWORD * 5})
    assert_error(resp, 401, "invalid_credentials")


@pytest.mark.gen_test
@pytest.mark.settings(rate_limits="on", limit_login_failures=parse_rates("3/300"))
async def test_failed_logins_are_rate_limited(api, settings):
    body = new_user()
    await api.post("/api/create", body)
    wrong = {"userId": body["userId"], "password": "wrong password"}
    for _ in range(3):
        assert_error(await api.post("/api/login", wrong), 401, "invalid_credentials")
    limited = await api.post("/api/login", wrong)
    assert_error(limited, 429, "rate_limited")
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 100
    assert limited.body["error"]["details"] == {"retryAfter": retry_after}
    # Even the right password waits, whatever the case of the userId.
    right = await api.post("/api/login", {"userId": body["userId"].upper(), "password": PASSWORD})
    assert_error(right, 429, "rate_limited")
    # Another account is not affected.
    other = new_user()
    await api.post("/api/create", other)
    ok = await api.post("/api/login", {"userId": other["userId"], "password": PASSWORD})
    assert ok.status == 200


@pytest.mark.gen_test
@pytest.mark.settings(rate_limits="on", limit_login_failures=parse_rates("3/300"))
async def test_a_successful_login_is_not_counted_as_a_failure(api):
    body = new_user()
    await api.post("/api/create", body)
    wrong = {"userId": body["userId"], "password": "wrong password"}
    for _ in range(2):
        assert_error(await api.post("/api/login", wrong), 401, "invalid_credentials")
    for _ in range(3):
        ok = await api.post("/api/login", {"userId": body["userId"], "password": PASSWORD})
        assert ok.status == 200
    assert_error(await api.post("/api/login", wrong), 401, "invalid_credentials")
    assert_error(await api.post("/api/login", wrong), 429, "rate_limited")


# --- logout and tokens --------------------------------------------------------


def authenticated_operations(app):
    """(method, sample url) of every served operation documented as taking a bearer token."""
    served = served_routes(app)
    for route in routes.ROUTES:
        if route.pattern not in served:
            continue
        for method, op in route.operations.items():
            if op.auth == "bearer":
                yield (
                    method.upper(),
                    route.path.replace("{userId}", "someone")
                    .replace("{roomId}", "someroom")
                    .replace("{requestId}", "1")
                    .replace("{sessionId}", "somesession"),
                )


@pytest.mark.gen_test
async def test_logout_revokes_the_token_on_every_authenticated_endpoint(api, app):
    user = await api.user()
    second = await api.post("/api/login", {"userId": user.user_id, "password": PASSWORD})
    out = await api.post("/api/logout", token=user.token)
    assert out.status == 204 and out.raw == b""
    operations = list(authenticated_operations(app))
    assert len(operations) >= 3
    for method, url in operations:
        body = {} if method == "POST" else None
        resp = await api.request(method, url, body, token=user.token)
        assert_error(resp, 401, "unauthorized")
    # Only the token in use is revoked.
    me = await api.get(f"/api/profile/{user.user_id}", token=second.body["token"])
    assert me.status == 200


@pytest.mark.gen_test
async def test_a_crafted_token_is_accepted_only_when_valid(api):
    user = await api.user()
    url = f"/api/profile/{user.user_id}"
    sid = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])["sid"]
    assert (await api.get(url, token=token_for(user.user_id, sid=sid))).status == 200
    bad = [
        token_for(user.user_id),  # no session
        token_for(user.user_id, sid="0" * 32),  # a session that never existed
        token_for(user.user_id, sid=sid, exp=int(time.time()) - 5),
        token_for(user.user_id, sid=sid, secret="another-secret-" + "x" * 32),
        token_for(user.user_id, sid=sid, secret=None, algorithm="none"),
        token_for(user.user_id, sid=sid, sub=None),
        token_for(user.user_id, sid=sid, jti=None),
        token_for(user.user_id, sid=sid, exp=None),
        token_for(user.user_id, sid=sid, sub=12345),
        token_for(user.user_id, sid=sid, algorithm="HS512"),
        token_for(user.user_id, sid=sid)[:-4] + "AAAA",
        "not-a-jwt",
    ]
    for token in bad:
        assert_error(await api.get(url, token=token), 401, "unauthorized")


@pytest.mark.gen_test
async def test_malformed_authorization_headers_are_unauthorized(api):
    user = await api.user()
    url = f"/api/profile/{user.user_id}"
    for header in [
        "",
        "Bearer",
        "Bearer ",
        f"Token {user.token}",
        user.token,
        f"Basic {user.token}",
        f"Bearer{user.token}",
    ]:
        resp = await api.get(url, headers={"Authorization": header})
        assert_error(resp, 401, "unauthorized")
    assert_error(await api.get(url), 401, "unauthorized")


# --- profiles -----------------------------------------------------------------


@pytest.mark.gen_test
async def test_own_profile_and_someone_elses(api):
    me = await api.user(coins=40)
    other = await api.user(prime=True)
    own = await api.get(f"/api/profile/{me.user_id}", token=me.token)
    assert own.status == 200
    assert own.body["user"] == me.profile
    assert set(own.body["user"]) == OWN_PROFILE and own.body["user"]["availCoins"] == 40
    shouted = await api.get(f"/api/profile/{me.user_id.upper()}", token=me.token)
    assert shouted.body["user"] == me.profile
    theirs = await api.get(f"/api/profile/{other.user_id}", token=me.token)
    assert theirs.status == 200
    assert theirs.body["user"] == {key: other.profile[key] for key in PROFILE}
    missing = await api.get("/api/profile/nobody_" + secrets.token_hex(4), token=me.token)
    assert_error(missing, 404, "not_found")


@pytest.mark.gen_test
async def test_profiles_viewed_together_each_get_their_own_answer(api):
    # Views at the same moment share one query: each answer must still be its own,
    # whatever the case of the userId asked for, and a missing user a 404.
    viewer = await api.user()
    users = [await api.user(prime=i % 2 == 0, name=f"Name {i}") for i in range(6)]
    asked = (
        [u.user_id for u in users]
        + [u.user_id.upper() for u in users]
        + ["nobody_" + secrets.token_hex(4)]
    )
    results = await asyncio.gather(
        *(api.get(f"/api/profile/{user_id}", token=viewer.token) for user_id in asked)
    )
    expected = [{key: u.profile[key] for key in PROFILE} for u in users] * 2
    assert [r.body["user"] for r in results[:-1]] == expected
    assert_error(results[-1], 404, "not_found")


# --- operator grants --------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.settings(signup_grants="operator", admin_key=ADMIN_KEY)
async def test_operator_mode_refuses_self_granted_coins_and_prime(api, sql):
    for grant in ({"availCoins": 10}, {"isPrime": True}, {"availCoins": 1, "isPrime": True}):
        body = new_user(**grant)
        assert_error(await api.post("/api/create", body), 403, "forbidden")
        assert count_users(sql, body["userId"]) == 0
    for plain in ({}, {"availCoins": 0, "isPrime": False}):
        resp = await api.post("/api/create", new_user(**plain))
        assert resp.status == 201
        assert resp.body["user"]["availCoins"] == 0 and resp.body["user"]["isPrime"] is False


@pytest.mark.gen_test
@pytest.mark.settings(signup_grants="operator", admin_key=ADMIN_KEY)
async def test_operator_grants_coins_and_prime_into_the_ledger(api, sql):
    user = await api.user()
    url = f"/api/admin/users/{user.user_id}/grants"
    key = {"X-Admin-Key": ADMIN_KEY}
    assert_error(await api.post(url, {"coins": 5}), 403, "forbidden")
    assert_error(
        await api.post(url, {"coins": 5}, headers={"X-Admin-Key": "wrong"}), 403, "forbidden"
    )
    assert_error(
        await api.post(url, {"coins": 5}, headers={"X-Admin-Key": ADMIN_KEY + "x"}),
        403,
        "forbidden",
    )
    assert_error(await api.post(url, {"coins": 5}, token=user.token), 403, "forbidden")
    assert_error(
        await api.post("/api/admin/users/nobody_here/grants", {"coins": 5}, headers=key),
        404,
        "not_found",
    )
    assert_error(await api.post(url, {}, headers=key), 400, "validation_failed")
    assert_error(await api.post(url, {"coins": 0}, headers=key), 400, "validation_failed")
    assert ledger(sql, user.user_id) == []

    first = await api.post(url, {"coins": 100}, headers=key)
    assert first.status == 200 and first.body["user"]["availCoins"] == 100
    second = await api.post(
        url.replace(user.user_id, user.user_id.upper()), {"coins": 50, "isPrime": True}, headers=key
    )
    assert second.status == 200
    assert second.body["user"]["availCoins"] == 150 and second.body["user"]["isPrime"] is True
    me = await api.get(f"/api/profile/{user.user_id}", token=user.token)
    assert me.body["user"]["availCoins"] == 150 and me.body["user"]["isPrime"] is True

    assert ledger(sql, user.user_id) == [
        {"delta": 100, "balance_after": 100, "reason": "operator_grant"},
        {"delta": 50, "balance_after": 150, "reason": "operator_grant"},
    ]
    assert sum(row["delta"] for row in ledger(sql, user.user_id)) == balance(sql, user.user_id)


@pytest.mark.gen_test
async def test_grants_are_closed_without_an_admin_key(api):
    user = await api.user()
    for headers in ({}, {"X-Admin-Key": ""}, {"X-Admin-Key": ADMIN_KEY}):
        resp = await api.post(
            f"/api/admin/users/{user.user_id}/grants", {"coins": 5}, headers=headers
        )
        assert_error(resp, 403, "forbidden")


@pytest.mark.gen_test
@pytest.mark.settings(token_ttl=2)
async def test_a_token_already_used_is_refused_once_it_expires(api):
    user = await api.user()
    path = f"/api/profile/{user.user_id}"
    assert (await api.get(path, token=user.token)).status == 200
    await asyncio.sleep(2.2)
    resp = await api.get(path, token=user.token)
    assert (resp.status, resp.body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.gen_test
async def test_tokens_first_seen_together_are_each_checked(api, sql):
    # Their revocation look-ups share one query: each answer must still be its own.
    users = [await api.user() for _ in range(10)]
    for user in users[::3]:
        revoke_behind_the_broker(sql, user)
    results = await asyncio.gather(
        *(api.get(f"/api/profile/{u.user_id}", token=u.token) for u in users)
    )
    assert [r.status for r in results] == [401 if i % 3 == 0 else 200 for i in range(10)]


@pytest.mark.gen_test
@pytest.mark.settings(token_recheck=0.3)
async def test_a_logout_known_only_to_the_database_takes_effect_within_the_recheck(api, sql):
    user = await api.user()
    path = f"/api/profile/{user.user_id}"
    assert (await api.get(path, token=user.token)).status == 200
    # As a logout served by another process whose broadcast was lost leaves it.
    revoke_behind_the_broker(sql, user)
    await asyncio.sleep(0.5)
    resp = await api.get(path, token=user.token)
    assert (resp.status, resp.body["error"]["code"]) == (401, "unauthorized")
