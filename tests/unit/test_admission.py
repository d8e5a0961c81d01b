"""Admission control without a database: the queue-delay rule and the bounded batch queue."""

import asyncio

import pytest

from chat import errors
from chat.util.admission import FrontDoor, LoopLag, QueueDelay
from chat.util.batching import Batcher
from unit.fakes import run


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_an_empty_queue_never_refuses():
    clock = Clock()
    delay = QueueDelay(0.1, clock=clock)
    delay.started(5.0)  # even after a very slow start
    clock.now += 1
    assert not delay.overloaded(None)


def test_a_queue_whose_oldest_item_waited_past_the_target_refuses():
    clock = Clock()
    delay = QueueDelay(0.1, clock=clock)
    arrived = clock.now
    clock.now += 0.05
    assert not delay.overloaded(arrived)  # a burst being absorbed
    clock.now += 0.06
    assert delay.overloaded(arrived)  # 110 ms: standing


def test_a_whole_interval_of_slow_starts_refuses_until_the_queue_empties():
    clock = Clock()
    delay = QueueDelay(0.1, interval=0.1, clock=clock)
    for _ in range(5):
        delay.started(0.15)  # even the quickest waited past the target
        clock.now += 0.03
    clock.now += 0.05  # the interval closes
    assert delay.overloaded(clock.now)  # a fresh item, yet the queue stands
    assert not delay.overloaded(None)  # once it has emptied, new work starts at once
    assert not delay.overloaded(clock.now)


def test_one_fast_start_in_the_interval_means_no_standing_queue():
    clock = Clock()
    delay = QueueDelay(0.1, interval=0.1, clock=clock)
    delay.started(0.3)
    delay.started(0.01)
    clock.now += 0.11
    assert not delay.overloaded(clock.now)


def test_a_batcher_refuses_new_items_while_its_queue_stands():
    async def scenario():
        release = asyncio.Event()
        handled = []

        async def handle(batch):
            await release.wait()
            handled.extend(p.work for p in batch)
            for p in batch:
                p.settle(p.work)

        batcher = Batcher(handle, max_batch=10, workers=1, delay=QueueDelay(0.05), max_queue=3)
        first = batcher.submit(0)  # taken at once by the worker
        await asyncio.sleep(0)
        queued = [batcher.submit(i) for i in (1, 2, 3)]
        with pytest.raises(errors.Overloaded):
            batcher.submit(4)  # the queue is full
        await asyncio.sleep(0.08)  # and now its oldest item waited past the target
        release.set()
        with pytest.raises(errors.Overloaded) as refused:
            batcher.submit(5)
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        assert await asyncio.gather(first, *queued) == [0, 1, 2, 3]
        assert await batcher.submit(6) == 6  # drained: admitted again
        assert handled == [0, 1, 2, 3, 6]

    run(scenario())


class Line:
    def __init__(self, method, path):
        self.method, self.path = method, path


def standing_delay(clock):
    delay = QueueDelay(0.1, interval=0.1, clock=clock)
    delay.started(0.5)
    clock.now += 0.2
    return delay


def test_the_front_door_refuses_new_messages_while_a_lane_stands():
    clock = Clock()
    lag = LoopLag(0.05)
    door = FrontDoor(lag, [QueueDelay(0.1, clock=clock), standing_delay(clock)], lambda: 0)
    assert door(Line("POST", "/api/messages"))
    assert not door(Line("GET", "/api/messages"))  # history is not new work for the lanes
    assert not door(Line("GET", "/api/health"))


def test_the_front_door_refuses_on_loop_lag_only_with_work_of_its_own_in_flight():
    clock = Clock()
    lag = LoopLag(0.05)
    lag.delay = standing_delay(clock)
    in_flight = [10]
    door = FrontDoor(lag, [], lambda: in_flight[0], busy=256)
    assert not door(Line("GET", "/api/chatrooms"))  # a neighbour's load: not ours to shed
    in_flight[0] = 300
    assert door(Line("GET", "/api/chatrooms"))
    assert not door(Line("GET", "/api/health"))
    assert not door(Line("GET", "/api/ws"))
