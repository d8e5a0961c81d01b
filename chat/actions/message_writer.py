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
one-message path; so does every message of a batch that failed: a batch
whose insert met a duplicate key (a clientMsgId sent again, a retry, which
that path answers with the original), or one the database refused for any
other reason, so that one bad message never fails the others.
"""

import logging

from chat import errors
from chat.actions import messages
from chat.api import views
from chat.db.errors import DuplicateKey
from chat.models import Message
from chat.util import ids
from chat.util.batching import Batcher
from chat.util.times import utcnow

log = logging.getLogger("chat.messages")


class _Message:
    __slots__ = ("user_id", "room_id", "content", "client_msg_id")

    def __init__(self, user_id, room_id, content, client_msg_id):
        self.user_id = user_id
        self.room_id = room_id
        self.content = content
        self.client_msg_id = client_msg_id

    @property
    def member_key(self):
        return self.room_id, ids.fold(self.user_id)


class MessageWriter:
    """Up to ``writers`` batches are written at once, each of up to ``max_batch`` messages.

    Two writers measured better than one (a batch need not wait for the
    previous one's log flush) and than three or more (batches spanning the
    same rooms then mostly wait on each other's room locks).

    Two batches that share a room take its lock one after the other, so that
    room's seqs follow the order its batches committed in. A WebSocket's frames
    are handled one at a time, so one socket's messages keep their order.
    """

    def __init__(self, db, broker, max_batch=100, writers=2):
        self._db = db
        self._broker = broker
        self._batches = Batcher(self._write, max_batch, writers)

    def submit(self, user_id, room_id, content, client_msg_id):
        """Queue a message; the future resolves to ``(created, Message)`` or raises."""
        return self._batches.submit(_Message(user_id, room_id, content, client_msg_id))

    async def _write(self, batch):
        if len(batch) == 1:
            await self._one_by_one(batch)
            return
        items = [pending.work for pending in batch]
        try:
            outcomes = await self._db.transaction(
                "store_messages", lambda tx: self._store(tx, items)
            )
        except DuplicateKey:
            # A clientMsgId sent again (a retry): the one-message path
            # answers it with the original.
            await self._one_by_one(batch)
            return
        except Exception as exc:
            # One message the database refused: each message then goes
            # alone, so only the bad one fails.
            log.warning(
                "storing %d messages together failed (%s); storing them one by one",
                len(batch),
                type(exc).__name__,
            )
            await self._one_by_one(batch)
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.settle(outcome)

    async def _one_by_one(self, batch):
        for pending in batch:
            m = pending.work
            try:
                outcome = await messages.store_one(
                    self._db, self._broker, m.user_id, m.room_id, m.content, m.client_msg_id
                )
            except Exception as exc:
                outcome = exc
            pending.settle(outcome)

    async def _store(self, tx, batch):
        """Store ``_Message``s; returns one outcome each: ``(created, Message)`` or an error."""
        room_ids = tuple(sorted({p.room_id for p in batch}))
        last = {
            row["room_id"]: row["last_seq"]
            for row in await tx.fetch_all("lock_rooms_for_messages", room_ids=room_ids)
        }
        pairs = tuple({p.member_key for p in batch if p.room_id in last})
        members = set()
        if pairs:
            members = {
                (row["room_id"], ids.fold(row["user_id"]))
                for row in await tx.fetch_all("members_among", pairs=pairs)
            }
        outcomes, rows = [], []
        now = utcnow()
        for p in batch:
            if p.room_id not in last:
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

    async def _insert(self, tx, rows):
        await tx.execute_many("insert_message", rows)
        keys = tuple((row["room_id"], row["seq"]) for row in rows)
        ids = {
            (r["room_id"], r["seq"]): r["message_id"]
            for r in await tx.fetch_all("message_ids_by_seq", keys=keys)
        }
        for row in rows:
            row["message_id"] = ids[(row["room_id"], row["seq"])]
        await tx.execute("sync_last_seq", room_ids=tuple({row["room_id"] for row in rows}))
