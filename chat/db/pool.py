"""The data-access layer: a pool of MySQL connections running named queries.

Single statements outside a transaction (reads, and the few writes that stand
alone) run on autocommit connections, so each sees the latest committed data.
Writes that belong together run in ``Database.transaction(name, fn)``: ``fn(tx)`` gets a
``Transaction`` whose statements share one connection and one transaction
(from a second pool, of connections with autocommit off: their first
statement opens the transaction, which saves a ``BEGIN`` round trip),
under READ COMMITTED (no gap locks; every decision in a write transaction rests
on a row lock taken with ``FOR UPDATE`` or a conditional ``UPDATE``). A
deadlock or lock-wait timeout re-runs ``fn`` from the start a few times.
Callbacks given to ``tx.after_commit`` run once the commit has succeeded and
never for a rolled-back attempt.
"""

import asyncio
import logging
import time

import aiomysql
import pymysql

from chat.db.errors import DuplicateKey

log = logging.getLogger("chat.db")

DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205
DUPLICATE_KEY = 1062
RETRYABLE = {DEADLOCK, LOCK_WAIT_TIMEOUT}
ATTEMPTS = 4

SQL_MODE = (
    "'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)


def _raise_duplicate(exc: pymysql.err.IntegrityError) -> None:
    """Raise the driver's duplicate-key error as ``DuplicateKey``; return for any other."""
    if exc.args and exc.args[0] == DUPLICATE_KEY:
        raise DuplicateKey(*exc.args[1:2]) from exc


class _Runner:
    """Runs named queries on one connection."""

    def __init__(self, queries, conn):
        self._queries = queries
        self._conn = conn

    async def _run(self, name, params):
        query = self._queries[name]
        cur = await self._conn.cursor(aiomysql.DictCursor)
        try:
            await cur.execute(query.sql, query.bind(params))
            return cur
        except pymysql.err.IntegrityError as exc:
            await cur.close()
            _raise_duplicate(exc)
            raise
        except BaseException:
            await cur.close()
            raise

    async def fetch_one(self, name, /, **params):
        cur = await self._run(name, params)
        try:
            return await cur.fetchone()
        finally:
            await cur.close()

    async def fetch_all(self, name, /, **params):
        cur = await self._run(name, params)
        try:
            return await cur.fetchall()
        finally:
            await cur.close()

    async def execute(self, name, /, **params):
        """Run a statement; returns (rows affected, last insert id)."""
        cur = await self._run(name, params)
        try:
            return cur.rowcount, cur.lastrowid
        finally:
            await cur.close()

    async def execute_many(self, name, rows):
        """Run an ``INSERT ... VALUES`` for every dict in ``rows``, as one statement."""
        query = self._queries[name]
        cur = await self._conn.cursor()
        try:
            await cur.executemany(query.sql, [query.bind(row) for row in rows])
            return cur.rowcount
        except pymysql.err.IntegrityError as exc:
            _raise_duplicate(exc)
            raise
        finally:
            await cur.close()


class Transaction(_Runner):
    def __init__(self, queries, conn, name):
        super().__init__(queries, conn)
        self.name = name
        self._after_commit = []

    def after_commit(self, callback, *args):
        """Call ``callback(*args)`` once this transaction has committed."""
        self._after_commit.append((callback, args))


class Database:
    def __init__(self, autocommit, transactions, queries):
        self._autocommit = autocommit  # single statements
        self._transactions = transactions
        self.queries = queries

    @classmethod
    async def connect(cls, url, queries, maxsize=20):
        """At most ``maxsize`` connections (and at least two): a quarter for transactions.

        Transactions are few at a time (messages and joins are written in
        batches); reads come with every request.
        """
        writes = max(1, maxsize // 4)
        pools = []
        try:
            for autocommit, size in ((True, max(1, maxsize - writes)), (False, writes)):
                pools.append(
                    await aiomysql.create_pool(
                        host=url.host,
                        port=url.port,
                        user=url.user,
                        password=url.password,
                        db=url.database,
                        charset="utf8mb4",
                        autocommit=autocommit,
                        sql_mode=SQL_MODE,
                        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                        minsize=1,
                        maxsize=size,
                        pool_recycle=3600,
                    )
                )
        except BaseException:
            for pool in pools:
                pool.close()
                await pool.wait_closed()
            raise
        return cls(*pools, queries)

    async def close(self):
        for pool in (self._autocommit, self._transactions):
            pool.close()
            await pool.wait_closed()

    async def _single(self, method, name, params):
        """One statement on an autocommit connection."""
        async with self._autocommit.acquire() as conn:
            return await getattr(_Runner(self.queries, conn), method)(name, **params)

    async def fetch_one(self, name, /, **params):
        return await self._single("fetch_one", name, params)

    async def fetch_all(self, name, /, **params):
        return await self._single("fetch_all", name, params)

    async def execute(self, name, /, **params):
        return await self._single("execute", name, params)

    async def ping(self):
        async with self._autocommit.acquire() as conn:
            await conn.ping(reconnect=False)

    async def transaction(self, name, fn):
        """Run ``await fn(tx)`` in one transaction and return its result."""
        for attempt in range(1, ATTEMPTS + 1):
            started = time.monotonic()
            async with self._transactions.acquire() as conn:
                tx = Transaction(self.queries, conn, name)
                try:
                    result = await fn(tx)
                    await conn.commit()
                except pymysql.err.OperationalError as exc:
                    await _rollback(conn)
                    if exc.args[0] in RETRYABLE and attempt < ATTEMPTS:
                        log.warning("transaction %s: %s, retry %d", name, exc.args[1], attempt)
                        await asyncio.sleep(0.005 * attempt)
                        continue
                    raise
                except BaseException:
                    await _rollback(conn)
                    raise
            log.debug(
                "transaction %s committed in %.1f ms", name, (time.monotonic() - started) * 1000
            )
            for callback, args in tx._after_commit:
                try:
                    callback(*args)
                except Exception:
                    log.exception("after-commit callback of %s failed", name)
            return result
        raise AssertionError("unreachable")


async def _rollback(conn):
    try:
        await conn.rollback()
    except Exception:
        # The connection is broken; closing it keeps it out of the pool.
        conn.close()
