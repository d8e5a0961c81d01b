"""Accounts: registration, login, logout, profiles, operator grants."""

import pytest

from conftest import PASSWORD, query


@pytest.mark.gen_test
async def test_register_returns_own_profile_without_secrets(api):
    resp = await api.post("/api/create", {
        "userId": "reg_alice", "deviceId": "d1", "name": "Alice", "phone": "+15550000001",
        "password": PASSWORD, "availCoins": 300, "isPrime": True})
    assert resp.status == 201
    assert resp.body == {"user": {
        "userId": "reg_alice", "name": "Alice", "isPrime": True,
        "createdAt": resp.body["user"]["createdAt"], "phone": "+15550000001",
        "deviceId": "d1", "availCoins": 300, "freeJoinUsed": False}}
    assert resp.body["user"]["createdAt"].endswith("Z")
