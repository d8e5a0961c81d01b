"""The GCRA limiter with a fake clock: bursts, refill, stacked rates, all-or-nothing, refunds."""

import asyncio
from collections.abc import Sequence

import pytest

from chat import errors
from chat.auth.ratelimit import (
    Check,
    Limits,
    LocalLimiter,
    Rate,
    address_key,
    parse_rates,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine on a loop of its own, leaving the current loop (if any) alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def check(key: str, text: str, name: str = "x") -> Sequence[Check]:
    return [(name, key, parse_rates(text))]


def test_parse_rates() -> None:
    assert parse_rates("5/300, 20/3600") == (Rate(5, 300.0), Rate(20, 3600.0))
    for bad in ("5", "0/10", "5/0", "a/b", "5/-1"):
        with pytest.raises(ValueError):
            parse_rates(bad)


def test_a_burst_then_one_per_interval() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    c = check("k", "5/50")  # 5 at once, then one every 10 s
    assert [limiter.acquire_now(c) for _ in range(5)] == [0.0] * 5
    assert limiter.acquire_now(c) == pytest.approx(10.0)
    clock.now += 9.9
    assert limiter.acquire_now(c) == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.acquire_now(c) == 0.0
    assert limiter.acquire_now(c) == pytest.approx(10.0)
    clock.now += 50
    assert [limiter.acquire_now(c) for _ in range(5)] == [0.0] * 5


def test_a_refused_action_is_not_counted() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    c = check("k", "1/10")
    assert limiter.acquire_now(c) == 0.0
    for _ in range(100):
        assert limiter.acquire_now(c) == pytest.approx(10.0)
    clock.now += 10
    assert limiter.acquire_now(c) == 0.0


def test_keys_are_independent() -> None:
    limiter = LocalLimiter(FakeClock())
    assert limiter.acquire_now(check("a", "1/10")) == 0.0
    assert limiter.acquire_now(check("a", "1/10")) > 0
    assert limiter.acquire_now(check("b", "1/10")) == 0.0


def test_stacked_rates_slow_down_progressively() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    c = check("k", "2/20,4/400")  # 2 at once, one per 10 s, but at most 4 per 400 s
    waits = []
    for _ in range(4):
        while (wait := limiter.acquire_now(c)) > 0:
            clock.now += wait
        waits.append(clock.now)
    assert waits == [1000.0, 1000.0, 1010.0, 1020.0]
    assert limiter.acquire_now(c) == pytest.approx(80.0)  # now the 100 s tier waits


def test_several_checks_are_all_or_nothing() -> None:
    limiter = LocalLimiter(FakeClock())
    tight = ("tight", "k", parse_rates("1/10"))
    loose = ("loose", "k", parse_rates("100/10"))
    assert limiter.acquire_now([tight, loose]) == 0.0
    for _ in range(10):
        assert limiter.acquire_now([tight, loose]) > 0
    # The loose limit was charged once, not eleven times.
    assert [limiter.acquire_now([loose]) for _ in range(99)] == [0.0] * 99
    assert limiter.acquire_now([loose]) > 0


def test_refund_gives_an_action_back_and_reset_empties() -> None:
    limiter = LocalLimiter(FakeClock())
    c = check("k", "2/20")
    assert limiter.acquire_now(c) == 0.0 and limiter.acquire_now(c) == 0.0
    assert limiter.acquire_now(c) > 0
    run(limiter.refund(c))
    assert limiter.acquire_now(c) == 0.0
    run(limiter.refund(c, cost=10**9))
    assert limiter.acquire_now(c) == 0.0 and limiter.acquire_now(c) == 0.0


def test_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock, size=100)
    for i in range(1000):
        limiter.acquire_now(check(f"k{i}", "1/1"))
        clock.now += 0.01
    assert len(limiter._tat) <= 101


class FakeSettings:
    rate_limits = "on"
    limit_messages = parse_rates("2/10")
    ws_per_user = 2


def test_limits_raise_rate_limited_with_whole_seconds() -> None:
    limits = Limits(FakeSettings(), LocalLimiter(FakeClock()))
    run(limits.take(("messages", "alice")))
    run(limits.take(("messages", "alice")))
    with pytest.raises(errors.RateLimited) as raised:
        run(limits.take(("messages", "alice")))
    assert raised.value.details == {"retryAfter": 5}
    assert raised.value.headers == {"Retry-After": "5"}
    assert limits.refused == 1


def test_take_now_counts_at_once_when_the_counts_are_this_processes() -> None:
    limits = Limits(FakeSettings(), LocalLimiter(FakeClock()))
    assert limits.take_now(("messages", "alice"))
    run(limits.take(("messages", "alice")))  # one count for both ways of taking
    with pytest.raises(errors.RateLimited):
        limits.take_now(("messages", "alice"))
    assert limits.refused == 1


class SharedLimiter:
    """A limiter whose counts live elsewhere, as Redis's: it can only be awaited."""

    def __init__(self) -> None:
        self.counts = LocalLimiter(FakeClock())

    async def acquire(self, checks: Sequence[Check], cost: int = 1) -> float:
        return await self.counts.acquire(checks, cost)

    async def refund(self, checks: Sequence[Check], cost: int = 1) -> None:
        await self.counts.refund(checks, cost)


def test_take_now_leaves_shared_counts_to_take() -> None:
    limits = Limits(FakeSettings(), SharedLimiter())
    for _ in range(3):
        assert not limits.take_now(("messages", "alice"))  # counted nothing
    run(limits.take(("messages", "alice")))
    run(limits.take(("messages", "alice")))
    with pytest.raises(errors.RateLimited):
        run(limits.take(("messages", "alice")))


def test_limits_off_let_everything_through() -> None:
    settings = FakeSettings()
    settings.rate_limits = "off"
    limits = Limits(settings, LocalLimiter(FakeClock()))
    for _ in range(100):
        run(limits.take(("messages", "alice")))
        limits.take_local(("messages", "alice"))
        assert limits.take_now(("messages", "alice"))
        assert limits.open_socket("alice")


def test_open_sockets_per_user_are_capped() -> None:
    limits = Limits(FakeSettings(), LocalLimiter(FakeClock()))
    assert limits.open_socket("a") and limits.open_socket("a")
    assert not limits.open_socket("a")
    assert limits.open_socket("b")
    limits.close_socket("a")
    assert limits.open_socket("a")


def test_rate_limited_retry_after_is_at_least_one_second() -> None:
    assert errors.RateLimited(0.01).headers == {"Retry-After": "1"}
    assert errors.RateLimited(1.2).details == {"retryAfter": 2}


def test_address_keys() -> None:
    assert address_key("203.0.113.9") == "203.0.113.9"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2:3:4:5:6") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert address_key(None) == "unknown"


def test_docs_security_lists_every_limit_with_its_default() -> None:
    import os

    import settings

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "security.md"), encoding="utf-8") as f:
        doc = f.read()
    limits = [r for r in settings.rows() if r[1].startswith("limit_")]
    assert len(limits) >= 14
    for _, option, _, default_text, _ in limits:
        assert f"| `{settings.env_name(option)}` | `{default_text}` |" in doc, option
