"""Group commit of messages: the messages sent at the same moment share a transaction.

A transaction per message costs four round trips and a log flush. Here
messages queue while a batch is being written, and the next batch takes them
all (up to ``max_batch``) in one transaction of two round trips:

1. lock the batch's rooms in room_id order and read their latest seq (a room
   locked elsewhere is skipped: its messages move to the slow lane), and in
   the same round trip read which senders are members (joins and leaves
   wait for the room locks);
2. give each message the next seq of its room, in the order they were sent;
   insert them all in one statement that returns their ids, set each room's
   counter to its latest seq and commit, in the second round trip;
3. publish each message after commit, in seq order per room.

Per room, seqs still run 1, 2, 3, ... without gaps: a room's counter moves
only under its lock, and only by the messages stored. A message that cannot
be stored (unknown room, not a member) fails alone. Every message of a batch
that failed takes the one-message path: a batch whose insert met a duplicate
key (a clientMsgId sent again, a retry, which that path answers with the
original), or one the database refused for any other reason, so that one
bad message never fails the others.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chat import errors
from chat.actions import messages
from chat.api import views
from chat.db.errors import DuplicateKey
from chat.models import Message
from chat.ops import metrics
from chat.util import ids
from chat.util.admission import QueueDelay
from chat.util.batching import Batcher, Pending
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.db.pool import Database, Row, Transaction
    from chat.realtime.broker import Broker

Stored = tuple[bool, Message]  # (created, the message)

log = logging.getLogger("chat.messages")


class _Busy:
    """The outcome of a message whose room another transaction holds locked."""


_BUSY = _Busy()
# A message whose room is locked is tried again after 10, 20, 30 ms; then it
# moves to the slow lane, which waits for the lock.
BOUNCES = 3
BOUNCE_PAUSE = 0.01
# Rooms the slow lane writes at once (each on a connection of its own), and
# its batches at once.
SLOW_ROOMS = 4


class _Message:
    __slots__ = ("bounces", "user_id", "room_id", "content", "client_msg_id")

    def __init__(self, user_id: str, room_id: str, content: str, client_msg_id: str | None) -> None:
        self.bounces = 0  # times its room was found locked by another transaction
        self.user_id = user_id
        self.room_id = room_id
        self.content = content
        self.client_msg_id = client_msg_id

    @property
    def member_key(self) -> tuple[str, str]:
        return self.room_id, ids.fold(self.user_id)


def _count_stored(future: asyncio.Future[Stored]) -> None:
    if not future.cancelled() and future.exception() is None and future.result()[0]:
        metrics.message_stored()


class MessageWriter:
    """Each room belongs to one of ``writers`` lanes; each lane writes one batch at a time.

    Four lanes measured better than two, and two better than one: a batch
    spends most of its time waiting, for the database's log flush and for
    the event loop to come back to it, and the other lanes' batches run
    meanwhile (at 1.5x capacity in ``make bench``'s overload phase, the
    messages stored rose from 0.63-0.80 of that capacity to 0.82-0.93 over
    WebSocket, from 0.23-0.46 to 0.46-0.53 over HTTP; the WebSocket p99
    grew by half: bench/README.md). A room's messages all go through its
    lane, so two batches never wait on each other's room locks, and a
    room's seqs follow the order its messages were queued in. A WebSocket's
    frames are handled one at a time, so one socket's messages reach the
    writer in order, and keep it unless their room was locked by another
    transaction: a message that waits for the lock (retried, or in the slow
    lane) can be overtaken by a later one.

    A batch skips rooms whose row lock another transaction holds (``SKIP
    LOCKED``): their messages move to the slow lane, which stores them a
    transaction per room, waiting (boundedly) for the lock, while the
    batches of every other room go on. A lane refuses a new message at once
    (``503 overloaded``) when it could not start it within ``queue_delay``
    seconds of the batch after the one being written.
    """

    def __init__(
        self,
        db: Database,
        broker: Broker,
        max_batch: int = 100,
        writers: int = 4,
        queue_delay: float = 0.1,
        max_queue: int = 5000,
    ) -> None:
        self._db = db
        self._broker = broker
        self._lanes: list[Batcher[_Message, Stored]] = [
            Batcher(self._write, max_batch, 1, QueueDelay(queue_delay), max_queue, name="messages")
            for _ in range(writers)
        ]
        # Several batches at once: one waiting on a long-held lock holds up
        # none that comes after it.
        self._slow: Batcher[_Message, Stored] = Batcher(
            self._write_waiting,
            max_batch,
            SLOW_ROOMS,
            QueueDelay(queue_delay),
            max_queue,
            name="messages_slow",
        )
        self._slow_rooms = asyncio.Semaphore(SLOW_ROOMS)  # the slow lane's transactions

    @property
    def lanes(self) -> list[Batcher[_Message, Stored]]:
        """Every queue of this writer: the room lanes, then the slow lane."""
        return [*self._lanes, self._slow]

    @property
    def full(self) -> bool:
        """True while every lane would refuse a new message."""
        return all(lane.full for lane in self._lanes)

    def submit(
        self, user_id: str, room_id: str, content: str, client_msg_id: str | None
    ) -> asyncio.Future[Stored]:
        """Queue a message; the future resolves to ``(created, Message)`` or raises.

        Raises ``errors.Overloaded`` at once when the room's lane could not start it soon.
        """
        future = self._lane(room_id).submit(_Message(user_id, room_id, content, client_msg_id))
        future.add_done_callback(_count_stored)
        return future

    def _lane(self, room_id: str) -> Batcher[_Message, Stored]:
        return self._lanes[hash(room_id) % len(self._lanes)]

    def _busy(self, pendings: list[Pending[_Message, Stored]]) -> None:
        """Items whose room another transaction holds: try again shortly, then the slow lane.

        Most such locks are another writer's batch, held for milliseconds.
        """
        for pending in pendings:
            pending.work.bounces += 1
            if pending.work.bounces <= BOUNCES:
                lane = self._lane(pending.work.room_id)
                lane.requeue_later([pending], BOUNCE_PAUSE * pending.work.bounces)
            else:
                self._slow.requeue([pending])

    async def _write(
        self, batch: list[Pending[_Message, Stored]], skip_locked: bool = True
    ) -> None:
        items = [pending.work for pending in batch]
        try:
            outcomes = await self._db.transaction(
                "store_messages", lambda tx: self._store(tx, items, skip_locked)
            )
        except DuplicateKey:
            # A clientMsgId sent again (a retry): the one-message path
            # answers it with the original.
            await self._one_by_one(batch, skip_locked)
            return
        except Exception as exc:
            if isinstance(exc, errors.ChatError):
                raise  # the database is unavailable: alone, each would fail as well
            # One message the database refused: each message then goes
            # alone, so only the bad one fails.
            if len(batch) > 1:
                log.warning(
                    "storing %d messages together failed (%s); storing them one by one",
                    len(batch),
                    type(exc).__name__,
                )
            await self._one_by_one(batch, skip_locked)
            return
        busy = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, _Busy):
                busy.append(pending)
            else:
                pending.settle(outcome)
        self._busy(busy)

    async def _one_by_one(
        self, batch: list[Pending[_Message, Stored]], skip_locked: bool = True
    ) -> None:
        busy = []
        for pending in batch:
            m = pending.work
            outcome: Stored | Exception
            try:
                outcome = await messages.store_one(
                    self._db,
                    self._broker,
                    m.user_id,
                    m.room_id,
                    m.content,
                    m.client_msg_id,
                    skip_locked=skip_locked,
                )
            except messages.RoomBusy:
                busy.append(pending)
                continue
            except Exception as exc:
                outcome = exc
            pending.settle(outcome)
        self._busy(busy)

    async def _write_waiting(self, batch: list[Pending[_Message, Stored]]) -> None:
        """The slow lane: rooms locked elsewhere, a transaction per room waiting for its lock.

        A room's messages share one transaction (two processes writing to one
        room send many of its messages here: one transaction each could not
        keep up). Up to SLOW_ROOMS rooms are written at once, over the slow
        lane's batches, so a room whose lock is held for long holds up no
        other.
        """
        rooms: dict[str, list[Pending[_Message, Stored]]] = {}
        for pending in batch:
            rooms.setdefault(pending.work.room_id, []).append(pending)

        async def write(group: list[Pending[_Message, Stored]]) -> None:
            async with self._slow_rooms:
                try:
                    await self._write(group, skip_locked=False)
                except Exception as exc:  # this room's messages only
                    for pending in group:
                        pending.settle(exc)

        await asyncio.gather(*(write(group) for group in rooms.values()))

    async def _store(
        self, tx: Transaction, batch: list[_Message], skip_locked: bool = True
    ) -> list[Stored | Exception | _Busy]:
        """Store ``_Message``s; returns one outcome each: ``(created, Message)`` or an error.

        Two round trips when every room is free: the room locks with the
        memberships, then the insert, the rooms' counters and the commit.
        ``skip_locked=False`` waits for the rooms' locks instead of leaving
        the locked ones out.
        """
        room_ids = tuple(sorted({p.room_id for p in batch}))
        lock = "lock_rooms_for_messages" if skip_locked else "lock_rooms_for_messages_waiting"
        locked, member_rows = await tx.together(
            tx.statement(lock, room_ids=room_ids),
            tx.statement("members_among", pairs=tuple({p.member_key for p in batch})),
        )
        last = {row["room_id"]: row["last_seq"] for row in locked}
        busy: set[str] = set()
        if skip_locked and len(last) < len(room_ids):  # left out: locked elsewhere, or no room
            missing = tuple(r for r in room_ids if r not in last)
            busy = {
                row["room_id"] for row in await tx.fetch_all("existing_rooms", room_ids=missing)
            }
        # Read under the locks of the rooms in `last`: joins and leaves wait for them.
        members = {(row["room_id"], ids.fold(row["user_id"])) for row in member_rows}
        outcomes: list[Row | Exception | _Busy] = []
        rows: list[Row] = []
        now = utcnow()
        for p in batch:
            if p.room_id in busy:
                outcomes.append(_BUSY)
            elif p.room_id not in last:
                outcomes.append(errors.NotFound("No such room."))
            elif p.member_key not in members:
                outcomes.append(errors.NotRoomMember())
            else:
                last[p.room_id] += 1
                row = {
                    "room_id": p.room_id,
                    "seq": last[p.room_id],
                    "sender_id": p.user_id,
                    "content": p.content,
                    "client_msg_id": p.client_msg_id,
                    "created_at": now,
                }
                rows.append(row)
                outcomes.append(row)
        if rows:
            await self._insert(tx, rows)
        stored = {id(row): Message.from_row(row) for row in rows}
        for message in stored.values():
            tx.after_commit(
                self._broker.publish,
                message.room_id,
                views.message_event(views.message(message)),
            )
        return [(True, stored[id(o)]) if isinstance(o, dict) else o for o in outcomes]

    async def _insert(self, tx: Transaction, rows: list[Row]) -> None:
        """Insert the rows, set their rooms' counters and commit, in one round trip."""
        returned, _ = await tx.commit_with(
            tx.insert_rows("insert_messages", rows),
            tx.statement("sync_last_seq", room_ids=tuple({row["room_id"] for row in rows})),
        )
        found = {(r["room_id"], r["seq"]): r["message_id"] for r in returned}
        for row in rows:
            row["message_id"] = found[(row["room_id"], row["seq"])]
