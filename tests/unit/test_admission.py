"""Admission control without a database: predicted waits, bounded batch queues, the door."""

import asyncio

import pytest

from chat import errors
from chat.util.admission import FrontDoor, LoopLag, QueueDelay
from chat.util.batching import Batcher
from unit.fakes import FakeClock, run


def test_an_unmeasured_queue_refuses_nothing():
    delay = QueueDelay(0.1)
    assert not delay.overloaded(10_000)


def test_only_batches_at_least_half_full_measure_the_time_per_item():
    delay = QueueDelay(0.1)
    delay.served(1, 0.005, full=100)  # a lone message: a transaction of its own
    delay.served(49, 0.049, full=100)
    assert delay.per_item == 0.0
    delay.served(100, 0.05, full=100)
    assert delay.per_item == pytest.approx(0.0005)


def test_the_time_per_item_follows_the_recent_batches():
    delay = QueueDelay(0.1)
    delay.served(100, 0.05, full=100)
    for _ in range(60):
        delay.served(100, 0.2, full=100)  # the database (or the loop) got slower
    assert delay.per_item == pytest.approx(0.002, rel=0.01)


def test_an_item_is_refused_when_the_items_ahead_of_it_would_take_past_the_target():
    delay = QueueDelay(0.1)
    delay.served(100, 0.1, full=100)  # 1 ms an item
    assert not delay.overloaded(0)
    assert not delay.overloaded(-50)  # room left in the next batch
    assert not delay.overloaded(100)  # 100 ms: just at the target
    assert delay.overloaded(101)


class Held:
    """A ``handle`` whose batches wait until ``release`` is set."""

    def __init__(self):
        self.release = asyncio.Event()
        self.handled = []

    async def __call__(self, batch):
        await self.release.wait()
        self.handled.extend(p.work for p in batch)
        for p in batch:
            p.settle(p.work)


def test_a_batcher_keeps_the_next_batch_and_refuses_only_what_would_wait_past_it():
    async def scenario():
        handle = Held()
        delay = QueueDelay(0.05)
        delay.served(10, 0.01, full=10)  # 1 ms an item, measured
        batcher = Batcher(handle, max_batch=10, workers=1, delay=delay, max_queue=1000)
        first = batcher.submit(0)  # taken at once by the worker
        await asyncio.sleep(0)
        # The next batch (10 items) and 50 ms of work past it (50 more) are admitted.
        admitted = [batcher.submit(i) for i in range(1, 62)]
        with pytest.raises(errors.Overloaded) as refused:
            batcher.submit(62)
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        assert delay.refused == 1 and batcher.full
        handle.release.set()
        assert await asyncio.gather(first, *admitted) == list(range(62))
        assert await batcher.submit(63) == 63  # drained: admitted again
        assert handle.handled == [*range(62), 63]

    run(scenario())


def test_a_batcher_never_holds_more_than_max_queue():
    async def scenario():
        handle = Held()
        batcher = Batcher(handle, max_batch=10, workers=1, delay=QueueDelay(0.05), max_queue=3)
        first = batcher.submit(0)
        await asyncio.sleep(0)
        queued = [batcher.submit(i) for i in (1, 2, 3)]
        with pytest.raises(errors.Overloaded):
            batcher.submit(4)  # unmeasured, yet the queue is full
        handle.release.set()
        assert await asyncio.gather(first, *queued) == [0, 1, 2, 3]

    run(scenario())


def test_a_standing_queue_is_a_whole_interval_of_slow_starts():
    clock = FakeClock()
    delay = QueueDelay(0.1, interval=0.1, clock=clock)
    for _ in range(5):
        delay.started(0.15)  # even the quickest waited past the target
        clock.advance(0.03)
    clock.advance(0.05)  # the interval closes
    assert delay.standing()
    delay.started(0.01)  # one quick start in the next interval ...
    clock.advance(0.11)
    assert not delay.standing()  # ... and it no longer stands


def test_an_interval_with_no_start_is_not_standing():
    clock = FakeClock()
    delay = QueueDelay(0.1, interval=0.1, clock=clock)
    delay.started(0.5)
    clock.advance(0.11)
    assert delay.standing()
    clock.advance(0.11)
    assert not delay.standing()


class Line:
    def __init__(self, method, path):
        self.method, self.path = method, path


def lagging(clock):
    lag = LoopLag(0.05)
    lag.delay = QueueDelay(0.05, interval=0.1, clock=clock)
    lag.delay.started(0.5)
    clock.advance(0.2)
    return lag


def test_the_front_door_refuses_new_messages_while_the_writer_is_full():
    full = [True]
    door = FrontDoor(lagging(FakeClock()), lambda: full[0], lambda: 0)
    assert door(Line("POST", "/api/messages"))
    assert not door(Line("GET", "/api/messages"))  # history is not new work for the lanes
    assert not door(Line("GET", "/api/health"))
    full[0] = False
    assert not door(Line("POST", "/api/messages"))


def test_the_front_door_refuses_on_loop_lag_only_with_work_of_its_own_in_flight():
    in_flight = [10]
    door = FrontDoor(lagging(FakeClock()), lambda: False, lambda: in_flight[0], busy=256)
    assert not door(Line("GET", "/api/chatrooms"))  # a neighbour's load: not ours to shed
    in_flight[0] = 300
    assert door(Line("GET", "/api/chatrooms"))
    assert not door(Line("GET", "/api/health"))
    assert not door(Line("GET", "/api/ws"))


def test_a_failed_batch_does_not_count_in_the_time_per_item():
    async def scenario():
        fail = [True]

        async def handle(batch):
            await asyncio.sleep(0.05)
            if fail[0]:
                raise errors.Unavailable()
            for p in batch:
                p.settle(p.work)

        delay = QueueDelay(0.05)
        batcher = Batcher(handle, max_batch=2, workers=1, delay=delay)
        with pytest.raises(errors.Unavailable):
            await asyncio.gather(batcher.submit(1), batcher.submit(2))
        assert delay.per_item == 0.0  # a database gone: nothing learnt of the queue's pace
        fail[0] = False
        assert await asyncio.gather(batcher.submit(3), batcher.submit(4)) == [3, 4]
        assert delay.per_item > 0.0

    run(scenario())
