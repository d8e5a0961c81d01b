"""Login tokens, invitation tokens and room ids.

Access tokens are HS256 JWTs carrying ``sub`` (the userId), ``sid`` (the
session), ``jti``, ``iat`` and ``exp``; ending a session revokes every access
token of it by ``sid``. Refresh tokens and invitation tokens are 256 random
bits, of which only the SHA-256 is stored.
"""

import hashlib
import secrets
import time
import uuid
from typing import Any

import jwt

from chat.util.lru import Lru

ALGORITHM = "HS256"


class TokenIssuer:
    """Issues and checks login tokens.

    A token's signature is checked once; its claims are then remembered
    (bounded), while its expiry is checked on every use. Revocation is not
    this class's business: callers check ``jti`` against the revocations.
    """

    def __init__(self, secret: str, ttl: int, cache_size: int = 10000) -> None:
        self._secret = secret
        self.ttl = ttl
        self._checked: Lru[str, dict[str, Any]] = Lru(cache_size)  # token -> claims

    def issue(
        self, user_id: str, session_id: str, device_id: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A new access token of the session and its claims."""
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": session_id,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + self.ttl,
        }
        if device_id:
            claims["did"] = device_id
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), claims

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token, or None for anything else."""
        claims = self._checked.get(token)
        if claims is not None:
            if claims["exp"] > time.time():
                return claims
            self._checked.pop(token)
            return None
        claims = self._decode(token)
        if claims is not None:
            self._checked.put(token, claims)
        return claims

    def _decode(self, token: str) -> dict[str, Any] | None:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "jti", "sid"]},
            )
        except jwt.PyJWTError:
            return None
        if not all(isinstance(claims.get(name), str) for name in ("sub", "jti", "sid")):
            return None
        return claims


def new_session_id() -> str:
    """A session id: 128 random bits as 32 hex characters."""
    return secrets.token_hex(16)


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh refresh token (256 random bits, opaque) and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, refresh_hash(token)


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(b"refresh\0" + token.encode("utf-8")).digest()


def new_invitation_token() -> tuple[str, bytes]:
    """A fresh invitation token (256 random bits) and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, invitation_hash(token)


def invitation_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_room_id() -> str:
    """An unguessable room id: 96 random bits, 16 URL-safe characters."""
    return secrets.token_urlsafe(12)
