"""Group commit of joins: the joins asked for at the same moment share a transaction.

A join on its own is about seven round trips and a log flush. Here joins
queue while a batch is being written, and the next batch takes them all (up
to ``max_batch``) in one transaction of a fixed number of statements:

1. lock the batch's invitations (by token hash), then its rooms in room_id
   order, then read those rooms' members (exact: every membership change
   takes its room's lock first), then lock the joiners' rows in user_id
   order (balance, prime flag and free join). Every batch and every leave
   takes room locks before user locks, so they never wait in a circle;
2. decide each join in the order they were asked for, against what the
   batch's earlier joins changed: an invitation is checked before anything
   else; a member is told so (charged 0); a full room refuses; a prime
   member joins free, a non-prime member's first room is free, every other
   costs the price, or is refused for a short balance;
3. write it all in a handful of set-wise statements (seats, coins, free
   joins, ledger rows, memberships, used invitations) and commit. The seat
   and coin updates repeat the capacity and balance conditions and must
   touch every row decided on, or the whole batch rolls back;
4. publish ``member_joined`` for each new member after commit.

Each room belongs to one of ``writers`` lanes (a join by invitation, whose
room is not known yet, to a lane by its token), so two batches seldom want
the same room. A batch skips rooms whose lock another transaction holds:
those joins move to the slow lane, which writes each alone, waiting
(boundedly) for its locks, up to SLOW_JOINS at once (so a room held for long
holds up no other), while every other room's joins go on. Each lane
refuses new joins (``503 overloaded``) while its queueing delay stands above
``queue_delay``.

A refused join changes nothing: its invitation stays usable, its coins and
free join untouched. CHECK constraints (capacity, balance) back it all.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from chat import errors
from chat.api import views
from chat.auth import tokens
from chat.models import Joined, Room
from chat.util import ids
from chat.util.admission import QueueDelay
from chat.util.batching import Batcher, Pending
from chat.util.times import utcnow

if TYPE_CHECKING:
    from chat.db.pool import Database, Row, Transaction
    from chat.realtime.broker import Broker

K = TypeVar("K", str, int)

log = logging.getLogger("chat.joins")


class _Busy:
    """The outcome of a join whose room another transaction holds locked."""


_BUSY = _Busy()
# What a join comes to: its answer, its refusal, or "its room is busy".
Outcome = Joined | Exception | _Busy
BOUNCES = 3
# Joins the slow lane writes at once, each waiting for its locks on a
# connection of its own.
SLOW_JOINS = 4


class _Join:
    __slots__ = ("bounces", "user_id", "room_id", "token_hash")

    def __init__(self, user_id: str, room_id: str | None, token: str | None) -> None:
        self.bounces = 0  # times its room was found locked by another transaction
        self.user_id = user_id
        self.room_id = room_id
        self.token_hash = None if token is None else tokens.invitation_hash(token)


class JoinWriter:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        price: int,
        max_batch: int = 100,
        writers: int = 2,
        queue_delay: float = 0.1,
    ) -> None:
        self._db = db
        self._broker = broker
        self._price = price
        self._lanes: list[Batcher[_Join, Joined]] = [
            Batcher(self._write, max_batch, 1, QueueDelay(queue_delay), 5000, name="joins")
            for _ in range(writers)
        ]
        self._slow: Batcher[_Join, Joined] = Batcher(
            self._write_waiting, 1, SLOW_JOINS, QueueDelay(queue_delay), 5000, name="joins_slow"
        )

    @property
    def lanes(self) -> list[Batcher[_Join, Joined]]:
        return [*self._lanes, self._slow]

    def submit(
        self, user_id: str, room_id: str | None = None, token: str | None = None
    ) -> asyncio.Future[Joined]:
        """Queue a join by room (password already checked) or by invitation token.

        The future resolves to ``Joined`` or raises
        the join's refusal (``errors.ChatError``).
        """
        join = _Join(user_id, room_id, token)
        return self._lane(join).submit(join)

    def _lane(self, join: _Join) -> Batcher[_Join, Joined]:
        key = join.room_id if join.room_id is not None else join.token_hash
        return self._lanes[hash(key) % len(self._lanes)]

    async def _write(self, batch: list[Pending[_Join, Joined]], skip_locked: bool = True) -> None:
        try:
            outcomes = await self._run([pending.work for pending in batch], skip_locked)
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, errors.ChatError):
                raise  # alone (or with the database unavailable) it would fail the same
            # One join the database refused must not fail the others: each
            # goes alone, and only the bad one fails.
            log.warning(
                "writing %d joins together failed (%s); writing them one by one",
                len(batch),
                type(exc).__name__,
            )
            outcomes = []
            for pending in batch:
                try:
                    outcomes.append((await self._run([pending.work], skip_locked))[0])
                except Exception as alone:
                    outcomes.append(alone)
        busy = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, _Busy):
                busy.append(pending)
            else:
                pending.settle(outcome)
        for pending in busy:
            # Most such locks are another writer's batch, held for milliseconds:
            # try again shortly, then in the slow lane, which waits for the lock.
            pending.work.bounces += 1
            if pending.work.bounces <= BOUNCES:
                self._lane(pending.work).requeue_later([pending], 0.01 * pending.work.bounces)
            else:
                self._slow.requeue([pending])

    async def _write_waiting(self, batch: list[Pending[_Join, Joined]]) -> None:
        await self._write(batch, skip_locked=False)

    async def _run(self, joins: list[_Join], skip_locked: bool) -> list[Outcome]:
        return await self._db.transaction(
            "join_rooms",
            lambda tx: _Batch(tx, self._price, self._broker, skip_locked).run(joins),
        )


class _Batch:
    """One batch's transaction: the locked rows, the decisions, the writes."""

    def __init__(
        self, tx: Transaction, price: int, broker: Broker, skip_locked: bool = False
    ) -> None:
        self.tx = tx
        self.skip_locked = skip_locked
        self.busy_rooms: set[str] = set()  # rooms left out: another transaction holds them
        self.price = price
        self.broker = broker
        self.now = utcnow()
        self.invitations: dict[bytes, Row] = {}  # token hash -> row
        # room_id (case matters) -> row, with "members" (a list)
        self.rooms: dict[str, Row] = {}
        self.users: dict[str, Row] = {}  # folded user_id -> row
        self.seats: collections.Counter[str] = collections.Counter()  # room_id -> seats taken
        self.charges: collections.Counter[str] = collections.Counter()  # user_id -> coins taken
        self.free_joins: list[str] = []
        self.used_invitations: list[int] = []
        self.ledger: list[Row] = []
        self.memberships: list[Row] = []

    async def run(self, joins: list[_Join]) -> list[Outcome]:
        await self._lock(joins)
        outcomes: list[Outcome] = []
        for join in joins:
            try:
                outcomes.append(self._decide(join))
            except errors.ChatError as refusal:
                outcomes.append(refusal)
        await self._write()
        return outcomes

    async def _lock(self, joins: list[_Join]) -> None:
        hashes = tuple(sorted({j.token_hash for j in joins if j.token_hash is not None}))
        if hashes:
            rows = await self.tx.fetch_all("lock_invitations", token_hashes=hashes)
            self.invitations = {row["token_hash"]: row for row in rows}
        room_ids = {j.room_id for j in joins if j.room_id is not None}
        room_ids.update(row["room_id"] for row in self.invitations.values())
        if room_ids:
            ordered = tuple(sorted(room_ids))
            lock = "lock_free_rooms_for_joins" if self.skip_locked else "lock_rooms_for_joins"
            for row in await self.tx.fetch_all(lock, room_ids=ordered):
                self.rooms[row["room_id"]] = {**row, "members": []}
            if len(self.rooms) < len(ordered) and self.skip_locked:
                missing = tuple(r for r in ordered if r not in self.rooms)
                rows = await self.tx.fetch_all("existing_rooms", room_ids=missing)
                self.busy_rooms = {row["room_id"] for row in rows}
            locked = tuple(sorted(self.rooms))
            if locked:
                for row in await self.tx.fetch_all("list_members_of_rooms", room_ids=locked):
                    self.rooms[row["room_id"]]["members"] = row["members"].split(",")
        user_ids = tuple(sorted({ids.fold(j.user_id) for j in joins}))
        for row in await self.tx.fetch_all("lock_users_for_joins", user_ids=user_ids):
            self.users[ids.fold(row["user_id"])] = row

    def _decide(self, join: _Join) -> Joined | _Busy:
        invitation = None
        room_id = join.room_id
        if join.token_hash is not None:
            invitation = self._usable_invitation(join)
            room_id = invitation["room_id"]
        if room_id in self.busy_rooms:
            return _BUSY
        room = None if room_id is None else self.rooms.get(room_id)
        if room is None:
            raise errors.NotFound("No such room.")
        user = self.users.get(ids.fold(join.user_id))
        if user is None:
            raise errors.NotFound("No such user.")
        if ids.has_member(room["members"], join.user_id):
            self._use(invitation)
            return self._answer(room, 0, user)
        if room["member_count"] >= room["capacity"]:
            raise errors.RoomFull()
        charged = self._charge(user, room)
        self._use(invitation)
        room["member_count"] += 1
        room["members"].append(user["user_id"])
        self.seats[room["room_id"]] += 1
        self.memberships.append(
            {
                "room_id": room["room_id"],
                "user_id": user["user_id"],
                "charged": charged,
                "joined_at": self.now,
            }
        )
        self.tx.after_commit(
            self.broker.publish,
            room["room_id"],
            views.room_event("member_joined", room["room_id"], user["user_id"]),
        )
        return self._answer(room, charged, user)

    def _usable_invitation(self, join: _Join) -> Row:
        invitation = None if join.token_hash is None else self.invitations.get(join.token_hash)
        if (
            invitation is None
            or invitation["used_at"] is not None
            or invitation["expires_at"] <= self.now
            or not ids.same_user(invitation["invitee_id"], join.user_id)
        ):
            raise errors.InviteInvalid()
        return invitation

    def _use(self, invitation: Row | None) -> None:
        if invitation is not None:
            invitation["used_at"] = self.now
            self.used_invitations.append(invitation["invitation_id"])

    def _charge(self, user: Row, room: Row) -> int:
        """The price of this join for ``user``, taken from the locked row's state."""
        if user["is_prime"]:
            return 0
        if not user["free_join_used"]:
            user["free_join_used"] = True
            self.free_joins.append(user["user_id"])
            return 0
        if self.price == 0:
            return 0
        if user["avail_coins"] < self.price:
            raise errors.InsufficientCoins(self.price, int(user["avail_coins"]))
        user["avail_coins"] -= self.price
        self.charges[user["user_id"]] += self.price
        self.ledger.append(
            {
                "user_id": user["user_id"],
                "delta": -self.price,
                "balance_after": user["avail_coins"],
                "reason": "join_charge",
                "room_id": room["room_id"],
                "created_at": self.now,
            }
        )
        return self.price

    @staticmethod
    def _answer(room: Row, charged: int, user: Row) -> Joined:
        return Joined(Room.from_row(room, room["members"]), charged, int(user["avail_coins"]))

    async def _write(self) -> None:
        tx = self.tx
        if self.used_invitations:
            await tx.execute(
                "use_invitations", invitation_ids=tuple(self.used_invitations), used_at=self.now
            )
        for seats, room_ids in _by_count(self.seats):
            await _all_rows(tx, "add_seats", room_ids, seats=seats, room_ids=room_ids)
        if self.free_joins:
            await tx.execute("use_free_joins", user_ids=tuple(self.free_joins))
        for amount, user_ids in _by_count(self.charges):
            await _all_rows(tx, "take_coins", user_ids, amount=amount, user_ids=user_ids)
        if self.ledger:
            await tx.execute_many("insert_ledger_entry", self.ledger)
        if self.memberships:
            await tx.execute_many("insert_membership", self.memberships)


async def _all_rows(tx: Transaction, name: str, keys: tuple[Any, ...], **params: Any) -> None:
    """Run a guarded UPDATE that the locked rows say must affect every one of ``keys``."""
    rows, _ = await tx.execute(name, **params)
    if rows != len(keys):  # the decisions and the rows disagree: write none of it
        raise RuntimeError(f"{name} changed {rows} of {len(keys)} rows")


def _by_count(counter: collections.Counter[K]) -> list[tuple[int, tuple[K, ...]]]:
    """``(count, keys)`` for each distinct count: one statement per amount, not per key."""
    groups = collections.defaultdict(list)
    for key, count in counter.items():
        groups[count].append(key)
    return [(count, tuple(sorted(keys))) for count, keys in sorted(groups.items())]
