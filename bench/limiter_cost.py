"""The rate limiter's cost per message: what ``Limits.take(("messages", user))`` adds.

    .venv/bin/python bench/limiter_cost.py [--redis-url redis://127.0.0.1:6379/0] [--n 20000]

Measures, on this machine, the time one message's limit check takes with
limits off, in this process (LocalLimiter), and shared through Redis (one
Lua script call: RedisLimiter), both one at a time and with 100 checks in
flight (as many senders at once). Each message is counted against its
sender's ``messages`` limit; users are spread so no one is refused.
"""

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import settings as settings_module  # noqa: E402
from chat.auth import ratelimit  # noqa: E402


def make_settings(limits: str) -> settings_module.Settings:
    return dataclasses.replace(
        settings_module.Settings(),
        rate_limits=limits,
        limit_messages=ratelimit.parse_rates("1000000/10"),
    )


async def one_at_a_time(limits: ratelimit.Limits, n: int, users: int) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        await limits.take(("messages", f"user{i % users}"))
        times.append(time.perf_counter() - started)
    return times


async def concurrent(limits: ratelimit.Limits, n: int, users: int, width: int) -> float:
    started = time.perf_counter()
    for start in range(0, n, width):
        await asyncio.gather(
            *(limits.take(("messages", f"user{i % users}")) for i in range(start, start + width))
        )
    return (time.perf_counter() - started) / n


def show(name: str, times: list[float], per_msg_concurrent: float) -> None:
    times.sort()
    p50 = statistics.median(times) * 1e6
    p99 = times[int(len(times) * 0.99)] * 1e6
    print(
        f"{name:<28} one at a time: p50 {p50:7.1f} us  p99 {p99:7.1f} us   "
        f"100 in flight: {per_msg_concurrent * 1e6:7.1f} us/message "
        f"({1 / per_msg_concurrent:,.0f} checks/s)"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    prefix = f"chat:bench-{os.getpid()}:ratelimit:"
    cases = [
        ("limits off", ratelimit.Limits(make_settings("off"), ratelimit.LocalLimiter())),
        (
            "in process (LocalLimiter)",
            ratelimit.Limits(make_settings("on"), ratelimit.LocalLimiter()),
        ),
    ]
    redis_limiter = ratelimit.RedisLimiter(args.redis_url, prefix=prefix)
    cases.append(("Redis (one Lua call)", ratelimit.Limits(make_settings("on"), redis_limiter)))
    print(f"{args.n} message limit checks over {args.users} users, Python {sys.version.split()[0]}")
    for name, limits in cases:
        await one_at_a_time(limits, min(1000, args.n), args.users)  # warm up
        times = await one_at_a_time(limits, args.n, args.users)
        per = await concurrent(limits, args.n, args.users, 100)
        assert limits.refused == 0
        show(name, times, per)
    await redis_limiter.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
