"""One room's messages put in seq order, each once and without gaps.

The broker may hand a process a room's messages late, twice, or out of
order, and may lose some while its transport is down. A ``Sequencer`` turns
that into one ordered stream: it remembers the last seq it delivered, drops
any message at or below it (a duplicate), and holds a message that jumps ahead
until the missing seqs have been read from the store (``gap()`` says which,
``filled()`` takes what was read). After a ``resync()`` it asks for every
stored message above the last one delivered.

It does no I/O: the hub's ``Channel`` reads the store and hands back the rows.
"""

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Sequencer(Generic[Item]):
    """Calls ``deliver(seq, item)`` for seqs last+1, last+2, ... in order, each once."""

    def __init__(self, deliver: Callable[[int, Item], None]) -> None:
        self._deliver = deliver
        self.last: int | None = None  # the last seq delivered; None until start()
        self.pending: dict[int, Item] = {}  # items that arrived ahead of the next seq
        self.resyncing = False  # read everything stored above ``last``

    @property
    def started(self) -> bool:
        return self.last is not None

    @property
    def missing(self) -> bool:
        """True while something has to be read from the store (a gap, or a resync)."""
        return bool(self.pending) or self.resyncing

    def start(self, last_seq: int) -> bool:
        """Where the room stands (its latest stored seq); False if already started.

        Items offered before that and at or below ``last_seq`` are dropped; the
        caller then calls ``drain()`` to deliver what follows on.
        """
        if self.last is not None:
            return False
        self.last = last_seq
        for seq in [s for s in self.pending if s <= last_seq]:
            del self.pending[seq]
        return True

    def offer(self, seq: int, item: Item) -> bool:
        """An item from the broker; False when it is a duplicate and was dropped.

        A new item is held; ``drain()`` delivers it once its turn comes.
        """
        if (self.last is not None and seq <= self.last) or seq in self.pending:
            return False
        self.pending[seq] = item
        return True

    def resync(self) -> None:
        """The broker may have lost items: read every stored one above ``last``."""
        self.resyncing = True

    def drain(self) -> None:
        """Deliver the held items that follow ``last`` without a gap."""
        if self.last is None:
            return
        while self.last + 1 in self.pending:
            self._emit(self.last + 1, self.pending.pop(self.last + 1))

    def gap(self) -> tuple[int, int | None] | None:
        """What to read from the store: (after, upto), seqs after < seq <= upto.

        ``upto`` is None for "every stored one" (a resync); the whole answer is
        None when nothing is missing or the sequencer has not started.
        """
        if self.last is None or not self.missing:
            return None
        if self.resyncing:
            return self.last, None
        return self.last, min(self.pending) - 1

    def filled(self, found: Iterable[tuple[int, Item]], caught_up: bool = False) -> None:
        """Items read from the store for ``gap()``, ascending by seq.

        ``caught_up``: the read went to the end of what is stored, so a resync
        is complete. Items that arrived through the broker meanwhile may have
        moved ``last`` on; only the next seq in line is delivered.
        """
        if caught_up:
            self.resyncing = False
        for seq, item in found:
            if self.last is not None and seq == self.last + 1:
                self.pending.pop(seq, None)
                self._emit(seq, item)
        self.drain()

    def clear(self) -> None:
        """Forget every held item (the channel closed)."""
        self.pending.clear()

    def _emit(self, seq: int, item: Item) -> None:
        self.last = seq
        self._deliver(seq, item)
