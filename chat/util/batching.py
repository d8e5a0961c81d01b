"""Batches: what is submitted while a batch is being handled goes in the next one.

Used for group commit (messages, joins: many items, one transaction) and for
batched reads (token revocations: many look-ups, one query).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from chat import errors
from chat.ops import metrics

if TYPE_CHECKING:
    from chat.util.admission import QueueDelay

W = TypeVar("W")  # what to do
R = TypeVar("R")  # what comes of it


class Pending(Generic[W, R]):
    """One submitted item: what to do, the future its submitter waits on, when it came."""

    __slots__ = ("work", "future", "arrived")

    def __init__(self, work: W, future: asyncio.Future[R], arrived: float = 0.0) -> None:
        self.work = work
        self.future = future
        self.arrived = arrived

    def settle(self, outcome: R | BaseException) -> None:
        """Resolve the future with ``outcome``, or fail it if ``outcome`` is an exception."""
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class Batcher(Generic[W, R]):
    """Calls ``await handle(batch)`` on lists of ``Pending``, in submission order.

    Up to ``workers`` batches are handled at once, each of up to ``max_batch``
    items; ``handle`` must settle every item of its batch. While the workers
    are busy, new items queue, and the next free worker takes them all (up to
    ``max_batch``) in one batch: the busier the server, the bigger the batches.

    With ``delay`` (a ``QueueDelay``), the queue is bounded in time: an item
    that would wait longer than its target to start is refused at once
    (``errors.Overloaded``), and the queue never holds more than ``max_queue``.
    """

    def __init__(
        self,
        handle: Callable[[list[Pending[W, R]]], Awaitable[None]],
        max_batch: int,
        workers: int,
        delay: QueueDelay | None = None,
        max_queue: int | None = None,
        name: str | None = None,
    ) -> None:
        self._handle = handle
        self._name = name  # a group-commit writer's name: its batch sizes are a metric
        self._max_batch = max_batch
        self._max_workers = workers
        self._workers = 0
        # The loop holds tasks only weakly: a worker waiting on the database
        # could otherwise be collected with its batch unanswered.
        self._tasks: set[asyncio.Future[None]] = set()
        self._queue: list[Pending[W, R]] = []
        self.delay = delay
        self._max_queue = max_queue

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        """True while a new item would be refused: it could not start within the target."""
        queued = len(self._queue)
        if self._max_queue is not None and queued >= self._max_queue:
            return True
        # The next batch takes up to max_batch of the queued items whatever
        # their number: only those queued past it wait for more than the
        # batch running now. Refusing a place in the next batch would only
        # make batches smaller and the server slower.
        return self.delay is not None and self.delay.overloaded(queued - self._max_batch)

    def submit(self, work: W) -> asyncio.Future[R]:
        """Queue ``work``; returns the future ``handle`` settles for it."""
        now = 0.0
        if self.delay is not None:
            now = time.monotonic()
            if self.full:
                self.delay.refuse()
                raise errors.Overloaded()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._enqueue(Pending(work, future, now))
        return future

    def requeue(self, pendings: list[Pending[W, R]]) -> None:
        """Queue items already submitted elsewhere (no admission check: they were admitted)."""
        for pending in pendings:
            self._enqueue(pending)

    def requeue_later(self, pendings: list[Pending[W, R]], delay: float) -> None:
        """``requeue`` after ``delay`` seconds."""
        asyncio.get_running_loop().call_later(delay, self.requeue, pendings)

    def _enqueue(self, pending: Pending[W, R]) -> None:
        self._queue.append(pending)
        if self._workers < self._max_workers:
            self._workers += 1
            task = asyncio.ensure_future(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                if self._name is not None:
                    metrics.batch(self._name, len(batch))
                started = time.monotonic()
                if self.delay is not None:
                    # The oldest item's wait: a batch takes the whole queue, so
                    # its youngest item waited about nothing however long the
                    # queue stands.
                    self.delay.started(started - batch[0].arrived)
                try:
                    await self._handle(batch)
                except Exception as exc:  # the batch failed as a whole: so did its items
                    for pending in batch:
                        pending.settle(exc)
                    continue  # (a database gone says nothing of how fast the queue drains)
                if self.delay is not None:
                    self.delay.served(len(batch), time.monotonic() - started, self._max_batch)
        finally:
            # In the same step as the empty-queue check: an item queued from
            # now on starts a worker of its own.
            self._workers -= 1
