"""What every handler and action needs, built once at start-up and passed down."""

from __future__ import annotations

import dataclasses

from chat.actions.join_writer import JoinWriter
from chat.actions.message_writer import MessageWriter
from chat.actions.messages import RoomAccess
from chat.auth import ratelimit
from chat.auth.passwords import PasswordHasher, VerifiedPasswords
from chat.auth.revocations import Revocations
from chat.auth.tokens import TokenIssuer
from chat.db.lookup import BatchedLookup
from chat.db.pool import Database
from chat.realtime.broker import Broker
from chat.util import ids
from settings import Settings


@dataclasses.dataclass
class Context:
    settings: Settings
    db: Database
    broker: Broker
    passwords: PasswordHasher
    room_passwords: VerifiedPasswords
    tokens: TokenIssuer
    revocations: Revocations
    public_profiles: BatchedLookup
    room_access: RoomAccess
    limits: ratelimit.Limits
    message_writer: MessageWriter
    join_writer: JoinWriter

    @classmethod
    def build(cls, settings: Settings, db: Database, broker: Broker) -> Context:
        passwords = PasswordHasher(settings.bcrypt_rounds, max_waiting=settings.bcrypt_queue)
        return cls(
            settings=settings,
            db=db,
            broker=broker,
            passwords=passwords,
            room_passwords=VerifiedPasswords(passwords),
            tokens=TokenIssuer(settings.jwt_secret, settings.token_ttl),
            revocations=Revocations(db, broker, settings.token_recheck, settings.token_ttl),
            # Profile views at the same moment share one query; userIds compare without case.
            public_profiles=BatchedLookup(
                db, "public_profiles_among", "user_ids", "user_id", fold=ids.fold
            ),
            # Membership checks outside a transaction (subscribes, history, typing), likewise.
            room_access=RoomAccess(db),
            limits=ratelimit.Limits(settings, ratelimit.make_limiter(settings)),
            message_writer=MessageWriter(
                db,
                broker,
                max_batch=settings.message_batch,
                queue_delay=settings.queue_delay_ms / 1000,
            ),
            # A join is a one-off action a person waits for (and a contended
            # room's joins queue behind each other): five times the bound.
            join_writer=JoinWriter(
                db, broker, settings.join_price, queue_delay=5 * settings.queue_delay_ms / 1000
            ),
        )

    def close(self) -> None:
        self.passwords.close()
