"""The data-access layer: pools of MySQL connections running named queries.

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

Faults are bounded in time, so a client hears ``503`` within about two
seconds whatever the database does:

- opening a connection, and every statement, commit and rollback, has a
  deadline (``timeout``); a statement past it has its connection closed
  (the server then rolls back whatever that connection had not committed);
- waiting for a pooled connection is bounded in time (``acquire_timeout``,
  then ``503 unavailable``) and in length (``503 overloaded`` at once), and
  its queueing delay is measured;
- a connection that fails or times out makes the pool check the database on
  a connection of its own; while that check fails the database is *down*:
  every call fails at once with ``503 unavailable`` (one warning logged, not
  one per request), the check repeats, and when it succeeds the database is
  *up* again (one more warning) with a fresh set of connections;
- when the server refuses new connections (too many), a caller waits (bounded)
  for one the pool already holds.
"""

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiomysql
import pymysql

from chat import errors
from chat.db.errors import DuplicateKey
from chat.util.admission import QueueDelay

# A row as the DictCursor gives it: column name -> value.
Row = dict[str, Any]
T = TypeVar("T")

log = logging.getLogger("chat.db")

DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205
DUPLICATE_KEY = 1062
TOO_MANY_CONNECTIONS = {1040, 1203}
RETRYABLE = {DEADLOCK, LOCK_WAIT_TIMEOUT}
ATTEMPTS = 4
PROBE_EVERY = 0.5

SQL_MODE = (
    "'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)
# Row-lock waits end on the server after a second (a lock held longer is
# a fault, not a queue to join); the statement deadline backs it up.
INIT_COMMAND = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
LOCK_WAIT = "SET SESSION innodb_lock_wait_timeout = 1"


def _raise_duplicate(exc: pymysql.err.IntegrityError) -> None:
    """Raise the driver's duplicate-key error as ``DuplicateKey``; return for any other."""
    if exc.args and exc.args[0] == DUPLICATE_KEY:
        raise DuplicateKey(*exc.args[1:2]) from exc


def is_connection_error(exc: BaseException) -> bool:
    """The connection (not the statement) failed: lost, refused, timed out, closed."""
    if isinstance(exc, pymysql.err.OperationalError):
        return not exc.args or exc.args[0] >= 2000 or exc.args[0] in TOO_MANY_CONNECTIONS
    return isinstance(exc, pymysql.err.InterfaceError | OSError | TimeoutError)


class _Runner:
    """Runs named queries on one connection, each within the pool's deadline."""

    committed = False  # a Transaction's, after commit_with: no statement may follow

    def __init__(self, queries: Any, conn: Any, pool: "_Pool") -> None:
        self._queries = queries
        self._conn = conn
        self._pool = pool

    async def _run(self, name: str, params: dict) -> Any:
        self._check_open()
        query = self._queries[name]
        cur = await self._conn.cursor(aiomysql.DictCursor)
        try:
            await self._pool.bounded(self._conn, cur.execute(query.sql, query.bind(params)))
            return cur
        except pymysql.err.IntegrityError as exc:
            await cur.close()
            _raise_duplicate(exc)
            raise
        except BaseException:
            await cur.close()
            raise

    def _check_open(self) -> None:
        if self.committed:
            raise RuntimeError("a statement after the transaction's commit_with")

    async def fetch_one(self, name: str, /, **params: Any) -> Row | None:
        cur = await self._run(name, params)
        try:
            return await cur.fetchone()
        finally:
            await cur.close()

    async def fetch_all(self, name: str, /, **params: Any) -> list[Row]:
        cur = await self._run(name, params)
        try:
            return await cur.fetchall()
        finally:
            await cur.close()

    async def execute(self, name: str, /, **params: Any) -> tuple[int, int]:
        """Run a statement; returns (rows affected, last insert id)."""
        cur = await self._run(name, params)
        try:
            return cur.rowcount, cur.lastrowid
        finally:
            await cur.close()

    def statement(self, name: str, /, **params: Any) -> "Statements":
        """A named query with its parameters, rendered for ``together``."""
        query = self._queries[name]
        return Statements([query.sql % self._escape(query.bind(params))])

    def insert_rows(self, name: str, rows: list[dict]) -> "Statements":
        """``INSERT ... VALUES (...) RETURNING ...`` for every dict of ``rows``, for ``together``.

        The query's VALUES row is repeated once per dict, so a batch is one
        statement (one round trip instead of an insert and a read-back), or
        several when it would pass MAX_STATEMENT characters; ``together``
        gives back the rows every one of them returns.
        """
        query = self._queries[name]
        prefix, values, postfix = _returning_parts(query)
        rendered = [values % self._escape(query.bind(row)) for row in rows]
        return Statements(_statements(prefix, rendered, postfix))

    def _escape(self, params: Mapping[str, Any]) -> dict[str, str]:
        return {key: self._conn.escape(value) for key, value in params.items()}

    async def together(self, *statements: "Statements") -> list[list[Row]]:
        """Run ``statements`` in order, in as few round trips as MAX_STATEMENT allows.

        The database runs them one after the other, as if each were sent
        alone, and stops at the first that fails (its error is raised).
        Returns the rows of each (``[]`` for a statement that returns none).
        """
        return await self._together(statements, commit=False)

    async def _together(
        self, statements: tuple["Statements", ...], commit: bool
    ) -> list[list[Row]]:
        self._check_open()
        texts = [text for s in statements for text in s.texts]
        trips = _statements("", texts + ["COMMIT"] if commit else texts, "", ";\n")
        results: list[list[Row]] = []
        cur = await self._conn.cursor(aiomysql.DictCursor)
        try:
            for trip in trips:
                await self._pool.bounded(self._conn, _read_results(cur, trip, results))
        except pymysql.err.IntegrityError as exc:
            _raise_duplicate(exc)
            raise
        finally:
            await cur.close()
        rows: list[list[Row]] = []
        for s in statements:  # a Statements of several inserts returns their rows as one list
            rows.append([row for result in results[: len(s.texts)] for row in result])
            del results[: len(s.texts)]
        return rows

    async def execute_many(self, name: str, rows: list[dict]) -> int:
        """Run an ``INSERT ... VALUES`` for every dict in ``rows``, as one statement."""
        self._check_open()
        query = self._queries[name]
        cur = await self._conn.cursor()
        try:
            await self._pool.bounded(
                self._conn, cur.executemany(query.sql, [query.bind(row) for row in rows])
            )
            return cur.rowcount
        except pymysql.err.IntegrityError as exc:
            _raise_duplicate(exc)
            raise
        finally:
            await cur.close()


# The longest statement, or round trip of statements, that together sends,
# in characters: at 4 bytes each, well under MariaDB's default
# max_allowed_packet (16 MiB).
MAX_STATEMENT = 1_000_000

_RETURNING = re.compile(
    r"^(?P<prefix>.*?\bVALUES\s*)(?P<values>\(.*?\))(?P<postfix>\s*RETURNING\b.*?);?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _returning_parts(query: Any) -> tuple[str, str, str]:
    """``INSERT ... VALUES`` / ``(...)`` / ``RETURNING ...`` of a query (a loud error if not)."""
    match = _RETURNING.match(query.sql)
    if match is None:
        raise ValueError(f"{query.name} is not INSERT ... VALUES (...) RETURNING ...")
    return match["prefix"], match["values"], match["postfix"]


def _statements(prefix: str, parts: list[str], postfix: str, sep: str = ",") -> list[str]:
    """``parts`` joined by ``sep`` into as few texts as MAX_STATEMENT allows.

    VALUES rows into INSERT statements, or statements into round trips.
    """
    texts: list[str] = []
    current: list[str] = []
    size = len(prefix) + len(postfix)
    for part in parts:
        if current and size + len(part) + len(sep) > MAX_STATEMENT:
            texts.append(prefix + sep.join(current) + postfix)
            current, size = [], len(prefix) + len(postfix)
        current.append(part)
        size += len(part) + len(sep)
    if current:
        texts.append(prefix + sep.join(current) + postfix)
    return texts


async def _read_results(cur: Any, sql: str, results: list[list[Row]]) -> None:
    """Run ``sql`` (statements separated by ';') and add each one's rows to ``results``."""
    await cur.execute(sql)
    results.append(list(await cur.fetchall()))
    while await cur.nextset():
        results.append(list(await cur.fetchall()))


class Statements:
    """Rendered statements (``_Runner.statement``, ``insert_rows``) for ``together``."""

    __slots__ = ("texts",)

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts


class Transaction(_Runner):
    def __init__(self, queries: Any, conn: Any, pool: "_Pool", name: str) -> None:
        super().__init__(queries, conn, pool)
        self.name = name
        self._after_commit: list[tuple[Callable, tuple]] = []

    async def commit_with(self, *statements: Statements) -> list[list[Row]]:
        """``together``, with the commit in the same round trip: the transaction's last call.

        Saves the commit's own round trip. A failing statement stops the
        rest, the commit included, and ``Database.transaction`` rolls back.
        """
        rows = await self._together(statements, commit=True)
        self.committed = True
        return rows

    def after_commit(self, callback: Callable, *args: Any) -> None:
        """Call ``callback(*args)`` once this transaction has committed."""
        self._after_commit.append((callback, args))


class _Health:
    """Whether the database answers; checked on a connection of its own when in doubt."""

    def __init__(self, url: Any, connect: Callable[[], Awaitable[Any]], timeout: float) -> None:
        self._url = url
        self._connect = connect
        self._timeout = timeout
        self.up = True
        self.outages = 0  # times the database went away
        self.failures = 0  # calls answered 503 unavailable
        self._probe: asyncio.Task | None = None
        self.on_down: list[Callable[[], None]] = []
        self.on_up: list[Callable[[], None]] = []
        self.watchers: set[asyncio.Future] = set()  # resolved when the database goes down

    def check(self) -> None:
        """Raise ``Unavailable`` at once while the database is down."""
        if not self.up:
            self.failures += 1
            raise errors.Unavailable("The database is unavailable; try again shortly.")

    def suspect(self) -> None:
        """A connection failed: find out, on a connection of our own, whether the database did."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._check_until_up())

    async def _answers(self) -> str | None:
        """None when the database answers; else why not."""
        try:
            conn = await asyncio.wait_for(self._connect(), self._timeout)
        except Exception as exc:
            if isinstance(exc, pymysql.err.OperationalError) and exc.args:
                if exc.args[0] in TOO_MANY_CONNECTIONS:
                    return None  # it answers; it is only full
            return _describe(exc)
        try:
            await asyncio.wait_for(conn.ping(reconnect=False), self._timeout)
            return None
        except Exception as exc:
            return _describe(exc)
        finally:
            conn.close()

    async def _check_until_up(self) -> None:
        while True:
            why = await self._answers()
            if why is None:
                if not self.up:
                    self.up = True
                    log.warning("database %r answers again", self._url)
                    for callback in self.on_up:
                        callback()
                return
            if self.up:
                self.up = False
                self.outages += 1
                log.warning(
                    "database %r does not answer (%s): answering 503 until it does",
                    self._url,
                    why,
                )
                for callback in self.on_down:
                    callback()
                for watcher in self.watchers:
                    if not watcher.done():
                        watcher.set_result(None)
            await asyncio.sleep(PROBE_EVERY)

    def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()


def _close_if_connected(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) > 1:
        return f"{exc.args[0]}: {exc.args[1]}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


class _Waiter:
    __slots__ = ("future", "arrived", "timer")

    def __init__(self, future: asyncio.Future, arrived: float, timer: asyncio.TimerHandle) -> None:
        self.future = future
        self.arrived = arrived
        self.timer = timer


class _Pool:
    """At most ``maxsize`` connections; a bounded, measured wait for one when all are busy."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], Awaitable[Any]],
        maxsize: int,
        timeout: float,
        acquire_timeout: float,
        delay: QueueDelay,
        health: _Health,
        max_waiters: int,
    ) -> None:
        self.name = name
        self._connect = connect
        self.maxsize = maxsize
        self._timeout = timeout
        self._acquire_timeout = acquire_timeout
        self.delay = delay
        self._health = health
        self._max_waiters = max_waiters
        self._free: collections.deque = collections.deque()
        self._used: set = set()
        self._opening = 0
        self._full_until = 0.0  # the server refused a connection as too many until then
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._closed = False
        self.timeouts = 0

    @property
    def size(self) -> int:
        return len(self._free) + len(self._used) + self._opening

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> Any:
        self._health.check()
        if self._closed:
            raise errors.Unavailable("The server is shutting down.")
        while self._free:
            conn = self._free.pop()  # the most recently used: warm, and the others may idle out
            if conn.closed:
                continue
            self._used.add(conn)
            self.delay.started(0.0)
            return conn
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.size < self.maxsize and now >= self._full_until:
            return await self._open()
        # The wait is bounded in time (acquire_timeout) and in length; its
        # delay is measured (``delay``) but refuses nothing by itself: reads
        # are batched upstream, and one refused batch would fail many callers.
        if len(self._waiters) >= self._max_waiters:
            self.delay.refuse()
            raise errors.Overloaded()
        future = loop.create_future()
        timer = loop.call_later(self._acquire_timeout, self._expire, future)
        waiter = _Waiter(future, now, timer)
        self._waiters.append(waiter)
        try:
            conn = await future
        except asyncio.CancelledError:
            self._drop_waiter(waiter)
            if future.done() and not future.cancelled() and future.exception() is None:
                # Handed a connection (or a slot) just as we were cancelled: pass it on.
                if future.result() is None:
                    self._hand_on_slot()
                else:
                    self.release(future.result())
            raise
        finally:
            timer.cancel()
        self.delay.started(loop.time() - now)
        if conn is None:  # a slot freed up: open a connection of our own
            return await self._open()
        return conn  # release() left it among the used ones

    def _drop_waiter(self, waiter: _Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _expire(self, future: asyncio.Future) -> None:
        if not future.done():
            self.timeouts += 1
            future.set_exception(errors.Unavailable("No database connection became free in time."))
        self._waiters = collections.deque(w for w in self._waiters if not w.future.done())

    async def _open(self) -> Any:
        self._opening += 1
        try:
            conn = await self._connect_unless_down()
        except Exception as exc:
            self._opening -= 1
            if (
                isinstance(exc, pymysql.err.OperationalError)
                and exc.args
                and exc.args[0] in TOO_MANY_CONNECTIONS
                and self.size > 0
            ):
                # Wait (bounded) for one of the connections already held.
                self._full_until = asyncio.get_running_loop().time() + 1.0
                log.info("database refused a connection (%s); waiting for a pooled one", exc)
                return await self.acquire()
            self._hand_on_slot()
            self._health.suspect()
            log.debug("opening a connection failed: %s", exc)
            raise errors.Unavailable("The database is unavailable; try again shortly.") from None
        self._opening -= 1
        if self._closed:
            conn.close()
            raise errors.Unavailable("The server is shutting down.")
        self._used.add(conn)
        return conn

    async def _connect_unless_down(self) -> Any:
        """A new connection; fails at the deadline, or as soon as the database is found down."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self._connect())
        gone = loop.create_future()
        self._health.watchers.add(gone)
        try:
            await asyncio.wait({task, gone}, timeout=self._timeout, return_when="FIRST_COMPLETED")
        finally:
            self._health.watchers.discard(gone)
            if not gone.done():
                gone.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(_close_if_connected)
            raise TimeoutError()
        return task.result()

    def release(self, conn: Any, broken: bool = False) -> None:
        if broken or conn.closed or conn.get_transaction_status() or self._closed:
            self._used.discard(conn)
            conn.close()
            self._hand_on_slot()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(conn)  # stays among the used ones
                return
        self._used.discard(conn)
        self._free.append(conn)

    def _hand_on_slot(self) -> None:
        """A connection closed: the first waiter may open one in its place."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                return

    def fail_waiters(self) -> None:
        """The database went away: no one waits for it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(
                    errors.Unavailable("The database is unavailable; try again shortly.")
                )

    def discard_idle(self) -> None:
        """Close every idle connection (they may all be dead after an outage)."""
        while self._free:
            self._free.pop().close()

    async def bounded(self, conn: Any, operation: Awaitable[Any]) -> Any:
        """Await ``operation`` on ``conn``; past the deadline, close ``conn`` and fail."""
        loop = asyncio.get_running_loop()
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            conn.close()  # the pending read fails; the server rolls back what is open

        timer: asyncio.TimerHandle

        def overdue() -> None:
            # Slow: find out now (on a connection of our own) whether the
            # database still answers, so that when it does not, every call
            # fails by the time this one's deadline comes.
            nonlocal timer
            self._health.suspect()
            timer = loop.call_later(self._timeout * 2 / 3, expire)

        timer = loop.call_later(self._timeout / 3, overdue)
        try:
            return await operation
        except Exception as exc:
            if expired or is_connection_error(exc):
                self._health.suspect()
                why = "timed out" if expired else "lost its connection"
                log.debug("a statement on the %s pool %s: %s", self.name, why, exc)
                raise errors.Unavailable("The database did not answer in time.") from None
            raise
        finally:
            timer.cancel()

    def running(self) -> list:
        return list(self._used)

    def close(self) -> None:
        self._closed = True
        self.discard_idle()
        self.fail_waiters()


class Database:
    def __init__(
        self, autocommit: _Pool, transactions: _Pool, queries: Any, health: _Health
    ) -> None:
        # Single statements (reads, and the few writes that stand alone) run on
        # autocommit connections; transactions on connections of their own.
        self._autocommit = autocommit
        self._transactions = transactions
        self.queries = queries
        self.health = health
        health.on_down.append(self._on_down)
        health.on_up.append(self._on_up)

    @classmethod
    async def connect(
        cls,
        url: Any,
        queries: Any,
        maxsize: int = 20,
        timeout: float = 1.5,
        acquire_timeout: float = 0.5,
        queue_target: float = 0.1,
    ) -> "Database":
        """At most ``maxsize`` connections (and at least two): half for transactions.

        Transactions are few at a time (messages and joins are written in
        batches), but a writer's lane may hold its connection while a lock
        is waited for: the message and join writers' lanes alone can hold
        eight. Reads come with every request and are short. One connection
        of each kind is opened now, so a wrong URL or password fails at
        start-up.
        """

        def opener(autocommit: bool) -> Callable[[], Awaitable[Any]]:
            async def connect() -> Any:
                conn = await aiomysql.connect(
                    host=url.host,
                    port=url.port,
                    user=url.user,
                    password=url.password,
                    db=url.database,
                    charset="utf8mb4",
                    autocommit=autocommit,
                    sql_mode=SQL_MODE,
                    init_command=INIT_COMMAND,
                    connect_timeout=timeout,
                )
                try:
                    await conn.query(LOCK_WAIT)
                except BaseException:
                    conn.close()
                    raise
                return conn

            return connect

        # The check (started a third into a slow call) ends before that call's deadline.
        health = _Health(url, opener(True), timeout / 2)
        writes_size = max(1, maxsize // 2)
        pools = []
        for name, autocommit, size in (
            ("reads", True, max(1, maxsize - writes_size)),
            ("writes", False, writes_size),
        ):
            pool = _Pool(
                name,
                opener(autocommit),
                size,
                timeout,
                acquire_timeout,
                QueueDelay(queue_target),
                health,
                max_waiters=1024,
            )
            pools.append(pool)
        db = cls(pools[0], pools[1], queries, health)
        for pool in pools:
            try:
                conn = await asyncio.wait_for(pool._connect(), timeout)
            except Exception:
                await db.close()
                raise
            pool._free.append(conn)
        return db

    @classmethod
    async def open(cls, settings: Any, queries: Any) -> "Database":
        """``connect`` with the sizes and deadlines of ``settings``."""
        return await cls.connect(
            settings.database,
            queries,
            maxsize=settings.db_pool_size,
            timeout=settings.db_timeout,
            acquire_timeout=settings.db_acquire_timeout,
            queue_target=settings.queue_delay_ms / 1000,
        )

    def _on_down(self) -> None:
        for pool in (self._autocommit, self._transactions):
            pool.fail_waiters()
            pool.discard_idle()
            for conn in pool.running():
                conn.close()  # its call fails now rather than at its own deadline

    def _on_up(self) -> None:
        for pool in (self._autocommit, self._transactions):
            pool.discard_idle()

    @property
    def pools(self) -> tuple[_Pool, _Pool]:
        return self._autocommit, self._transactions

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """Connections lent out, callers waiting, and the most, of each pool (for metrics)."""
        return {
            pool.name: {"in_use": len(pool._used), "waiting": pool.waiting, "max": pool.maxsize}
            for pool in self.pools
        }

    async def close(self) -> None:
        self.health.close()
        idle: list[Any] = []
        for pool in (self._autocommit, self._transactions):
            idle.extend(pool._free)
            pool._free.clear()
            pool.close()
        # Say goodbye (COM_QUIT) to the server; a silent one is closed at once.
        await asyncio.gather(
            *(asyncio.wait_for(conn.ensure_closed(), 0.5) for conn in idle),
            return_exceptions=True,
        )
        for conn in idle:
            conn.close()
        await asyncio.sleep(0)  # the transports finish closing

    def abort_running(self) -> list[int]:
        """Close every connection in use (their transactions roll back); their thread ids."""
        ids = []
        for pool in (self._autocommit, self._transactions):
            for conn in pool.running():
                try:
                    ids.append(conn.thread_id())
                except Exception:
                    pass
                conn.close()
        return ids

    async def _single(self, method: str, name: str, params: dict) -> Any:
        """One statement on an autocommit connection."""
        pool = self._autocommit
        conn = await pool.acquire()
        broken = True
        try:
            result = await getattr(_Runner(self.queries, conn, pool), method)(name, **params)
            broken = False
            return result
        except pymysql.err.MySQLError as exc:
            broken = is_connection_error(exc)
            raise
        finally:
            pool.release(conn, broken)

    async def fetch_one(self, name: str, /, **params: Any) -> Row | None:
        return await self._single("fetch_one", name, params)

    async def fetch_all(self, name: str, /, **params: Any) -> list[Row]:
        return await self._single("fetch_all", name, params)

    async def execute(self, name: str, /, **params: Any) -> tuple[int, int]:
        return await self._single("execute", name, params)

    async def ping(self) -> None:
        """Return once the database answers; ``Unavailable`` if it does not in time."""
        pool = self._autocommit
        conn = await pool.acquire()
        broken = True
        try:
            await pool.bounded(conn, conn.ping(reconnect=False))
            broken = False
        finally:
            pool.release(conn, broken)

    async def transaction(self, name: str, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``await fn(tx)`` in one transaction and return its result."""
        pool = self._transactions
        for attempt in range(1, ATTEMPTS + 1):
            started = time.monotonic()
            conn = await pool.acquire()
            tx = Transaction(self.queries, conn, pool, name)
            broken = True
            try:
                result = await fn(tx)
                if not tx.committed:
                    await pool.bounded(conn, conn.commit())
                broken = False
            except pymysql.err.OperationalError as exc:
                broken = not await _rollback(pool, conn)
                if exc.args and exc.args[0] in RETRYABLE:
                    if attempt < ATTEMPTS:
                        log.info("transaction %s: %s, retry %d", name, exc.args[1], attempt)
                        await asyncio.sleep(0.005 * attempt)
                        continue
                    raise errors.Unavailable("The data is busy; try again shortly.") from None
                raise
            except BaseException:
                broken = not await _rollback(pool, conn)
                raise
            finally:
                pool.release(conn, broken)
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


async def _rollback(pool: _Pool, conn: Any) -> bool:
    """Roll back; False when the connection is broken (the caller closes it)."""
    if conn.closed:
        return False
    try:
        await pool.bounded(conn, conn.rollback())
        return True
    except Exception:
        return False
