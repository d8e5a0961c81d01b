"""Which login tokens were revoked by a logout, without a database read per request.

The database (``revoked_tokens``) is the truth. Every logout also reaches
every process through the broker at once (``on_revocation``), so a process
that has checked a token against the database once can keep answering "not
revoked" from memory, for as long as it would have heard of a logout:

- a logout heard of is remembered until the token expires;
- an answer from the database is remembered only if no logout arrived and
  the broker lost no connection while it was being read;
- every remembered answer is dropped when the broker loses its connection
  (logouts published meanwhile may never arrive), and after ``max_age``
  seconds in any case.

So a logout takes effect at once in the process that served it, and in the
others as soon as the broker delivers it (milliseconds), or at the latest
``max_age`` seconds later if the broker lost it.
"""

import collections
import time

from chat.db.lookup import BatchedLookup
from chat.util.lru import Lru


class Revocations:
    def __init__(self, db, broker, max_age, token_ttl, size=100000, clock=time.monotonic):
        self._broker = broker
        self._max_age = max_age
        self._token_ttl = token_ttl
        self._size = size
        self._clock = clock
        self._revoked = collections.OrderedDict()  # jti -> when it can be forgotten
        self._clean = Lru(size)  # jti -> when the database said "not revoked"
        self._heard = 0  # logouts heard of so far
        self._outages = broker.outages
        # Tokens seen for the first time at the same moment (a burst of
        # logins, sockets reconnecting after a restart) share one query.
        self._revoked_rows = BatchedLookup(db, "revoked_among", "jtis", "jti")
        broker.on_revocation(self._on_revocation)

    def _on_revocation(self, jti):
        self._heard += 1
        self._clean.pop(jti, None)
        # The token expires within token_ttl of now; after that it is refused anyway.
        self._remember_revoked(jti, self._clock() + self._token_ttl)

    def _remember_revoked(self, jti, until):
        self._revoked[jti] = until
        self._revoked.move_to_end(jti)
        if len(self._revoked) > self._size:
            now = self._clock()
            for old in [j for j, t in self._revoked.items() if t <= now]:
                del self._revoked[old]
            while len(self._revoked) > self._size:
                # Forgotten, it is read from the database again when next seen.
                self._revoked.popitem(last=False)

    async def is_revoked(self, claims):
        jti = claims["jti"]
        if jti in self._revoked:
            return True
        if self._broker.outages != self._outages:
            self._outages = self._broker.outages
            self._clean.clear()
        checked = self._clean.get(jti)
        if checked is not None and self._clock() - checked < self._max_age:
            return False
        heard, outages = self._heard, self._outages
        revoked = await self._revoked_rows.get(jti) is not None
        if revoked:
            self._remember_revoked(jti, self._clock() + self._token_ttl)
        elif heard == self._heard and outages == self._broker.outages and self._broker.healthy:
            self._clean.put(jti, self._clock())
        return revoked
