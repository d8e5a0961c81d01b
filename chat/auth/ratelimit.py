"""Rate limits: GCRA (a token bucket kept as one timestamp per key), local or shared through Redis.

A **rate** ``N/P`` lets ``N`` actions through at once and refills one every
``P/N`` seconds. A limit may stack rates (``"5/300,20/3600"``): each must
let the action through, which slows repeated failures down progressively.

The generic cell rate algorithm keeps, per key, the *theoretical arrival
time* (TAT): when the bucket would be full again. An action of cost ``c``
moves it to ``max(TAT, now) + c·T`` (``T = P/N``) and is allowed when that
is at most ``P`` ahead of now; otherwise it waits ``new TAT − P − now``.

``acquire`` checks and counts several (rate, key) pairs **atomically and all
or nothing**: one Redis round trip (a Lua script, Redis's own clock) or one
step of the event loop, **before** the expensive work it guards. So
simultaneous requests cannot slip past a limit: of N concurrent wrong
passwords at most the limit are ever checked. ``refund`` gives a counted
action back (a login that turned out right is not a failure).

``RedisLimiter`` shares the counts among every process using the Redis of
``CHAT_REDIS_URL``; while Redis cannot be reached it falls back to the
counts of this process (still limited, per process), and logs it once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from chat import errors

log = logging.getLogger("chat.ratelimit")


@dataclasses.dataclass(frozen=True)
class Rate:
    count: int  # let through at once
    period: float  # seconds to refill all of them

    @property
    def interval(self) -> float:
        return self.period / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}"


def parse_rates(text: str) -> tuple[Rate, ...]:
    """``"5/300,20/3600"`` -> two Rates. Raises ValueError for anything else."""
    rates = []
    for part in text.split(","):
        count, sep, period = part.strip().partition("/")
        if not sep:
            raise ValueError(f"{part.strip()!r} is not COUNT/SECONDS")
        rate = Rate(int(count), float(period))
        if rate.count < 1 or rate.period <= 0:
            raise ValueError(f"{part.strip()!r}: count and seconds must be positive")
        rates.append(rate)
    return tuple(rates)


EPSILON = 1e-6  # floating-point dust: not a wait
RESET = 10**9  # a refund of this cost empties any bucket

# One check: the limit's name (for logs and keys), the key, its rates.
Check = tuple[str, str, tuple[Rate, ...]]


class Limiter(Protocol):
    async def acquire(self, checks: Sequence[Check], cost: int = 1) -> float:
        """Count the action against every check; 0 when allowed, else seconds to wait."""
        ...

    async def refund(self, checks: Sequence[Check], cost: int = 1) -> None:
        """Give back an action counted by ``acquire``."""
        ...


class LocalLimiter:
    """The counts of this process (``clock`` injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = 200000) -> None:
        self._clock = clock
        self._size = size
        self._tat: dict[str, float] = {}

    async def acquire(self, checks: Sequence[Check], cost: int = 1) -> float:
        return self.acquire_now(checks, cost)

    def acquire_now(self, checks: Sequence[Check], cost: int = 1) -> float:
        """``acquire`` without awaiting: for callers that are not coroutines."""
        now = self._clock()
        updates = []
        wait = 0.0
        for name, key, rates in checks:
            for index, rate in enumerate(rates):
                slot = f"{name}:{index}:{key}"
                tat = max(self._tat.get(slot, now), now) + cost * rate.interval
                wait = max(wait, tat - rate.period - now)
                updates.append((slot, tat))
        if wait > EPSILON:
            return wait
        for slot, tat in updates:
            self._tat[slot] = tat
        if len(self._tat) > self._size:
            self._forget(now)
        return 0.0

    async def refund(self, checks: Sequence[Check], cost: int = 1) -> None:
        now = self._clock()
        for name, key, rates in checks:
            for index, rate in enumerate(rates):
                slot = f"{name}:{index}:{key}"
                if slot in self._tat:
                    tat = self._tat[slot] - cost * rate.interval
                    if tat <= now:
                        del self._tat[slot]
                    else:
                        self._tat[slot] = tat

    def forget(self, name: str, key: str, rates: int) -> None:
        """Drop a key's buckets (a socket that closed)."""
        for index in range(rates):
            self._tat.pop(f"{name}:{index}:{key}", None)

    def _forget(self, now: float) -> None:
        """Drop full buckets (TAT in the past): they hold nothing a fresh one would not."""
        for slot in [s for s, tat in self._tat.items() if tat <= now]:
            del self._tat[slot]
        while len(self._tat) > self._size:  # still too many: the oldest go
            del self._tat[next(iter(self._tat))]


# KEYS: one per (check, rate). ARGV[1]: cost; then per key its interval and
# period in milliseconds. Returns 0, or the milliseconds to wait. Redis's own
# clock (TIME) keeps every process's view of time the same.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local news = {}
local wait = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new = tat + cost * interval
  if cost > 0 then
    local w = new - period - now
    if w > wait then wait = w end
  elseif new < now then
    new = now
  end
  news[i] = new
end
if wait > 0.001 then return math.ceil(wait) end
for i = 1, #KEYS do
  local ttl = math.ceil(news[i] - now)
  if ttl > 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', news[i]), 'PX', ttl)
  else
    redis.call('DEL', KEYS[i])
  end
end
return 0
"""


class RedisLimiter:
    """Counts shared by every process through Redis: one script call per ``acquire``.

    The calls made in one turn of the event loop go to Redis in one pipeline
    (one round trip for all of them; each call is still atomic on its own),
    so a burst of messages costs a round trip, not one per message.
    """

    def __init__(self, url: str, prefix: str, fallback: LocalLimiter | None = None) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, client_name="chat-ratelimit"
        )
        self._script = self._redis.register_script(_GCRA_LUA)
        self._prefix = prefix
        self._fallback = fallback or LocalLimiter()
        self._failing = False
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushing = False

    def _args(self, checks: Sequence[Check], cost: int) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        argv: list[Any] = [cost]
        for name, key, rates in checks:
            for index, rate in enumerate(rates):
                keys.append(f"{self._prefix}{name}:{index}:{key}")
                argv += [rate.interval * 1000, rate.period * 1000]
        return keys, argv

    def _call(self, keys: list[str], argv: list[Any]) -> asyncio.Future[Any]:
        """Queue one script call for the next pipeline; a future of its answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, argv, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(lambda: asyncio.ensure_future(self._flush()))
        return future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for keys, argv, _ in batch:
                            await self._script(keys=keys, args=argv, client=pipe)
                        answers = await pipe.execute()
                except Exception as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._flushing = False

    async def acquire(self, checks: Sequence[Check], cost: int = 1) -> float:
        keys, argv = self._args(checks, cost)
        try:
            waited = await self._call(keys, argv)
        except Exception as exc:  # Redis down or slow: limit per process meanwhile
            self._failed(exc)
            return await self._fallback.acquire(checks, cost)
        self._recovered()
        return int(waited) / 1000.0

    async def refund(self, checks: Sequence[Check], cost: int = 1) -> None:
        keys, argv = self._args(checks, -cost)
        try:
            await self._call(keys, argv)
        except Exception as exc:
            self._failed(exc)
            await self._fallback.refund(checks, cost)

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("rate limits: Redis unreachable (%s); counting per process", exc)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("rate limits: Redis reachable again; counts shared again")

    async def close(self) -> None:
        await self._redis.aclose()


class NoLimiter:
    """CHAT_RATE_LIMITS=off: everything is allowed."""

    async def acquire(self, checks: Sequence[Check], cost: int = 1) -> float:
        return 0.0

    def acquire_now(self, checks: Sequence[Check], cost: int = 1) -> float:
        return 0.0

    async def refund(self, checks: Sequence[Check], cost: int = 1) -> None:
        return None


def address_key(remote_ip: str | None) -> str:
    """The key of a client address: IPv4 as is, IPv6 by its /64 (one customer's prefix)."""
    if not remote_ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote_ip)
    except ValueError:
        return remote_ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False).network_address) + "/64"
    return str(address)


class Limits:
    """The server's limits by name (each a setting), over one Limiter.

    ``await limits.take(("messages", user_key), ...)`` raises ``RateLimited``
    when any named limit is exhausted for its key, and counts the action
    against all of them otherwise. ``limits.refunded(...)`` gives it back.
    """

    def __init__(self, settings: Any, limiter: Limiter) -> None:
        self.enabled = settings.rate_limits == "on"
        self.limiter: Limiter = limiter if self.enabled else NoLimiter()
        self._rates = {
            field[len("limit_") :]: getattr(settings, field)
            for field in dir(settings)
            if field.startswith("limit_")
        }
        self.refused = 0  # for /metrics: actions refused so far
        self.local = LocalLimiter() if self.enabled else NoLimiter()
        self.sockets_per_user = settings.ws_per_user
        self.open_sockets: dict[str, int] = {}

    def rates(self, name: str) -> tuple[Rate, ...]:
        return self._rates[name]

    def checks(self, pairs: Sequence[tuple[str, str]]) -> list[Check]:
        return [(name, key, self._rates[name]) for name, key in pairs]

    async def take(self, *pairs: tuple[str, str]) -> None:
        if not self.enabled:
            return
        self._over_if(await self.limiter.acquire(self.checks(pairs)))

    def take_now(self, *pairs: tuple[str, str]) -> bool:
        """``take`` without waiting, when the counts are this process's (or limits are off).

        True once counted (``RateLimited`` when over a limit); False, counting
        nothing, when the counts are shared through Redis: then ``await take``.
        """
        if not self.enabled:
            return True
        if not isinstance(self.limiter, LocalLimiter):
            return False
        self._over_if(self.limiter.acquire_now(self.checks(pairs)))
        return True

    def take_local(self, *pairs: tuple[str, str]) -> None:
        """``take`` counted in this process only, without a round trip (per-socket limits)."""
        self._over_if(self.local.acquire_now(self.checks(pairs)))

    def _over_if(self, wait: float) -> None:
        """Raise ``RateLimited`` when the limiter asked to wait ``wait`` > 0 seconds."""
        if wait > 0:
            self.refused += 1
            raise errors.RateLimited(wait)

    def forget_local(self, name: str, key: str) -> None:
        if isinstance(self.local, LocalLimiter):
            self.local.forget(name, key, len(self._rates[name]))

    def open_socket(self, user_key: str) -> bool:
        """Count a socket of ``user_key`` open in this process; False beyond the cap."""
        count = self.open_sockets.get(user_key, 0)
        if self.enabled and count >= self.sockets_per_user:
            self.refused += 1
            return False
        self.open_sockets[user_key] = count + 1
        return True

    def close_socket(self, user_key: str) -> None:
        count = self.open_sockets.get(user_key, 0) - 1
        if count > 0:
            self.open_sockets[user_key] = count
        else:
            self.open_sockets.pop(user_key, None)

    async def refunded(self, *pairs: tuple[str, str]) -> None:
        if self.enabled:
            await self.limiter.refund(self.checks(pairs))

    async def reset(self, *pairs: tuple[str, str]) -> None:
        """Empty the buckets: everything counted against them is given back."""
        if self.enabled:
            await self.limiter.refund(self.checks(pairs), cost=RESET)


def make_limiter(settings: Any) -> Limiter:
    if settings.redis_url:
        return RedisLimiter(
            settings.redis_url, prefix=f"chat:{settings.database.database}:ratelimit:"
        )
    return LocalLimiter()


async def close_limiter(limiter: Limiter) -> None:
    close = getattr(limiter, "close", None)
    if close is not None:
        await close()
    await asyncio.sleep(0)
