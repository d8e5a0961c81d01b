"""The operator's read-only views: users (listed or searched), a user's ledger, rooms.

Each listing is paged by key: ``after`` is the last key of the previous page
(a userId, a ledger entryId, a roomId) and ``next`` in the answer is the key
to ask with for the following page, or None on the last one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chat import errors
from chat.models import Account, Ledger, LedgerEntry, Page, RoomSummary

if TYPE_CHECKING:
    from chat.context import Context

DEFAULT_LIMIT = 50


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _page(rows: list[dict[str, Any]], limit: int, key: str) -> tuple[list[dict[str, Any]], Any]:
    """The rows to show, and the cursor of the next page (None on the last one)."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, rows[-1][key]
    return rows, None


async def list_users(
    ctx: Context, *, query: str | None = None, after: str = "", limit: int = DEFAULT_LIMIT
) -> Page[Account]:
    """Users in userId order; with ``query``, those whose userId or phone starts with
    it or whose name contains it (without regard to case)."""
    if query:
        escaped = _like_escape(query)
        rows = await ctx.db.fetch_all(
            "admin_search_users",
            after=after,
            # userIds and phones are ASCII columns: text beyond ASCII matches neither
            # (and MariaDB refuses to compare them with it); "" matches no row.
            prefix=escaped + "%" if query.isascii() else "",
            pattern="%" + escaped + "%",
            limit=limit + 1,
        )
    else:
        rows = await ctx.db.fetch_all("admin_list_users", after=after, limit=limit + 1)
    shown, following = _page(list(rows), limit, "user_id")
    return Page([Account.from_row(row) for row in shown], following)


async def user_ledger(
    ctx: Context, *, user_id: str, after: int = 0, limit: int = DEFAULT_LIMIT
) -> Ledger:
    """The account and its coin ledger, oldest entry first."""
    user = await ctx.db.fetch_one("get_profile", user_id=user_id)
    if user is None:
        raise errors.NotFound("No such user.")
    rows = await ctx.db.fetch_all(
        "admin_user_ledger", user_id=user_id, after=after, limit=limit + 1
    )
    shown, following = _page(list(rows), limit, "entry_id")
    entries = [LedgerEntry.from_row(row) for row in shown]
    return Ledger(Account.from_row(user), Page(entries, following))


async def list_rooms(
    ctx: Context, *, after: str = "", limit: int = DEFAULT_LIMIT
) -> Page[RoomSummary]:
    """Every room in roomId order, with its member count and latest message seq."""
    rows = await ctx.db.fetch_all("admin_list_rooms", after=after, limit=limit + 1)
    shown, following = _page(list(rows), limit, "room_id")
    return Page([RoomSummary.from_row(row) for row in shown], following)
