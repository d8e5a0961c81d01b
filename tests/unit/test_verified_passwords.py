"""chat/auth/passwords.py VerifiedPasswords: a room password that matched is not re-hashed."""

import asyncio

import pytest

from chat.auth.passwords import VerifiedPasswords, admin_key_matches
from unit.fakes import FakeHasher, run, settle


class Loads:
    """A ``load_hash`` for one room whose password is ``password``, counting its calls."""

    def __init__(self, password: str) -> None:
        self.hash = "hash:" + password
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        return self.hash


def test_a_matching_password_is_checked_once_then_remembered() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        known = VerifiedPasswords(hasher)
        load = Loads("open sesame")
        assert await known.verify("room-1", "open sesame", load)
        assert await known.verify("room-1", "open sesame", load)
        assert (hasher.checks, load.count) == (1, 1)

    run(scenario())


def test_a_wrong_password_is_never_remembered() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        known = VerifiedPasswords(hasher)
        load = Loads("open sesame")
        for _ in range(3):
            assert not await known.verify("room-1", "guess", load)
        assert hasher.checks == 3

    run(scenario())


def test_the_memory_is_per_room_and_password() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        known = VerifiedPasswords(hasher)
        known.remember("room-1", "open sesame")
        assert await known.verify("room-1", "open sesame", Loads("open sesame"))
        assert hasher.checks == 0  # remembered at creation: no bcrypt at all
        assert not await known.verify("room-2", "open sesame", Loads("other"))
        assert not await known.verify("room-1", "open sesame!", Loads("open sesame"))
        assert hasher.checks == 2

    run(scenario())


def test_concurrent_checks_of_one_pair_share_one_hash() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        hasher.gate = asyncio.Event()
        known = VerifiedPasswords(hasher)
        load = Loads("pw")
        right = [asyncio.ensure_future(known.verify("r", "pw", load)) for _ in range(5)]
        wrong = [asyncio.ensure_future(known.verify("r", "nope", load)) for _ in range(5)]
        await settle()
        hasher.gate.set()
        assert await asyncio.gather(*right) == [True] * 5
        assert await asyncio.gather(*wrong) == [False] * 5
        assert hasher.checks == 2

    run(scenario())


def test_one_caller_giving_up_does_not_cancel_the_others() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        hasher.gate = asyncio.Event()
        known = VerifiedPasswords(hasher)
        load = Loads("pw")
        impatient = asyncio.ensure_future(known.verify("r", "pw", load))
        patient = asyncio.ensure_future(known.verify("r", "pw", load))
        await settle()
        impatient.cancel()
        await settle()
        hasher.gate.set()
        assert await patient
        assert impatient.cancelled() and hasher.checks == 1

    run(scenario())


def test_a_failed_check_reaches_every_waiter_and_the_next_one_tries_again() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        hasher.gate = asyncio.Event()
        hasher.fail = RuntimeError("pool closed")
        known = VerifiedPasswords(hasher)
        load = Loads("pw")
        waiting = [asyncio.ensure_future(known.verify("r", "pw", load)) for _ in range(2)]
        await settle()
        hasher.gate.set()
        for future in waiting:
            with pytest.raises(RuntimeError, match="pool closed"):
                await future
        hasher.fail = None
        assert await known.verify("r", "pw", load)
        assert hasher.checks == 2

    run(scenario())


def test_the_memory_is_bounded() -> None:
    async def scenario() -> None:
        hasher = FakeHasher()
        known = VerifiedPasswords(hasher, size=1)
        known.remember("room-1", "pw1")
        known.remember("room-2", "pw2")  # room-1's pair is forgotten
        assert await known.verify("room-2", "pw2", Loads("pw2"))
        assert hasher.checks == 0
        assert await known.verify("room-1", "pw1", Loads("pw1"))
        assert hasher.checks == 1

    run(scenario())


def test_admin_key_matches_only_a_configured_equal_key() -> None:
    assert admin_key_matches("k" * 16, "k" * 16)
    assert not admin_key_matches("k" * 16, "j" * 16)
    assert not admin_key_matches("", "")  # no key configured: nothing matches
