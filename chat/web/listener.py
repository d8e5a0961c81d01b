"""The listening sockets: connections accepted for the HTTP server, and paused when they cannot be.

Tornado's own accept handler lets ``accept()``'s errors escape. Out of file
descriptors (``EMFILE``) the listening socket stays readable, so every turn
of the event loop tried again and logged a traceback: tens of thousands a
second, a busy loop slowing every connection already open. Here an error
that says the process or the machine is short of a resource pauses
accepting for ``PAUSE`` seconds (new connections wait in the backlog),
with one warning when it starts and one line when a connection is accepted
again; the connections already open are served as before.
"""

from __future__ import annotations

import errno
import logging
import socket
import time

from tornado import httpserver, netutil
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from chat.ops import metrics

log = logging.getLogger("chat.server")

# Connections the kernel completes and holds until the loop accepts them.
# Small on purpose (Tornado's default): it is a queue no one measures, and
# past it the kernel drops SYNs (their clients try again 1 s later), which
# holds back a storm of new connections from clients whose requests were
# slow. With 2048 an overloaded server accepted every one and spent itself
# on them: in the bench's HTTP overload phase 3 runs of 5 collapsed
# (goodput 0.20-0.30 of capacity, p99 4-6 s, 6,000-8,000 connections),
# none of 5 with 128 (0.48-0.64, 2,000-2,600 connections).
BACKLOG = 128
# Connections accepted in one turn of the loop, at most: the rest wait for
# the next turn, so that a burst does not hold up the requests of open ones.
ACCEPT_BATCH = 128
PAUSE = 0.1  # seconds without accepting, after accept() found a resource short
SHORT_OF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Listener:
    """Listens on ``host:port`` for ``server`` (``start``, then ``stop`` at shutdown)."""

    def __init__(self, server: httpserver.HTTPServer, port: int, host: str) -> None:
        self._server = server
        self._sockets = netutil.bind_sockets(port, host, backlog=BACKLOG)
        self._listening: set[socket.socket] = set()
        self._short_since: float | None = None  # when accept() first failed, until it works
        self._failures = 0

    def start(self) -> None:
        for sock in self._sockets:
            self._listen(sock)

    def stop(self) -> None:
        """Stop accepting and close the listening sockets (connections already open stay)."""
        loop = IOLoop.current()
        for sock in self._listening:
            loop.remove_handler(sock)
        self._listening.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def _listen(self, sock: socket.socket) -> None:
        if sock.fileno() == -1:
            return  # closed by stop() during a pause
        self._listening.add(sock)
        IOLoop.current().add_handler(sock, self._accept, IOLoop.READ)

    def _accept(self, sock: socket.socket, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return  # every waiting connection accepted
            except ConnectionAbortedError:
                continue  # closed by its client while it waited
            except OSError as exc:
                if exc.errno not in SHORT_OF:
                    raise
                self._pause(sock, exc)
                return
            if self._short_since is not None:
                self._recovered()
            stream = IOStream(
                connection,
                max_buffer_size=self._server.max_buffer_size,
                read_chunk_size=self._server.read_chunk_size,
            )
            self._server.handle_stream(stream, address)

    def _pause(self, sock: socket.socket, exc: OSError) -> None:
        self._failures += 1
        if self._short_since is None:
            self._short_since = time.monotonic()
            metrics.accept_paused()
            log.warning(
                "cannot accept connections (%s): new ones wait until some close",
                exc.strerror,
            )
        loop = IOLoop.current()
        loop.remove_handler(sock)
        self._listening.discard(sock)
        loop.call_later(PAUSE, self._listen, sock)

    def _recovered(self) -> None:
        assert self._short_since is not None
        log.warning(
            "accepting connections again after %.1f s (%d tries failed)",
            time.monotonic() - self._short_since,
            self._failures,
        )
        self._short_since = None
        self._failures = 0
