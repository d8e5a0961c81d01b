"""chat/util/batching.py: what is submitted while a batch is handled goes in the next one."""

import asyncio
from typing import Any

import pytest

from chat.util.batching import Batcher, Pending
from unit.fakes import run, settle


class Recorder:
    """A ``handle`` that records its batches and answers each item with ``work * 10``.

    While ``gate`` is unset, batches wait on it, so items pile up behind them.
    """

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, batch: list[Pending]) -> None:
        self.batches.append([p.work for p in batch])
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            for pending in batch:
                pending.settle(pending.work * 10)
        finally:
            self.running -= 1


def test_items_queued_behind_a_busy_worker_share_the_next_batch() -> None:
    async def scenario() -> None:
        handle = Recorder()
        batcher = Batcher(handle, max_batch=100, workers=1)
        first = batcher.submit(1)
        await settle()  # the worker took [1] and waits
        later = [batcher.submit(n) for n in (2, 3, 4)]
        handle.gate.set()
        assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
        assert handle.batches == [[1], [2, 3, 4]]

    run(scenario())


def test_batches_hold_at_most_max_batch_items_in_submission_order() -> None:
    async def scenario() -> None:
        handle = Recorder()
        handle.gate.set()
        batcher = Batcher(handle, max_batch=3, workers=1)
        futures = [batcher.submit(n) for n in range(8)]
        assert await asyncio.gather(*futures) == [n * 10 for n in range(8)]
        assert handle.batches == [[0, 1, 2], [3, 4, 5], [6, 7]]

    run(scenario())


def test_no_more_than_workers_batches_run_at_once() -> None:
    async def scenario() -> None:
        handle = Recorder()
        batcher = Batcher(handle, max_batch=1, workers=2)
        futures = [batcher.submit(n) for n in range(5)]
        await settle()
        assert handle.running == 2 and handle.batches == [[0], [1]]
        handle.gate.set()
        await asyncio.gather(*futures)
        assert handle.most_running == 2
        assert sorted(sum(handle.batches, [])) == [0, 1, 2, 3, 4]

    run(scenario())


def test_a_failed_batch_fails_each_of_its_items_and_the_next_batch_still_runs() -> None:
    async def scenario() -> None:
        handle = Recorder()
        batcher = Batcher(handle, max_batch=2, workers=1)
        failing = [batcher.submit(n) for n in (1, 2)]
        await settle()
        handle.fail_with = RuntimeError("database gone")
        handle.gate.set()
        for future in failing:
            with pytest.raises(RuntimeError, match="database gone"):
                await future
        handle.fail_with = None
        assert await batcher.submit(3) == 30

    run(scenario())


def test_a_new_worker_starts_once_the_last_one_finished() -> None:
    async def scenario() -> None:
        handle = Recorder()
        handle.gate.set()
        batcher = Batcher(handle, max_batch=10, workers=1)
        assert await batcher.submit(1) == 10
        await settle()  # the worker saw an empty queue and ended
        assert await batcher.submit(2) == 20
        assert handle.batches == [[1], [2]]

    run(scenario())


def test_pending_settles_once_with_a_value_or_an_exception() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ok = Pending("w", loop.create_future())
        ok.settle(5)
        ok.settle(RuntimeError("too late"))  # ignored: already settled
        assert ok.future.result() == 5
        failed = Pending("w", loop.create_future())
        failed.settle(ValueError("bad"))
        with pytest.raises(ValueError, match="bad"):
            failed.future.result()

    run(scenario())
