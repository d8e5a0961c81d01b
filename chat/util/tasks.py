"""Tasks that run on their own, whose failure is logged rather than lost."""

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def background(awaitable: Awaitable[T], what: str, log: logging.Logger) -> "asyncio.Future[T]":
    """Run ``awaitable`` on its own, logging a failure as "``what`` failed"."""
    task = asyncio.ensure_future(awaitable)

    def done(t: "asyncio.Future[T]") -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("%s failed", what, exc_info=t.exception())

    task.add_done_callback(done)
    return task
