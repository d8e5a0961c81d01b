"""GET /metrics: Prometheus text that counts what the server did, without ids in labels."""

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

import settings as settings_module
from chat.auth.ratelimit import parse_rates
from helpers import PASSWORD


def settings_metrics(text):
    """CHAT_METRICS's value for ``text``, as the server would parse it."""
    return settings_module.load_settings(
        ["server.py", f"--metrics={text}"], environ={}, var_dir="/nonexistent"
    ).metrics


async def scrape(api):
    resp = await api.http.fetch(api.base_url + "/metrics", raise_error=False)
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(resp.body.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.gen_test
async def test_requests_are_counted_by_route_template_and_status(api):
    user = await api.user()
    before = await scrape(api)
    for _ in range(3):
        assert (await api.get(f"/api/profile/{user.user_id}", token=user.token)).status == 200
    assert (await api.get(f"/api/profile/{user.user_id}")).status == 401
    after = await scrape(api)
    ok = {"method": "GET", "route": "/api/profile/{id}", "status": "200"}
    key = "chat_http_requests_total"
    assert value(after, key, **ok) - value(before, key, **ok) == 3
    refused = dict(ok, status="401")
    assert value(after, key, **refused) - value(before, key, **refused) == 1
    count = "chat_http_request_duration_seconds_count"
    assert value(after, count, **ok) - value(before, count, **ok) == 3
    buckets = [
        v
        for (name, labels), v in after.items()
        if name == "chat_http_request_duration_seconds_bucket" and set(ok.items()) <= set(labels)
    ]
    assert len(buckets) > 5 and max(buckets) == value(after, count, **ok)
    # No label anywhere holds an id.
    for _, labels in after:
        for _, label in labels:
            assert user.user_id.lower() not in label.lower()
    unknown = await api.get("/no/such/path/" + user.user_id)
    assert unknown.status == 404
    final = await scrape(api)
    assert value(final, key, method="GET", route="unmatched", status="404") >= 1


@pytest.mark.gen_test
async def test_messages_sockets_batches_pools_and_broker_are_reported(api):
    owner = await api.user(prime=True)
    room = await api.room(owner)
    sock = await api.socket(owner)
    await sock.send({"type": "subscribe", "roomId": room["roomId"]})
    await sock.expect("subscribed")
    before = await scrape(api)
    assert value(before, "chat_websockets_open") >= 1
    for n in range(3):
        resp = await api.post(
            "/api/messages", {"roomId": room["roomId"], "content": f"m{n}"}, token=owner.token
        )
        assert resp.status == 201
        await sock.expect("message")
    again = await api.post(
        "/api/messages",
        {"roomId": room["roomId"], "content": "x", "clientMsgId": "c1"},
        token=owner.token,
    )
    assert again.status == 201
    await sock.expect("message")
    repeat = await api.post(
        "/api/messages",
        {"roomId": room["roomId"], "content": "x", "clientMsgId": "c1"},
        token=owner.token,
    )
    assert repeat.status == 200  # stored once
    after = await scrape(api)
    assert (
        value(after, "chat_messages_stored_total") - value(before, "chat_messages_stored_total")
        == 4
    )
    assert (
        value(after, "chat_messages_delivered_total")
        - value(before, "chat_messages_delivered_total")
        == 4
    )
    batches = "chat_write_batch_size_count"
    assert value(after, batches, writer="messages") - value(before, batches, writer="messages") >= 1
    for pool in ("reads", "writes"):
        assert value(after, "chat_db_pool_connections_max", pool=pool) >= 1
        assert ("chat_db_pool_waiting", (("pool", pool),)) in after
    assert value(after, "chat_broker_state", state="not_configured") == 1
    assert value(after, "chat_broker_state", state="ok") == 0

    sock.close()
    for _ in range(100):
        if value(await scrape(api), "chat_websockets_open") < value(before, "chat_websockets_open"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the closed socket is still counted")


@pytest.mark.gen_test
@pytest.mark.settings(rate_limits="on", limit_login_failures=parse_rates("1/300"))
async def test_rate_limit_refusals_are_counted(api):
    user = await api.user()
    before = await scrape(api)
    statuses = []
    for _ in range(3):
        resp = await api.post("/api/login", {"userId": user.user_id, "password": PASSWORD + "x"})
        statuses.append(resp.status)
    assert 429 in statuses
    after = await scrape(api)
    labels = {"reason": "rate_limited", "transport": "http"}
    assert value(after, "chat_refusals_total", **labels) - value(
        before, "chat_refusals_total", **labels
    ) == statuses.count(429)


@pytest.mark.gen_test
@pytest.mark.settings(metrics=())
async def test_metrics_can_be_turned_off(api):
    resp = await api.get("/metrics")
    assert (resp.status, resp.body["error"]["code"]) == (404, "not_found")


@pytest.mark.gen_test
@pytest.mark.settings(metrics=settings_metrics("10.9.9.0/24,192.0.2.1"))
async def test_metrics_are_refused_to_unlisted_addresses(api):
    resp = await api.get("/metrics")
    assert (resp.status, resp.body["error"]["code"]) == (403, "forbidden")


@pytest.mark.gen_test
@pytest.mark.settings(metrics=settings_metrics("10.9.9.0/24,127.0.0.1"))
async def test_metrics_are_served_to_listed_addresses(api):
    assert await scrape(api)
