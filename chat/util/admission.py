"""Admission control: refuse at once the work that could not start soon.

A queue that empties within ``target`` is absorbing a burst and is fine;
work queued behind more than ``target`` of other work would only wait, and
its client is better told at once (``503 overloaded``, Retry-After). Each
item is judged alone, by the wait it would have: the items ahead of it times
the time the queue takes per item, measured on its full batches. So a queue
is held at about ``target`` of work and the server stays busy, however many
clients ask at once: refusing only the excess, never everything for a while,
keeps clients that retry together from returning as one herd to an idle
server.

``QueueDelay`` also measures what the items that start waited (arrival to
start of work, for /metrics), and whether that wait stands above ``target``
for a whole ``interval`` (CoDel's test of a standing queue), which
``LoopLag`` uses for the event loop's own queue.
"""

import math
import time
from collections.abc import Callable
from typing import Any

# The share of a new measurement in the per-item time (an exponential
# moving average over about the last ten full batches).
SMOOTHING = 0.1


class QueueDelay:
    """The queueing delay of one queue, and whether a new item should be refused."""

    def __init__(
        self,
        target: float,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.interval = interval if interval is not None else max(target, 0.05)
        self._clock = clock
        self._window_end = clock() + self.interval
        self._window_min = math.inf
        self._standing = False
        self.per_item = 0.0  # seconds of work per queued item; 0 until measured
        self.last = 0.0  # the delay of the last item that started, in seconds
        self.refused = 0  # items refused so far

    def started(self, delay: float) -> None:
        """An item started after waiting ``delay`` seconds."""
        self.last = delay
        now = self._clock()
        if now >= self._window_end:
            self._close_window(now)
        if delay < self._window_min:
            self._window_min = delay

    def served(self, items: int, seconds: float, full: int) -> None:
        """A batch of ``items`` took ``seconds``; batches hold at most ``full`` items.

        Only full batches count: a queue drains in full batches, and the
        per-item time of a batch of one (a transaction each) would make a
        queue look many times slower than it is.
        """
        if items * 2 < full:
            return
        sample = seconds / items
        if self.per_item == 0.0:
            self.per_item = sample
        else:
            self.per_item += SMOOTHING * (sample - self.per_item)

    def overloaded(self, queued: int) -> bool:
        """True when an item with ``queued`` others ahead of it would wait past the target."""
        return queued * self.per_item > self.target

    def _close_window(self, now: float) -> None:
        # Standing when even the quickest start of the window waited too long.
        # A window with no start at all says nothing stands.
        self._standing = self._window_min != math.inf and self._window_min > self.target
        self._window_min = math.inf
        self._window_end = now + self.interval

    def standing(self) -> bool:
        """A whole interval in which every start waited past the target."""
        now = self._clock()
        if now >= self._window_end:
            self._close_window(now)
        return self._standing

    def refuse(self) -> None:
        self.refused += 1


class LoopLag:
    """How late the event loop runs a timer: the queueing delay of everything it has to do.

    A process short of CPU (its own load, or a neighbour's) runs every
    callback late; requests then wait in the kernel and in the loop before
    any of our queues sees them. A timer every ``every`` seconds measures
    that lateness; ``delay.standing()`` says the lag stayed above the target
    for a whole interval.
    """

    def __init__(self, target: float, every: float = 0.01) -> None:
        self.delay = QueueDelay(target, interval=max(0.1, target * 2))
        self._every = every
        self._handle: Any = None
        self._due = 0.0

    def start(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        self._due = loop.time() + self._every
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        now = loop.time()
        self.delay.started(max(0.0, now - self._due))
        self._due = now + self._every
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class FrontDoor:
    """Which new HTTP requests to refuse as soon as their headers arrive (``InFlight``).

    New messages while every message lane would refuse them (the room, and so
    the lane, is in the body, not read yet); any request (but the health,
    metrics and WebSocket routes) while the event loop's lag stands above its
    target *and* at least ``busy`` requests are in flight here: a loop that
    runs late for lack of CPU (a neighbour's load) with little work of ours
    in it is no reason to turn clients away.
    """

    EXEMPT = ("/api/health", "/metrics", "/api/ws")

    def __init__(
        self,
        lag: LoopLag,
        messages_full: Callable[[], bool],
        in_flight: Callable[[], int],
        busy: int = 256,
    ) -> None:
        self.lag = lag
        self.messages_full = messages_full
        self.in_flight = in_flight
        self.busy = busy

    def __call__(self, start_line: Any) -> bool:
        path = start_line.path
        if path.startswith(self.EXEMPT):
            return False
        if start_line.method == "POST" and path.startswith("/api/messages"):
            if self.messages_full():
                return True
        return self.in_flight() >= self.busy and self.lag.delay.standing()
