"""The operator API: every /api/admin route is behind the one admin-key check."""

import secrets

import jsonschema
import pytest

from chat.api import openapi
from chat.web.admin import AdminHandler
from helpers import served_routes

ADMIN_KEY = "admin-key-" + "o" * 16


def test_every_operator_route_derives_from_the_admin_base(app):
    admin = {p: h for p, h in served_routes(app).items() if p.startswith("/api/admin/")}
    assert admin, "no operator routes"
    for pattern, handler in admin.items():
        assert issubclass(handler, AdminHandler), pattern
    others = [p for p, h in served_routes(app).items() if p not in admin]
    for pattern in others:
        assert not issubclass(served_routes(app)[pattern], AdminHandler), pattern


@pytest.mark.gen_test
@pytest.mark.settings(admin_key=ADMIN_KEY)
async def test_operator_routes_refuse_a_missing_or_wrong_key_before_the_body(api):
    user = await api.user()
    url = f"/api/admin/users/{user.user_id}/grants"
    for headers in ({}, {"X-Admin-Key": "wrong"}, {"X-Admin-Key": ADMIN_KEY[:-1]}):
        # Even a body that is not JSON is refused for the key first.
        resp = await api.post(url, raw=b"not json", headers=headers)
        assert (resp.status, resp.body["error"]["code"]) == (403, "forbidden")


# --- the operator's listings ---------------------------------------------------

KEY = {"X-Admin-Key": ADMIN_KEY}


def documented(doc, path, resp):
    """``resp`` (a 200) has the body the OpenAPI document declares for GET ``path``."""
    schema = doc["paths"][path]["get"]["responses"][str(resp.status)]["content"]
    root = dict(schema["application/json"]["schema"], components=doc["components"])
    jsonschema.Draft202012Validator(root).validate(resp.body)


async def pages(api, path, params, key):
    """Every item of a paged listing, following ``next`` until it is null."""
    items, params = [], dict(params)
    while True:
        resp = await api.get(path, params=params, headers=KEY)
        assert resp.status == 200, resp.body
        documented(openapi.document(), path, resp)
        items += resp.body[key]
        if resp.body["next"] is None:
            return items
        params["after"] = resp.body["next"]


@pytest.mark.gen_test
@pytest.mark.settings(admin_key=ADMIN_KEY)
async def test_operator_lists_and_searches_users_page_by_page(api):
    tag = "op" + secrets.token_hex(4)
    made = [await api.user(userId=f"{tag}_{n}", name=f"Name {n} {tag.upper()}") for n in range(5)]
    ids = [u.user_id for u in made]

    # Unfiltered: in userId order from a cursor; a page holds at most `limit`.
    first = await api.get("/api/admin/users", params={"after": tag, "limit": 3}, headers=KEY)
    assert [u["userId"] for u in first.body["users"]] == ids[:3]
    assert first.body["next"] == ids[2]
    assert first.body["users"][0] == made[0].profile  # the whole account, no hash

    # Searched by userId prefix, name part (any case) or phone prefix; paged.
    assert [
        u["userId"] for u in await pages(api, "/api/admin/users", {"q": tag, "limit": 2}, "users")
    ] == ids
    by_name = await pages(api, "/api/admin/users", {"q": f"e 3 {tag}"}, "users")
    assert [u["userId"] for u in by_name] == [ids[3]]
    by_phone = await pages(api, "/api/admin/users", {"q": made[1].phone}, "users")
    assert [u["userId"] for u in by_phone] == [ids[1]]
    # LIKE wildcards in the query are plain characters.
    for q in ("%", f"{tag}%", "_" * 8, "💬"):
        resp = await api.get("/api/admin/users", params={"q": q}, headers=KEY)
        assert resp.status == 200 and resp.body == {"users": [], "next": None}, q
    # Text beyond ASCII is searched in names (accents ignored, as the collation does).
    accented = await api.get("/api/admin/users", params={"q": f"NAMÉ 4 {tag}"}, headers=KEY)
    assert [u["userId"] for u in accented.body["users"]] == [ids[4]]

    for params in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"q": ""}, {"after": "a b"}):
        resp = await api.get("/api/admin/users", params=params, headers=KEY)
        assert (resp.status, resp.body["error"]["code"]) == (400, "validation_failed"), params


@pytest.mark.gen_test
@pytest.mark.settings(admin_key=ADMIN_KEY)
async def test_operator_reads_a_users_ledger(api):
    owner = await api.user(prime=True)
    rooms = [await api.room(owner) for _ in range(2)]
    user = await api.user(coins=200)
    for room in rooms:
        assert (await api.join(user, room["roomId"])).status == 200  # free, then 150
    grant = await api.post(f"/api/admin/users/{user.user_id}/grants", {"coins": 5}, headers=KEY)
    assert grant.status == 200

    path = "/api/admin/users/{userId}/ledger"
    url = f"/api/admin/users/{user.user_id}/ledger"
    resp = await api.get(url, headers=KEY)
    assert resp.status == 200
    documented(openapi.document(), path, resp)
    assert resp.body["user"]["availCoins"] == 55
    entries = [
        (e["delta"], e["balanceAfter"], e["reason"], e["roomId"]) for e in resp.body["entries"]
    ]
    assert entries == [
        (200, 200, "signup_grant", None),
        (-150, 50, "join_charge", rooms[1]["roomId"]),
        (5, 55, "operator_grant", None),
    ]
    assert resp.body["next"] is None
    first = await api.get(url, params={"limit": 2}, headers=KEY)
    rest = await api.get(url, params={"after": first.body["next"]}, headers=KEY)
    assert first.body["entries"] + rest.body["entries"] == resp.body["entries"]

    missing = await api.get("/api/admin/users/nobody_here/ledger", headers=KEY)
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")


@pytest.mark.gen_test
@pytest.mark.settings(admin_key=ADMIN_KEY)
async def test_operator_lists_rooms_with_member_counts(api):
    owner = await api.user(prime=True)
    made = [await api.room(owner, name=f"Room {n}") for n in range(3)]
    for _ in range(2):
        joiner = await api.user(prime=True)
        assert (await api.join(joiner, made[1]["roomId"])).status == 200
    listed = {r["roomId"]: r for r in await pages(api, "/api/admin/rooms", {"limit": 200}, "rooms")}
    for room, members in zip(made, (1, 3, 1), strict=True):
        got = listed[room["roomId"]]
        assert (got["name"], got["ownerId"], got["capacity"], got["memberCount"]) == (
            room["name"],
            owner.user_id,
            6,
            members,
        )
    resp = await api.get("/api/admin/rooms", params={"limit": 1}, headers=KEY)
    assert len(resp.body["rooms"]) == 1 and resp.body["next"] == resp.body["rooms"][0]["roomId"]


@pytest.mark.gen_test
@pytest.mark.settings(admin_key=ADMIN_KEY)
async def test_operator_listings_need_the_key(api):
    user = await api.user()
    for path in ("/api/admin/users", f"/api/admin/users/{user.user_id}/ledger", "/api/admin/rooms"):
        for headers in ({}, {"X-Admin-Key": "nope"}):
            resp = await api.get(path, token=user.token, headers=headers)
            assert (resp.status, resp.body["error"]["code"]) == (403, "forbidden"), path
