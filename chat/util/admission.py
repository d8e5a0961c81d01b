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
        if self._window_min != math.inf:
            self._standing = self._window_min > self.target
        elif not self._standing:
            self._standing = False
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

    def refuse(self) -> None:
        self.refused += 1
