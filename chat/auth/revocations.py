"""Which access tokens no longer hold: the one owner of that knowledge.

Tokens are revoked by session (their ``sid``): a session that ended (logout,
a reuse of its refresh token, a password change, ``DELETE
/api/sessions/{id}``), whose user no longer exists, or that never existed.
The database (``sessions``, ``live_among``) is the truth. Every logout also reaches
every process through the broker at once, so a process that has checked a
token against the database once can keep answering "not revoked" from
memory, for as long as it would have heard of a logout:

- a logout heard of is remembered until the token expires;
- an answer from the database is remembered only if no logout arrived and
  the broker lost no connection while it was being read;
- every remembered answer is dropped when the broker loses its connection
  (logouts published meanwhile may never arrive), and after ``max_age``
  seconds in any case.

So a logout takes effect at once in the process that served it, and in the
others as soon as the broker delivers it (milliseconds), or at the latest
``max_age`` seconds later if the broker lost it.

Long-lived users of a token (the hub's WebSockets) ``watch`` it and
``subscribe`` to revocations: while any token is watched, the watched ones
are re-checked against the database every ``max_age`` seconds, so a logout
the broker lost still reaches them. ``sweep()`` deletes the rows of tokens
that have expired anyway; ``start()`` runs it every hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado import ioloop

from chat.db.lookup import BatchedLookup
from chat.util.lru import Lru
from chat.util.tasks import background
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.db.pool import Database
    from chat.realtime.broker import Broker

log = logging.getLogger("chat.revocations")

# Token ids per query when re-checking watched tokens.
RECHECK_BATCH = 500
SWEEP_SECONDS = 3600.0

Listener = Callable[[str], None]


class Revocations:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        max_age: float,
        token_ttl: float,
        size: int = 100000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._broker = broker
        self._max_age = max_age
        self._token_ttl = token_ttl
        self._clock = clock
        self._revoked: Lru[str, float] = Lru(size)  # jti -> when it can be forgotten
        self._clean: Lru[str, float] = Lru(size)  # jti -> when the database said "not revoked"
        self._heard = 0  # logouts heard of so far
        self._outages = broker.outages
        # Tokens seen for the first time at the same moment (a burst of
        # logins, sockets reconnecting after a restart) share one query.
        self._live_rows = BatchedLookup(db, "live_among", "jtis", "jti")
        self._listeners: list[Listener] = []
        self._watched: dict[str, int] = {}  # jti -> how many watch it
        self._rechecking: asyncio.Future[None] | None = None
        self._sweeper: ioloop.PeriodicCallback | None = None
        broker.on_revocation(self._on_revocation)

    # -- what is revoked -----------------------------------------------------

    def _on_revocation(self, jti: str) -> None:
        self._heard += 1
        self._clean.pop(jti)
        # The token expires within token_ttl of now; after that it is refused anyway.
        # Forgotten past ``size``, it is read from the database again when next seen.
        self._revoked.put(jti, self._clock() + self._token_ttl)
        for listener in list(self._listeners):
            try:
                listener(jti)
            except Exception:
                log.exception("a revocation listener failed")

    def known_revoked(self, jti: str) -> bool:
        """Whether this process has heard that ``jti`` was revoked (no database read)."""
        return jti in self._revoked

    async def is_revoked(self, claims: dict[str, Any]) -> bool:
        """Whether the token's session has ended (or its user is gone): keyed by ``sid``."""
        jti: str = claims["sid"]
        if jti in self._revoked:
            return True
        if self._broker.outages != self._outages:
            self._outages = self._broker.outages
            self._clean.clear()
        checked = self._clean.get(jti)
        if checked is not None and self._clock() - checked < self._max_age:
            return False
        heard, outages = self._heard, self._outages
        revoked = await self._live_rows.get(jti) is None
        if revoked:
            self._revoked.put(jti, self._clock() + self._token_ttl)
        elif heard == self._heard and outages == self._broker.outages and self._broker.healthy:
            self._clean.put(jti, self._clock())
        return revoked

    # -- telling long-lived users --------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """``listener(jti)`` is called for every revocation heard of or found."""
        self._listeners.append(listener)

    def watch(self, jti: str) -> None:
        """Re-check ``jti`` now and then until as many ``unwatch`` calls."""
        self._watched[jti] = self._watched.get(jti, 0) + 1
        if self._rechecking is None:
            self._rechecking = background(self._recheck_forever(), "re-checking tokens", log)

    def unwatch(self, jti: str) -> None:
        count = self._watched.get(jti, 0) - 1
        if count > 0:
            self._watched[jti] = count
        else:
            self._watched.pop(jti, None)
        if not self._watched:
            self._stop_rechecking()

    def _stop_rechecking(self) -> None:
        if self._rechecking is not None:
            self._rechecking.cancel()
            self._rechecking = None

    async def _recheck_forever(self) -> None:
        """Now and then, look for watched tokens revoked without this process hearing.

        A revocation normally arrives through the broker at once; this bounds
        the delay when the broker lost it (for instance while Redis was down).
        """
        while True:
            await asyncio.sleep(self._max_age)
            await self.recheck()

    async def recheck(self) -> None:
        """Read the watched tokens' revocations from the database, once."""
        jtis = list(self._watched)
        for start in range(0, len(jtis), RECHECK_BATCH):
            batch = tuple(jtis[start : start + RECHECK_BATCH])
            try:
                rows = await self._db.fetch_all("live_among", jtis=batch)
            except Exception as exc:
                log.warning("cannot check tokens against revocations: %s", exc)
                return
            live = {row["jti"] for row in rows}
            for jti in batch:
                if jti not in live:
                    self._on_revocation(jti)

    # -- forgetting expired tokens -------------------------------------------

    async def sweep(self) -> None:
        """Delete the revocations of tokens that have expired anyway."""
        await self._db.execute("delete_expired_revocations", now=utcnow())

    def start(self) -> None:
        """Sweep every ``SWEEP_SECONDS`` from now on."""
        self._sweeper = ioloop.PeriodicCallback(self.sweep, SWEEP_SECONDS * 1000)
        self._sweeper.start()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        self._stop_rechecking()
