"""Admission control: refuse new work at once while a queue stands, CoDel-style.

A queue that empties within ``target`` is absorbing a burst and is fine. A
queue whose items all wait longer than ``target`` for a whole ``interval`` is
a standing queue: the server receives more than it can do, and every item
queued from then on would only wait longer. ``QueueDelay`` watches the
queueing delay of the items that start (arrival to start of work) and, while
it stands above ``target``, says so, so the caller refuses new work at once
(``503 overloaded``) instead of queueing it for seconds. The oldest item still
waiting counts too: a queue that nothing leaves is standing however short
the delays of the last items that did leave it.
"""

import math
import time
from collections.abc import Callable
from typing import Any


class QueueDelay:
    """The queueing delay of one queue, and whether new work should be refused."""

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

    def _close_window(self, now: float) -> None:
        # Standing when even the quickest start of the window waited too long.
        # A window with no start at all says nothing stands (what refuses
        # everything would otherwise never learn that the queue drained); a
        # queue stuck behind one long batch is caught by its head's age.
        self._standing = self._window_min != math.inf and self._window_min > self.target
        self._window_min = math.inf
        self._window_end = now + self.interval

    def overloaded(self, oldest_waiting: float | None = None) -> bool:
        """True when new work should be refused.

        ``oldest_waiting``: when the oldest item still queued arrived (the
        clock's time), or None when nothing waits. A queue with nothing in
        it never refuses: the next item starts at once.
        """
        if oldest_waiting is None:
            self._standing = False
            return False
        now = self._clock()
        if now >= self._window_end:
            self._close_window(now)
        return self._standing or now - oldest_waiting > self.target

    def standing(self) -> bool:
        """A whole interval in which every start waited past the target (no head check)."""
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

    New messages while a message lane's queue stands; any request (but the
    health, metrics and WebSocket routes) while the event loop's lag stands
    above its target *and* at least ``busy`` requests are in flight here: a
    loop that runs late for lack of CPU (a neighbour's load) with little
    work of ours in it is no reason to turn clients away.
    """

    EXEMPT = ("/api/health", "/metrics", "/api/ws")

    def __init__(
        self,
        lag: LoopLag,
        lanes: list[QueueDelay],
        in_flight: Callable[[], int],
        busy: int = 256,
    ) -> None:
        self.lag = lag
        self.lanes = lanes
        self.in_flight = in_flight
        self.busy = busy

    def __call__(self, start_line: Any) -> bool:
        path = start_line.path
        if path.startswith(self.EXEMPT):
            return False
        if start_line.method == "POST" and path.startswith("/api/messages"):
            if any(lane.standing() for lane in self.lanes):
                return True
        return self.in_flight() >= self.busy and self.lag.delay.standing()
