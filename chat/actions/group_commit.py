"""Group commit: what is submitted while a batch is being written goes in the next one."""

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


class GroupCommit:
    """Calls ``await write(batch)`` on lists of ``Pending``, in submission order.

    Up to ``writers`` batches are written at once, each of up to ``max_batch``
    items; ``write`` must settle every item of its batch. While the writers
    are busy, new items queue, and the next free writer takes them all (up to
    ``max_batch``) in one batch: the busier the server, the bigger the batches.
    """

    def __init__(self, write, max_batch, writers):
        self._write = write
        self._max_batch = max_batch
        self._max_writers = writers
        self._writers = 0
        # The loop holds tasks only weakly: a writer waiting on the database
        # could otherwise be collected with its batch unanswered.
        self._tasks = set()
        self._queue = []

    def submit(self, work):
        """Queue ``work``; returns the future ``write`` settles for it."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(work, future))
        if self._writers < self._max_writers:
            self._writers += 1
            task = asyncio.ensure_future(self._write_queue())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def _write_queue(self):
        try:
            while self._queue:
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
                try:
                    await self._write(batch)
                except Exception as exc:  # write failed as a whole: so did its items
                    for pending in batch:
                        pending.settle(exc)
        finally:
            # In the same step as the empty-queue check: an item queued from
            # now on starts a writer of its own.
            self._writers -= 1
