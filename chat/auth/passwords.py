"""Password hashing and checking, and the operator's admin key.

bcrypt is slow on purpose (about 270 ms a hash at cost 12), so it runs in a
thread pool and never on the IO loop. The pool's queue is bounded: beyond
``max_waiting`` checks waiting for a thread, a new one is refused at once with
``503 overloaded`` rather than waiting behind seconds of others' bcrypt.
"""

import asyncio
import concurrent.futures
import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import bcrypt

from chat import errors
from chat.util.lru import Lru

T = TypeVar("T")

MAX_PASSWORD_BYTES = 72  # bcrypt reads no further


class PasswordHasher:
    def __init__(self, rounds: int, workers: int | None = None, max_waiting: int = 16) -> None:
        self.rounds = rounds
        self.workers = workers or os.cpu_count() or 2
        self.max_waiting = max_waiting
        self.in_flight = 0  # hashes and checks running or waiting for a thread
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="bcrypt"
        )
        # Checked against when the user does not exist, so a failed login
        # takes as long whether or not the account is there.
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self.rounds)
        hashed = await self._run(bcrypt.hashpw, password.encode("utf-8"), salt)
        return hashed.decode("ascii")

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        """Run bcrypt work in the pool, or refuse it at once when the queue is full."""
        if self.in_flight >= self.workers + self.max_waiting:
            raise errors.Overloaded("Too many password checks are waiting; try again shortly.")
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, work, *args)
        finally:
            self.in_flight -= 1

    async def verify(self, password: str, hashed: str | None) -> bool:
        """True when ``password`` matches ``hashed``; ``hashed=None`` checks a decoy.

        A password longer than bcrypt's 72 bytes can never have been set, so it
        is wrong; it is still checked against the decoy to take as long.
        """
        secret = password.encode("utf-8")
        usable = hashed is not None and len(secret) <= MAX_PASSWORD_BYTES
        target = hashed.encode("ascii") if hashed is not None and usable else self._decoy
        ok = await self._run(bcrypt.checkpw, secret[:MAX_PASSWORD_BYTES], target)
        return ok and usable

    def close(self) -> None:
        self._executor.shutdown(wait=False)


class VerifiedPasswords:
    """Remembers which password opened which room, so that checking it again is cheap.

    Every member of a room joins with the same room password: the first join
    loads the room's hash and pays for bcrypt, the next ones find a keyed
    digest of (roomId, password) here and need neither. This is sound because
    a room's password never changes once the room exists. Concurrent checks
    of one pair share one bcrypt run, so a burst of joins to a new room costs
    one hash, not one per joiner. A wrong password is never remembered, so
    every guess costs a full bcrypt check (the same guess sent several times
    at once shares one). The digests are keyed with a secret of this
    process, and the memory is bounded.
    """

    def __init__(self, hasher: PasswordHasher, size: int = 10000) -> None:
        self._hasher = hasher
        self._key = secrets.token_bytes(32)
        self._known: Lru[bytes, bool] = Lru(size)
        # digest -> future of a bcrypt check in progress
        self._checking: dict[bytes, asyncio.Future[bool]] = {}

    def remember(self, subject: str, password: str) -> None:
        """Record a pair known to match, such as a room's password at its creation."""
        self._known.put(self._digest(subject, password), True)

    def known(self, subject: str, password: str) -> bool:
        """Whether ``password`` is known to be ``subject``'s (no bcrypt needed)."""
        return self._digest(subject, password) in self._known

    async def verify(
        self, subject: str, password: str, load_hash: Callable[[], Awaitable[str]]
    ) -> bool:
        """True when ``password`` is ``subject``'s; ``await load_hash()`` gives its hash."""
        digest = self._digest(subject, password)
        if self._known.get(digest):
            return True
        checking = self._checking.get(digest)
        if checking is None:
            checking = asyncio.ensure_future(self._check(digest, password, load_hash))
            self._checking[digest] = checking
            checking.add_done_callback(lambda done: self._finished(digest, done))
        # shield: one caller giving up must not cancel the check the others wait on.
        return await asyncio.shield(checking)

    async def _check(
        self, digest: bytes, password: str, load_hash: Callable[[], Awaitable[str]]
    ) -> bool:
        if not await self._hasher.verify(password, await load_hash()):
            return False
        self._known.put(digest, True)
        return True

    def _finished(self, digest: bytes, done: asyncio.Future[bool]) -> None:
        del self._checking[digest]
        if not done.cancelled():
            done.exception()  # retrieved: its waiters may all have gone

    def _digest(self, subject: str, password: str) -> bytes:
        return hmac.new(
            self._key, subject.encode("utf-8") + b"\0" + password.encode("utf-8"), hashlib.sha256
        ).digest()


def admin_key_matches(given: str, expected: str) -> bool:
    return bool(expected) and secrets.compare_digest(
        given.encode("utf-8"), expected.encode("utf-8")
    )
