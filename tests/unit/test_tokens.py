"""chat/auth/tokens.py: login tokens are checked once, then their claims remembered."""

import time
import types

import jwt
import pytest

from chat.auth import tokens
from chat.auth.tokens import TokenIssuer

SECRET = "unit-secret-" + "x" * 52


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature was checked (jwt.decode called)."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens.jwt, "decode", counting)
    return seen


def test_an_issued_token_verifies_to_its_claims() -> None:
    issuer = TokenIssuer(SECRET, ttl=3600)
    token, claims = issuer.issue("Alice", "s1", device_id="dev-1")
    assert claims["sub"] == "Alice" and claims["did"] == "dev-1"
    assert claims["exp"] - claims["iat"] == 3600
    assert issuer.verify(token) == claims
    other, other_claims = issuer.issue("Alice", "s1")
    assert other_claims["jti"] != claims["jti"] and "did" not in other_claims


def test_a_token_is_decoded_once_then_answered_from_memory(decodes: list[str]) -> None:
    issuer = TokenIssuer(SECRET, ttl=3600)
    token, claims = issuer.issue("alice", "s1")
    assert issuer.verify(token) == claims
    assert issuer.verify(token) == claims
    assert decodes == [token]


def test_a_remembered_token_still_expires(
    monkeypatch: pytest.MonkeyPatch, decodes: list[str]
) -> None:
    issuer = TokenIssuer(SECRET, ttl=60)
    token, claims = issuer.issue("alice", "s1")
    assert issuer.verify(token) == claims
    offset = [61.0]
    monkeypatch.setattr(tokens, "time", types.SimpleNamespace(time=lambda: time.time() + offset[0]))
    assert issuer.verify(token) is None  # from memory, yet expired
    offset[0] = 0.0
    # The expired entry was dropped, so the token is decoded afresh.
    assert issuer.verify(token) == claims
    assert decodes == [token, token]


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: jwt.encode(c, "another-secret-" + "y" * 32, algorithm="HS256"),
        lambda c: jwt.encode(c, SECRET, algorithm="HS384"),
        lambda c: jwt.encode({**c, "exp": int(time.time()) - 1}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode({k: v for k, v in c.items() if k != "jti"}, SECRET, "HS256"),
        lambda c: jwt.encode({k: v for k, v in c.items() if k != "exp"}, SECRET, "HS256"),
        lambda c: jwt.encode({k: v for k, v in c.items() if k != "iat"}, SECRET, "HS256"),
        lambda c: jwt.encode({**c, "sub": 7}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode({k: v for k, v in c.items() if k != "sid"}, SECRET, "HS256"),
        lambda c: jwt.encode({**c, "sid": 7}, SECRET, algorithm="HS256"),
        lambda c: jwt.encode(c, None, algorithm="none"),
        lambda c: "not-a-token",
    ],
    ids=[
        "other-secret",
        "other-algorithm",
        "expired",
        "no-jti",
        "no-exp",
        "no-iat",
        "sub-not-a-string",
        "no-sid",
        "sid-not-a-string",
        "alg-none",
        "garbage",
    ],
)
def test_anything_but_a_valid_token_is_refused(forge: object) -> None:
    issuer = TokenIssuer(SECRET, ttl=3600)
    _, claims = issuer.issue("alice", "s1")
    assert issuer.verify(forge(claims)) is None  # type: ignore[operator]


def test_the_memory_of_checked_tokens_is_bounded(decodes: list[str]) -> None:
    issuer = TokenIssuer(SECRET, ttl=3600, cache_size=2)
    first, second, third = (issuer.issue(f"u{n}", "s1")[0] for n in range(3))
    for token in (first, second, third, first):
        assert issuer.verify(token) is not None
    assert decodes == [first, second, third, first]  # first was forgotten once third came


def test_refresh_tokens_are_256_random_bits_stored_as_a_hash() -> None:
    token, digest = tokens.new_refresh_token()
    assert len(token) >= 43 and tokens.refresh_hash(token) == digest and len(digest) == 32
    assert tokens.new_refresh_token()[0] != token
    assert tokens.refresh_hash(token) != tokens.invitation_hash(token)
    assert len(tokens.new_session_id()) == 32


def test_invitation_tokens_and_room_ids_are_fresh() -> None:
    token, digest = tokens.new_invitation_token()
    assert tokens.invitation_hash(token) == digest and len(digest) == 32
    assert tokens.new_invitation_token()[0] != token
    room = tokens.new_room_id()
    assert len(room) == 16 and room != tokens.new_room_id()
