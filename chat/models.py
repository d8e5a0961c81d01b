"""The domain values the actions return: plain, typed, and free of secrets.

Actions build these from database rows (``from_row`` reads only the columns
a value has, so a password hash never gets in) and return them; handlers turn
them into the API's JSON with ``chat.api.views``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

Row = Mapping[str, Any]
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """What anyone signed in may see of a user."""

    user_id: str
    name: str
    is_prime: bool
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Row) -> Profile:
        return cls(row["user_id"], row["name"], bool(row["is_prime"]), row["created_at"])


@dataclasses.dataclass(frozen=True, slots=True)
class Account(Profile):
    """A user as they see themselves."""

    phone: str
    device_id: str
    avail_coins: int
    free_join_used: bool

    @classmethod
    def from_row(cls, row: Row) -> Account:
        return cls(
            row["user_id"],
            row["name"],
            bool(row["is_prime"]),
            row["created_at"],
            row["phone"],
            row["device_id"],
            int(row["avail_coins"]),
            bool(row["free_join_used"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    token: str
    expires_in: int
    user: Account | None
    refresh_token: str = ""
    refresh_expires_in: int = 0
    session_id: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    device_id: str | None
    created_at: datetime.datetime
    last_used_at: datetime.datetime
    current: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    name: str
    owner_id: str
    capacity: int
    members: tuple[str, ...]
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Row, members: Sequence[str]) -> Room:
        return cls(
            row["room_id"],
            row["name"],
            row["owner_id"],
            int(row["capacity"]),
            tuple(members),
            row["created_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Invitation:
    token: str
    room_id: str
    invitee_id: str
    expires_at: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Joined:
    """The outcome of a join: the room, what it cost, and the balance left."""

    room: Room
    charged: int
    avail_coins: int


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    room_id: str
    seq: int
    sender_id: str
    content: str
    client_msg_id: str | None
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Row) -> Message:
        return cls(
            int(row["message_id"]),
            row["room_id"],
            int(row["seq"]),
            row["sender_id"],
            row["content"],
            row["client_msg_id"],
            row["created_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    has_more: bool


@dataclasses.dataclass(frozen=True, slots=True)
class FriendRequest:
    request_id: int
    from_user_id: str
    to_user_id: str
    status: str
    created_at: datetime.datetime
    responded_at: datetime.datetime | None

    @classmethod
    def from_row(cls, row: Row) -> FriendRequest:
        return cls(
            int(row["request_id"]),
            row["from_user_id"],
            row["to_user_id"],
            row["status"],
            row["created_at"],
            row["responded_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: int
    delta: int
    balance_after: int
    reason: str
    room_id: str | None
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Row) -> LedgerEntry:
        return cls(
            int(row["entry_id"]),
            int(row["delta"]),
            int(row["balance_after"]),
            row["reason"],
            row["room_id"],
            row["created_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as the operator lists it: counts rather than members."""

    room_id: str
    name: str
    owner_id: str
    capacity: int
    member_count: int
    last_seq: int
    created_at: datetime.datetime

    @classmethod
    def from_row(cls, row: Row) -> RoomSummary:
        return cls(
            row["room_id"],
            row["name"],
            row["owner_id"],
            int(row["capacity"]),
            int(row["member_count"]),
            int(row["last_seq"]),
            row["created_at"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing paged by key: ``next`` is the key to ask for the following page."""

    items: list[T]
    next: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Ledger:
    user: Account
    entries: Page[LedgerEntry]
