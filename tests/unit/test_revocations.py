"""chat/auth/revocations.py: logouts remembered, database answers cached only while sound."""

import asyncio
from typing import Any

from chat.auth.revocations import Revocations
from unit.fakes import FakeBroker, FakeClock, FakeDatabase, run, settle

MAX_AGE = 30.0
TOKEN_TTL = 3600.0


class Setup:
    """Revocations over a fake database holding ``revoked`` (session ids) and a fake broker.

    The database answers which sessions are live (``live_among``): any id not
    revoked here is live.
    """

    def __init__(self, size: int = 100000, max_age: float = MAX_AGE) -> None:
        self.revoked: set[str] = set()
        self.db = FakeDatabase(self._answer)
        self.broker = FakeBroker()
        self.clock = FakeClock()
        self.revocations = Revocations(
            self.db, self.broker, max_age, TOKEN_TTL, size=size, clock=self.clock
        )  # type: ignore[arg-type]

    def _answer(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert query == "live_among"
        return [{"jti": jti} for jti in params["jtis"] if jti not in self.revoked]

    async def check(self, jti: str) -> bool:
        return await self.revocations.is_revoked({"jti": "token-" + jti, "sid": jti})

    @property
    def reads(self) -> int:
        return len(self.db.calls)


def test_a_logout_heard_of_is_known_without_a_read() -> None:
    async def scenario() -> None:
        s = Setup()
        s.broker.revoke("t1")
        assert await s.check("t1")
        assert s.revocations.known_revoked("t1") and not s.revocations.known_revoked("t2")
        assert s.reads == 0

    run(scenario())


def test_a_clean_answer_is_remembered_for_max_age() -> None:
    async def scenario() -> None:
        s = Setup()
        assert not await s.check("t1")
        assert not await s.check("t1")
        assert s.reads == 1
        s.clock.advance(MAX_AGE)
        assert not await s.check("t1")
        assert s.reads == 2

    run(scenario())


def test_a_revocation_found_in_the_database_is_remembered() -> None:
    async def scenario() -> None:
        s = Setup()
        s.revoked.add("t1")
        assert await s.check("t1")
        s.clock.advance(TOKEN_TTL - 1)
        assert await s.check("t1")
        assert s.reads == 1

    run(scenario())


def test_a_logout_after_a_clean_answer_wins() -> None:
    async def scenario() -> None:
        s = Setup()
        assert not await s.check("t1")
        s.broker.revoke("t1")
        assert await s.check("t1")

    run(scenario())


def test_an_outage_of_the_broker_drops_every_clean_answer() -> None:
    async def scenario() -> None:
        s = Setup()
        assert not await s.check("t1")
        s.broker.lose_connection()  # a logout may have been lost meanwhile
        s.revoked.add("t1")
        assert await s.check("t1")
        assert s.reads == 2

    run(scenario())


def test_no_clean_answer_is_kept_while_the_broker_is_unhealthy() -> None:
    async def scenario() -> None:
        s = Setup()
        s.broker.healthy = False
        assert not await s.check("t1")
        assert not await s.check("t1")
        assert s.reads == 2

    run(scenario())


def test_a_logout_or_an_outage_during_the_read_keeps_its_answer_out_of_memory() -> None:
    async def scenario() -> None:
        for during in ("logout elsewhere", "outage"):
            s = Setup()
            s.db.gate = asyncio.Event()
            reading = asyncio.ensure_future(s.check("t1"))
            await settle()
            if during == "outage":
                s.broker.lose_connection()
                # Another check notices the outage first, while t1's read is in flight.
                other = asyncio.ensure_future(s.check("t2"))
                await settle()
            else:
                s.broker.revoke("t9")
            s.db.gate.set()
            assert not await reading
            if during == "outage":
                assert not await other
            s.db.gate = None
            reads = s.reads
            assert not await s.check("t1")
            assert s.reads == reads + 1, during

    run(scenario())


def test_first_checks_at_the_same_moment_share_one_read() -> None:
    async def scenario() -> None:
        s = Setup()
        s.revoked.add("t2")
        s.db.gate = asyncio.Event()
        first = asyncio.ensure_future(s.check("t0"))
        await settle()  # a read for t0 is in flight; the next ones queue behind it
        rest = [asyncio.ensure_future(s.check(f"t{n}")) for n in range(1, 4)]
        await settle()
        s.db.gate.set()
        assert await asyncio.gather(first, *rest) == [False, False, True, False]
        assert s.reads == 2 and sorted(s.db.calls[1][1]["jtis"]) == ["t1", "t2", "t3"]

    run(scenario())


def test_the_memory_of_revocations_is_bounded() -> None:
    async def scenario() -> None:
        s = Setup(size=2)
        assert not await s.check("t1")  # a clean answer, before t1's logout
        s.revoked.update({"t1", "t2", "t3"})
        for jti in ("t1", "t2", "t3"):
            s.broker.revoke(jti)
        assert not s.revocations.known_revoked("t1")
        # Forgotten, t1 is read again (its clean answer went with the logout): revoked.
        assert await s.check("t1")
        assert s.reads == 2

    run(scenario())


def test_subscribers_hear_every_revocation_and_a_failing_one_stops_nobody() -> None:
    async def scenario() -> None:
        s = Setup()
        heard: list[str] = []

        def failing(jti: str) -> None:
            raise RuntimeError("listener bug")

        s.revocations.subscribe(failing)
        s.revocations.subscribe(heard.append)
        s.broker.revoke("t1")
        assert heard == ["t1"]

    run(scenario())


def test_recheck_finds_watched_tokens_revoked_behind_the_brokers_back() -> None:
    async def scenario() -> None:
        s = Setup()
        heard: list[str] = []
        s.revocations.subscribe(heard.append)
        s.revocations.watch("t1")
        s.revocations.watch("t2")
        s.revoked.add("t2")  # a logout whose broadcast was lost
        await s.revocations.recheck()
        assert heard == ["t2"] and s.revocations.known_revoked("t2")
        assert sorted(s.db.calls[-1][1]["jtis"]) == ["t1", "t2"]
        s.revocations.stop()

    run(scenario())


def test_recheck_survives_a_failed_read() -> None:
    async def scenario() -> None:
        s = Setup()
        s.revocations.watch("t1")
        s.db.fail = RuntimeError("database gone")
        await s.revocations.recheck()  # logged, not raised
        s.db.fail = None
        s.revoked.add("t1")
        await s.revocations.recheck()
        assert s.revocations.known_revoked("t1")
        s.revocations.stop()

    run(scenario())


def test_rechecking_runs_while_a_token_is_watched_and_stops_after() -> None:
    async def scenario() -> None:
        s = Setup(max_age=0)  # re-check at every turn of the loop
        tasks = asyncio.all_tasks()
        s.revocations.watch("t1")
        s.revocations.watch("t1")
        await settle()
        assert s.reads > 0
        s.revocations.unwatch("t1")  # still watched once
        before = s.reads
        await settle()
        assert s.reads > before
        s.revocations.unwatch("t1")
        await settle()
        stopped = s.reads
        await settle()
        assert s.reads == stopped
        assert asyncio.all_tasks() == tasks  # the re-checking task is gone

    run(scenario())


def test_sweep_deletes_the_expired_revocations() -> None:
    async def scenario() -> None:
        s = Setup()
        await s.revocations.sweep()
        assert [query for query, _ in s.db.calls] == ["delete_expired_revocations"]

    run(scenario())
