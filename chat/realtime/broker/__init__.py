"""Fan-out of room events and token revocations: the ``Broker`` interface and its two kinds.

``from_settings`` picks one: Redis pub/sub when CHAT_REDIS_URL is set, else
fan-out inside this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat.realtime.broker.interface import Broker, Event, EventListener, RevocationListener
from chat.realtime.broker.local import LocalBroker
from chat.realtime.broker.redis_broker import RedisBroker

if TYPE_CHECKING:
    from settings import Settings

__all__ = [
    "Broker",
    "Event",
    "EventListener",
    "LocalBroker",
    "RedisBroker",
    "RevocationListener",
    "from_settings",
]


def from_settings(settings: Settings) -> Broker:
    """Redis fan-out when CHAT_REDIS_URL is set, else fan-out inside this process.

    Redis pub/sub channels ignore the database number in the URL, so the
    channel names carry the MySQL database's name: deployments sharing one
    Redis keep apart, and processes sharing a database share rooms.
    """
    if settings.redis_url:
        return RedisBroker(settings.redis_url, prefix=f"chat:{settings.database.database}:")
    return LocalBroker()
