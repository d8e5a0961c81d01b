"""Look-ups of one row by key that are asked for at the same moment share one query.

A read on its own costs a pool checkout, a round trip and the decoding of
its column definitions, about as much server CPU as the rest of a small
request. Here the keys asked for while a query is running queue, and the
next query takes them all with ``WHERE key IN (...)``: at low load a look-up
is one query as before, under load many share one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chat.util.batching import Batcher, Pending

if TYPE_CHECKING:
    import asyncio

    from chat.db.pool import Database, Row


class BatchedLookup:
    """``await lookup.get(key)``: the row whose ``column`` is ``key``, or None.

    ``query`` names a read taking the keys as a non-empty tuple in the
    parameter ``param``. ``fold`` gives the form in which the database
    compares keys (``str.lower`` for a case-insensitive column), so the rows
    found are matched back to the keys asked for as the database matched them.
    Every caller gets the row as its own dict.
    """

    def __init__(
        self,
        db: Database,
        query: str,
        param: str,
        column: str,
        fold: Callable[[Any], Any] | None = None,
        max_batch: int = 500,
        workers: int = 2,
    ) -> None:
        self._db = db
        self._query = query
        self._param = param
        self._column = column
        self._fold = fold or (lambda key: key)
        self._reads: Batcher[Any, Row | None] = Batcher(self._read, max_batch, workers)

    def get(self, key: Any) -> asyncio.Future[Row | None]:
        return self._reads.submit(key)

    async def _read(self, batch: list[Pending[Any, Row | None]]) -> None:
        keys = tuple({pending.work for pending in batch})
        rows = await self._db.fetch_all(self._query, **{self._param: keys})
        found = {self._fold(row[self._column]): row for row in rows}
        for pending in batch:
            row = found.get(self._fold(pending.work))
            pending.settle(None if row is None else dict(row))
