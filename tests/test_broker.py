"""RedisBroker against a real Redis: fan-out between brokers, order, outages."""

import asyncio
import logging
import time

import pytest
import redis

from chat.realtime.broker import LocalBroker


async def eventually(check, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)


def numsub(url, channel):
    """How many connections Redis has subscribed to ``channel``."""
    with redis.Redis.from_url(url) as r:
        return r.pubsub_numsub(channel)[0][1]


@pytest.mark.gen_test
async def test_publish_on_one_broker_reaches_listeners_on_both(brokers, redis_url):
    a, b = brokers(redis_url), brokers(redis_url)
    await a.start()
    await b.start()
    on_a, on_b, elsewhere = [], [], []
    assert await a.subscribe("r1", on_a.append) is True
    assert await b.subscribe("r1", on_b.append) is True
    await b.subscribe("r2", elsewhere.append)
    # Subscribed means subscribed: a publish right after the await is not missed.
    a.publish("r1", {"type": "message", "message": {"seq": 1, "content": "héllo"}})
    await eventually(lambda: on_a and on_b)
    await asyncio.sleep(0.1)
    assert on_a == on_b == [{"type": "message", "message": {"seq": 1, "content": "héllo"}}]
    assert elsewhere == []
    assert a.healthy and b.healthy


@pytest.mark.gen_test
async def test_per_room_order_is_kept_over_a_thousand_events(brokers, redis_url):
    a, b = brokers(redis_url), brokers(redis_url)
    await a.start()
    await b.start()
    seen = {("a", "x"): [], ("a", "y"): [], ("b", "x"): [], ("b", "y"): []}
    for (name, room), got in seen.items():
        await {"a": a, "b": b}[name].subscribe(room, lambda e, got=got: got.append(e["seq"]))
    for seq in range(1, 1001):
        # Room x from one process, room y from the other, interleaved and in bursts.
        a.publish("x", {"seq": seq})
        b.publish("y", {"seq": seq})
        if seq % 97 == 0:
            await asyncio.sleep(0)
    await eventually(lambda: all(len(got) >= 1000 for got in seen.values()))
    await asyncio.sleep(0.1)
    for got in seen.values():
        assert got == list(range(1, 1001))


@pytest.mark.gen_test
async def test_unsubscribe_stops_delivery(brokers, redis_url):
    a, b = brokers(redis_url), brokers(redis_url)
    await a.start()
    await b.start()
    first, second, marker = [], [], []
    await b.subscribe("r", first.append)
    await b.subscribe("r", second.append)
    await b.subscribe("marker", marker.append)
    channel = f"{b._prefix}room:r"
    assert numsub(redis_url, channel) == 1  # one connection for both listeners

    b.unsubscribe("r", first.append)
    a.publish("r", {"n": 1})
    await eventually(lambda: second == [{"n": 1}])
    assert first == []

    b.unsubscribe("r", second.append)
    await eventually(lambda: numsub(redis_url, channel) == 0, what="UNSUBSCRIBE")
    a.publish("r", {"n": 2})
    a.publish("marker", {"n": 3})
    await eventually(lambda: marker == [{"n": 3}])
    assert first == [] and second == [{"n": 1}]
    b.unsubscribe("r", second.append)  # unsubscribing twice is harmless


@pytest.mark.gen_test
async def test_revocation_reaches_every_process_once(brokers, redis_url):
    a, b, c = brokers(redis_url), brokers(redis_url), brokers(redis_url)
    for broker in (a, b, c):
        await broker.start()
    got = {"a": [], "b": [], "c": []}
    a.on_revocation(got["a"].append)
    b.on_revocation(got["b"].append)
    c.on_revocation(got["c"].append)
    a.revoke_token("jti-1")
    assert got["a"] == ["jti-1"]  # this process at once, not through Redis
    await eventually(lambda: got["b"] and got["c"])
    b.revoke_token("jti-2")
    await eventually(lambda: len(got["a"]) == 2 and len(got["c"]) == 2)
    await asyncio.sleep(0.1)
    assert got == {name: ["jti-1", "jti-2"] for name in got}


@pytest.mark.gen_test
async def test_concurrent_first_subscribes_to_many_rooms_lose_nothing(brokers, redis_url):
    a, b = brokers(redis_url), brokers(redis_url)
    await a.start()
    await b.start()
    got = {}
    rooms = [f"room-{n}" for n in range(300)]

    async def subscribe(room):
        # Each coroutine subscribes on its own, all in the same moment.
        got[room] = []
        return await b.subscribe(room, got[room].append)

    assert all(await asyncio.gather(*(subscribe(room) for room in rooms)))
    for room in rooms:
        a.publish(room, {"room": room})
    await eventually(lambda: all(got[room] for room in rooms), what="every room's event")
    assert all(got[room] == [{"room": room}] for room in rooms)
    assert numsub(redis_url, f"{b._prefix}room:room-0") == 1


@pytest.mark.gen_test
async def test_listener_failure_does_not_stop_delivery(brokers, redis_url):
    a = brokers(redis_url)
    await a.start()
    got = []

    def broken(event):
        raise RuntimeError("listener bug")

    await a.subscribe("r", broken)
    await a.subscribe("r", got.append)
    a.publish("r", {"n": 1})
    a.publish("r", {"n": 2})
    await eventually(lambda: len(got) == 2)
    assert got == [{"n": 1}, {"n": 2}] and a.healthy


@pytest.mark.gen_test
async def test_redis_restart(private_redis, brokers, caplog):
    caplog.set_level(logging.INFO, logger="chat.broker")
    a = brokers(private_redis.url, retry_max=0.5)
    b = brokers(private_redis.url, retry_max=0.5)
    await a.start()
    await b.start()
    on_a, on_b, later, revoked = [], [], [], []
    await a.subscribe("r", on_a.append)
    await b.subscribe("r", on_b.append)
    a.on_revocation(revoked.append)
    a.publish("r", {"n": 1})
    await eventually(lambda: on_b == [{"n": 1}])

    private_redis.stop()
    await eventually(lambda: not a.healthy and not b.healthy, what="unhealthy")
    started = time.monotonic()
    for n in range(2, 12):
        a.publish("r", {"n": n})  # neither raises nor blocks
    a.revoke_token("jti-down")
    assert time.monotonic() - started < 0.05
    assert revoked == ["jti-down"]  # local sockets close even without Redis
    # While down, subscribing answers at once rather than hanging.
    assert await asyncio.wait_for(b.subscribe("later", later.append), 1) is False
    await asyncio.sleep(1.5)  # several reconnect attempts

    private_redis.start()
    await eventually(lambda: a.healthy and b.healthy, what="healthy again")
    # Every room wanted during the outage is told to look for what it missed.
    resync = {"type": "resync", "roomId": "r"}
    await eventually(
        lambda: (
            resync in on_a and resync in on_b and later == [{"type": "resync", "roomId": "later"}]
        )
    )
    # What a published during the outage reaches its own listeners, in order.
    await eventually(lambda: len(on_a) == 12, what="queued events")
    assert [e for e in on_a if e != resync] == [{"n": n} for n in range(1, 12)]
    # The subscriptions are back: a fresh publish reaches the other process.
    a.publish("r", {"n": 12})
    await eventually(lambda: on_b[-1:] == [{"n": 12}])
    seen = [e["n"] for e in on_b if e != resync]
    assert seen == sorted(set(seen))
    assert on_b.count(resync) == on_a.count(resync) == 1

    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    reconnects = [r for r in caplog.records if "reconnected" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    assert len(reconnects) == 2


@pytest.mark.gen_test
async def test_start_while_redis_is_down(private_redis, brokers):
    private_redis.stop()
    a = brokers(private_redis.url, retry_max=0.3)
    await asyncio.wait_for(a.start(), 5)
    assert not a.healthy
    got = []
    a.subscribe("r", got.append)
    a.publish("r", {"n": 1})
    private_redis.start()
    await eventually(lambda: a.healthy)
    await eventually(lambda: len(got) == 2)
    assert got == [{"type": "resync", "roomId": "r"}, {"n": 1}]


@pytest.mark.gen_test
async def test_local_broker_delivers_in_process():
    broker = LocalBroker()
    await broker.start()
    got, revoked = [], []
    assert await broker.subscribe(1, got.append) is True
    broker.on_revocation(revoked.append)
    broker.publish(1, {"n": 1})
    broker.publish(2, {"n": 2})
    broker.revoke_token("j")
    broker.unsubscribe(1, got.append)
    broker.publish(1, {"n": 3})
    assert got == [{"n": 1}] and revoked == ["j"] and broker.healthy
    await broker.close()
