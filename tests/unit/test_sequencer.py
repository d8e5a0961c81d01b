"""chat/realtime/sequencer.py: each seq once, in order, gaps filled from the store."""

from chat.realtime.sequencer import Sequencer


def recording() -> tuple[Sequencer[str], list[tuple[int, str]]]:
    delivered: list[tuple[int, str]] = []
    return Sequencer(lambda seq, item: delivered.append((seq, item))), delivered


def test_items_in_order_are_delivered_at_once() -> None:
    seq, delivered = recording()
    assert seq.start(4)
    for n in (5, 6, 7):
        assert seq.offer(n, f"m{n}")
        seq.drain()
    assert delivered == [(5, "m5"), (6, "m6"), (7, "m7")]
    assert seq.last == 7 and not seq.missing and seq.gap() is None


def test_duplicates_are_dropped() -> None:
    seq, delivered = recording()
    seq.start(0)
    seq.offer(1, "first")
    seq.drain()
    assert not seq.offer(1, "again")  # at or below last
    assert seq.offer(3, "ahead")
    assert not seq.offer(3, "ahead again")  # already held
    seq.drain()
    assert delivered == [(1, "first")]
    assert seq.pending == {3: "ahead"}


def test_nothing_is_delivered_before_start_and_start_drops_what_it_covers() -> None:
    seq, delivered = recording()
    for n in (3, 4, 5, 6):
        seq.offer(n, f"m{n}")
    seq.drain()
    assert delivered == [] and seq.gap() is None  # the room's position is unknown yet
    assert seq.start(4)
    assert seq.pending == {5: "m5", 6: "m6"}
    seq.drain()
    assert delivered == [(5, "m5"), (6, "m6")]
    assert not seq.start(10)  # only the first start counts
    assert seq.last == 6


def test_a_gap_is_read_from_the_store_and_then_the_held_items_follow() -> None:
    seq, delivered = recording()
    seq.start(1)
    seq.offer(5, "m5")
    seq.offer(4, "m4")
    seq.drain()
    assert delivered == [] and seq.missing
    assert seq.gap() == (1, 3)  # seqs 2 and 3 are missing
    seq.filled([(2, "s2"), (3, "s3")])
    assert delivered == [(2, "s2"), (3, "s3"), (4, "m4"), (5, "m5")]
    assert not seq.missing and seq.gap() is None


def test_a_partial_read_leaves_the_rest_of_the_gap() -> None:
    seq, delivered = recording()
    seq.start(0)
    seq.offer(5, "m5")
    seq.filled([(1, "s1"), (2, "s2")])  # the store answered a first page only
    assert delivered == [(1, "s1"), (2, "s2")]
    assert seq.gap() == (2, 4)
    seq.filled([])  # nothing new (a failed read): nothing moves
    assert seq.gap() == (2, 4) and seq.last == 2


def test_rows_the_broker_delivered_meanwhile_are_not_delivered_twice() -> None:
    seq, delivered = recording()
    seq.start(0)
    seq.offer(3, "m3")
    assert seq.gap() == (0, 2)
    # While the read was in flight, 1 and 2 arrived through the broker.
    seq.offer(1, "m1")
    seq.offer(2, "m2")
    seq.drain()
    seq.filled([(1, "s1"), (2, "s2")])
    assert delivered == [(1, "m1"), (2, "m2"), (3, "m3")]


def test_rows_out_of_line_are_skipped() -> None:
    seq, delivered = recording()
    seq.start(0)
    seq.offer(4, "m4")
    seq.filled([(2, "s2"), (3, "s3")])  # 1 is not among them: nothing can be delivered
    assert delivered == []
    assert seq.gap() == (0, 3)


def test_resync_reads_everything_above_last_until_caught_up() -> None:
    seq, delivered = recording()
    seq.start(7)
    seq.resync()
    assert seq.missing and seq.gap() == (7, None)
    seq.filled([(8, "s8"), (9, "s9")], caught_up=False)  # a full page: maybe more
    assert seq.gap() == (9, None)
    seq.filled([(10, "s10")], caught_up=True)
    assert delivered == [(8, "s8"), (9, "s9"), (10, "s10")]
    assert not seq.missing and seq.gap() is None


def test_a_resync_before_start_waits_for_start() -> None:
    seq, _ = recording()
    seq.resync()
    assert seq.gap() is None
    seq.start(3)
    assert seq.gap() == (3, None)


def test_clear_forgets_held_items() -> None:
    seq, delivered = recording()
    seq.start(0)
    seq.offer(2, "m2")
    seq.clear()
    seq.filled([(1, "s1")])
    assert delivered == [(1, "s1")] and not seq.missing
