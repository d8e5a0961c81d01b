"""chat/db/lookup.py: look-ups asked for at the same moment share one query."""

import asyncio
from typing import Any

from chat.db.lookup import BatchedLookup
from unit.fakes import FakeDatabase, run, settle

USERS = [{"user_id": "Alice", "name": "A"}, {"user_id": "bob", "name": "B"}]


def users(query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Like a case-insensitive column: the keys match whatever their case."""
    wanted = {key.lower() for key in params["ids"]}
    return [row for row in USERS if row["user_id"].lower() in wanted]


def test_keys_queued_behind_a_read_share_the_next_one_and_match_as_the_database_does() -> None:
    async def scenario() -> None:
        db = FakeDatabase(users)
        db.gate = asyncio.Event()
        lookup = BatchedLookup(db, "users_among", "ids", "user_id", fold=str.lower, workers=1)
        first = lookup.get("carol")
        await settle()
        rest = [lookup.get(key) for key in ("alice", "ALICE", "Bob", "dave")]
        db.gate.set()
        found = await asyncio.gather(first, *rest)
        assert [row and row["name"] for row in found] == [None, "A", "A", "B", None]
        assert len(db.calls) == 2 and sorted(db.calls[1][1]["ids"]) == [
            "ALICE",
            "Bob",
            "alice",
            "dave",
        ]
        found[1]["name"] = "changed"  # each caller has its own dict
        assert found[2]["name"] == "A"

    run(scenario())


def test_without_fold_keys_match_exactly() -> None:
    async def scenario() -> None:
        lookup = BatchedLookup(FakeDatabase(users), "users_among", "ids", "user_id")
        assert await lookup.get("alice") is None  # the database found Alice; "alice" != "Alice"
        assert (await lookup.get("Alice"))["name"] == "A"

    run(scenario())
