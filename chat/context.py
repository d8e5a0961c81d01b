"""What every handler and action needs, built once at start-up and passed down."""

import dataclasses

from . import ratelimit, security
from .db.lookup import BatchedLookup
from .revocations import Revocations
from .actions.join_writer import JoinWriter
from .actions.message_writer import MessageWriter


@dataclasses.dataclass
class Context:
    settings: object
    db: object
    broker: object
    passwords: security.PasswordHasher
    room_passwords: security.VerifiedPasswords
    tokens: security.TokenIssuer
    revocations: Revocations
    public_profiles: BatchedLookup
    login_limiter: ratelimit.RateLimiter
    message_writer: MessageWriter
    join_writer: JoinWriter

    @classmethod
    def build(cls, settings, db, broker):
        passwords = security.PasswordHasher(settings.bcrypt_rounds)
        return cls(
            settings=settings,
            db=db,
            broker=broker,
            passwords=passwords,
            room_passwords=security.VerifiedPasswords(passwords),
            tokens=security.TokenIssuer(settings.jwt_secret, settings.token_ttl),
            revocations=Revocations(db, broker, settings.token_recheck, settings.token_ttl),
            # Profile views at the same moment share one query; userIds compare without case.
            public_profiles=BatchedLookup(db, "public_profiles_among", "user_ids", "user_id",
                                          fold=str.lower),
            login_limiter=ratelimit.RateLimiter(settings.login_attempts, settings.login_window),
            message_writer=MessageWriter(db, broker),
            join_writer=JoinWriter(db, broker, settings.join_price),
        )

    def close(self):
        self.passwords.close()
