"""Group commit of messages: the messages sent at the same moment share a transaction.

A transaction per message costs four round trips and a log flush. Here
messages queue while a batch is being written, and the next batch takes them
all (up to ``max_batch``) in one transaction:

1. lock the batch's rooms in room_id order and read their latest seq;
2. check every sender's membership (joins and leaves wait for the room locks);
3. give each message the next seq of its room, in the order they were sent,
   and insert them all in one statement;
4. read their ids back, set each room's counter to its latest seq, commit;
5. publish each message after commit, in seq order per room.

Per room, seqs still run 1, 2, 3, ... without gaps: a room's counter moves
only under its lock, and only by the messages stored. A message that cannot
be stored (unknown room, not a member) fails alone. A lone message uses the
one-message path; so does every message of a batch whose insert met a
duplicate key: a clientMsgId sent again (a retry), which that path answers
with the original.
"""

import asyncio
import logging

from .. import errors
from ..db.pool import is_duplicate
from ..timeutil import utcnow
from . import messages, views

log = logging.getLogger("chat.messages")


class _Pending:
    __slots__ = ("user_id", "room_id", "content", "client_msg_id", "future")

    def __init__(self, user_id, room_id, content, client_msg_id, future):
        self.user_id = user_id
        self.room_id = room_id
        self.content = content
        self.client_msg_id = client_msg_id
        self.future = future

    @property
    def member_key(self):
        return self.room_id, self.user_id.lower()


class MessageWriter:
    """Up to ``writers`` batches are written at once, each of up to ``max_batch`` messages.

    Two batches that share a room take its lock one after the other, so that
    room's seqs follow the order its batches committed in. A WebSocket's frames
    are handled one at a time, so one socket's messages keep their order.
    """

    def __init__(self, db, broker, max_batch=100, writers=3):
        self._db = db
        self._broker = broker
        self._max_batch = max_batch
        self._max_writers = writers
        self._writers = 0
        # The loop holds tasks only weakly: a writer waiting on the database
        # could otherwise be collected with its batch unanswered.
        self._tasks = set()
        self._queue = []

    def submit(self, user_id, room_id, content, client_msg_id):
        """Queue a message; the future resolves to ``(created, Message)`` or raises."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(user_id, room_id, content, client_msg_id, future))
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
                await self._write(batch)
        finally:
            # In the same step as the empty-queue check: a message queued
            # from now on starts a writer of its own.
            self._writers -= 1

    async def _write(self, batch):
        if len(batch) == 1:
            await self._one_by_one(batch)
            return
        try:
            outcomes = await self._db.transaction(
                "store_messages", lambda tx: self._store(tx, batch))
        except Exception as exc:
            if is_duplicate(exc):
                await self._one_by_one(batch)
            else:
                log.warning("storing %d messages failed: %s", len(batch), exc)
                for pending in batch:
                    _settle(pending.future, exc)
            return
        for pending, outcome in zip(batch, outcomes):
            _settle(pending.future, outcome)

    async def _one_by_one(self, batch):
        for pending in batch:
            try:
                outcome = await messages.store_one(
                    self._db, self._broker, pending.user_id, pending.room_id,
                    pending.content, pending.client_msg_id)
            except Exception as exc:
                outcome = exc
            _settle(pending.future, outcome)

    async def _store(self, tx, batch):
        """Store a batch; returns one outcome per message: ``(created, Message)`` or an error."""
        room_ids = tuple(sorted({p.room_id for p in batch}))
        last = {row["room_id"]: row["last_seq"]
                for row in await tx.fetch_all("lock_rooms_for_messages", room_ids=room_ids)}
        pairs = tuple({p.member_key for p in batch if p.room_id in last})
        members = set()
        if pairs:
            members = {(row["room_id"], row["user_id"].lower())
                       for row in await tx.fetch_all("members_among", pairs=pairs)}
        outcomes, rows = [], []
        now = utcnow()
        for p in batch:
            if p.room_id not in last:
                outcomes.append(errors.NotFound("No such room."))
            elif p.member_key not in members:
                outcomes.append(errors.NotRoomMember())
            else:
                last[p.room_id] += 1
                row = {"room_id": p.room_id, "seq": last[p.room_id], "sender_id": p.user_id,
                       "content": p.content, "client_msg_id": p.client_msg_id,
                       "created_at": now}
                rows.append(row)
                outcomes.append(row)
        if rows:
            await self._insert(tx, rows)
        shown = {id(row): views.message(row) for row in rows}
        for row in rows:
            tx.after_commit(self._broker.publish, row["room_id"],
                            {"type": "message", "message": shown[id(row)]})
        return [(True, shown[id(o)]) if isinstance(o, dict) else o for o in outcomes]

    async def _insert(self, tx, rows):
        await tx.execute_many("insert_message", rows)
        keys = tuple((row["room_id"], row["seq"]) for row in rows)
        ids = {(r["room_id"], r["seq"]): r["message_id"]
               for r in await tx.fetch_all("message_ids_by_seq", keys=keys)}
        for row in rows:
            row["message_id"] = ids[(row["room_id"], row["seq"])]
        await tx.execute("sync_last_seq", room_ids=tuple({row["room_id"] for row in rows}))


def _settle(future, outcome):
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
