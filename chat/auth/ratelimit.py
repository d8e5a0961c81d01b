"""A fixed-window counter per key, kept in this process.

Used to slow password guessing: failed logins are counted per account
identifier. Several processes each keep their own counts.
"""

import time


class RateLimiter:
    def __init__(self, limit, window, clock=time.monotonic):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._windows = {}

    def retry_after(self, key):
        """Seconds until ``key`` may try again, or 0 when it may now."""
        entry = self._windows.get(key)
        if entry is None:
            return 0
        started, count = entry
        left = started + self.window - self._clock()
        if left <= 0:
            del self._windows[key]
            return 0
        return left if count >= self.limit else 0

    def hit(self, key):
        now = self._clock()
        started, count = self._windows.get(key, (now, 0))
        if started + self.window <= now:
            started, count = now, 0
        self._windows[key] = (started, count + 1)
        if len(self._windows) > 100000:
            self._forget_expired(now)

    def reset(self, key):
        self._windows.pop(key, None)

    def _forget_expired(self, now):
        for key in [k for k, (s, _) in self._windows.items() if s + self.window <= now]:
            del self._windows[key]
