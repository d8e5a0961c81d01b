"""chat/auth/ratelimit.py: a fixed window of failed attempts per key, in this process."""

from chat.auth.ratelimit import RateLimiter
from unit.fakes import FakeClock


def test_a_key_is_held_back_once_it_used_its_attempts_until_the_window_ends() -> None:
    clock = FakeClock()
    limiter = RateLimiter(limit=3, window=60, clock=clock)
    for _ in range(2):
        limiter.hit("alice")
    assert limiter.retry_after("alice") == 0  # two of three used
    clock.advance(10)
    limiter.hit("alice")
    assert limiter.retry_after("alice") == 50  # the window began at the first hit
    clock.advance(49)
    assert limiter.retry_after("alice") == 1
    clock.advance(1)
    assert limiter.retry_after("alice") == 0


def test_keys_are_counted_apart_and_reset_forgets_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(limit=1, window=60, clock=clock)
    limiter.hit("alice")
    assert limiter.retry_after("alice") == 60
    assert limiter.retry_after("bob") == 0
    limiter.reset("alice")
    assert limiter.retry_after("alice") == 0


def test_a_hit_after_the_window_starts_a_new_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(limit=2, window=60, clock=clock)
    limiter.hit("alice")
    clock.advance(61)
    limiter.hit("alice")  # the old window is over: this is the first of a new one
    assert limiter.retry_after("alice") == 0
    limiter.hit("alice")
    assert limiter.retry_after("alice") == 60


def test_many_keys_make_it_forget_the_expired_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter(limit=1, window=60, clock=clock)
    for n in range(100000):
        limiter.hit(f"old-{n}")
    clock.advance(60)
    limiter.hit("new")
    limiter.hit("newer")  # past 100000 entries: the expired ones go
    assert len(limiter._windows) == 2
    assert limiter.retry_after("newer") == 60
