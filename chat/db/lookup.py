"""Look-ups of one row by key that are asked for at the same moment share one query.

A read on its own costs a pool checkout, a round trip and the decoding of
its column definitions, about as much server CPU as the rest of a small
request. Here the keys asked for while a query is running queue, and the
next query takes them all with ``WHERE key IN (...)``: at low load a look-up
is one query as before, under load many share one.
"""

from chat.util.batching import Batcher


class BatchedLookup:
    """``await lookup.get(key)``: the row whose ``column`` is ``key``, or None.

    ``query`` names a read taking the keys as a non-empty tuple in the
    parameter ``param``. ``fold`` gives the form in which the database
    compares keys (``str.lower`` for a case-insensitive column), so the rows
    found are matched back to the keys asked for as the database matched them.
    Every caller gets the row as its own dict.
    """

    def __init__(self, db, query, param, column, fold=None, max_batch=500, workers=2):
        self._db = db
        self._query = query
        self._param = param
        self._column = column
        self._fold = fold or (lambda key: key)
        self._reads = Batcher(self._read, max_batch, workers)

    def get(self, key):
        return self._reads.submit(key)

    async def _read(self, batch):
        keys = tuple({pending.work for pending in batch})
        rows = await self._db.fetch_all(self._query, **{self._param: keys})
        found = {self._fold(row[self._column]): row for row in rows}
        for pending in batch:
            row = found.get(self._fold(pending.work))
            pending.settle(None if row is None else dict(row))
