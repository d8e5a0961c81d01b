"""Batches: what is submitted while a batch is being handled goes in the next one.

Used for group commit (messages, joins: many items, one transaction) and for
batched reads (token revocations: many look-ups, one query).
"""

import asyncio


class Pending:
    """One submitted item: what to do, and the future its submitter waits on."""

    __slots__ = ("work", "future")

    def __init__(self, work, future):
        self.work = work
        self.future = future

    def settle(self, outcome):
        """Resolve the future with ``outcome``, or fail it if ``outcome`` is an exception."""
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class Batcher:
    """Calls ``await handle(batch)`` on lists of ``Pending``, in submission order.

    Up to ``workers`` batches are handled at once, each of up to ``max_batch``
    items; ``handle`` must settle every item of its batch. While the workers
    are busy, new items queue, and the next free worker takes them all (up to
    ``max_batch``) in one batch: the busier the server, the bigger the batches.
    """

    def __init__(self, handle, max_batch, workers):
        self._handle = handle
        self._max_batch = max_batch
        self._max_workers = workers
        self._workers = 0
        # The loop holds tasks only weakly: a worker waiting on the database
        # could otherwise be collected with its batch unanswered.
        self._tasks = set()
        self._queue = []

    def submit(self, work):
        """Queue ``work``; returns the future ``handle`` settles for it."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(work, future))
        if self._workers < self._max_workers:
            self._workers += 1
            task = asyncio.ensure_future(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def _work(self):
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._handle(batch)
                except Exception as exc:  # the batch failed as a whole: so did its items
                    for pending in batch:
                        pending.settle(exc)
        finally:
            # In the same step as the empty-queue check: an item queued from
            # now on starts a worker of its own.
            self._workers -= 1
