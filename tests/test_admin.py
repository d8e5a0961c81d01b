"""The operator API: every /api/admin route is behind the one admin-key check."""

import pytest

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
