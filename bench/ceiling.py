"""The ceilings: a bare Tornado WebSocket broadcast, and a bare join answer, for the benchmark.

It speaks the frames of ``GET /api/ws`` that the load generator uses (ready,
subscribe/subscribed, message/ack, message delivery, ping/pong) with none of
the real server's work: no database, no token check, no validation, no
membership. Each room keeps an in-memory ``seq``; a message is encoded once
and written to every subscriber. What the real server reaches beside this, on
the same machine with the same load generator and rooms, is ``e2e_vs_ceiling``.

``POST /api/joinroom`` answers every request as a paid join, with a body of
the real answer's shape, having done nothing: what Tornado's HTTP handling
alone allows here. The real joins beside it, the same requests over the same
connections, are ``joins_vs_ceiling``.

    python bench/ceiling.py --port=9000 [--echo-sender]
"""

import argparse
import asyncio
import base64
import datetime
import gc
import itertools
import json
import logging
import signal

from tornado import httpserver, web, websocket


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def unverified_subject(authorization):
    """The ``sub`` of a Bearer JWT, read without checking anything."""
    try:
        payload = authorization.split(" ", 1)[1].split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))["sub"]
    except Exception:
        return "anonymous"


class Hub:
    def __init__(self, echo_sender):
        self.echo_sender = echo_sender
        self.rooms = {}
        self.seqs = {}
        self.ids = itertools.count(1)


class CeilingSocket(websocket.WebSocketHandler):
    def initialize(self, hub):
        self.hub = hub
        self.user_id = "anonymous"
        self.subscribed = set()

    def check_origin(self, origin):
        return True

    def open(self):
        self.set_nodelay(True)
        self.user_id = unverified_subject(self.request.headers.get("Authorization", ""))
        self.write_message(dumps({"type": "ready", "userId": self.user_id}))

    def on_message(self, raw):
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "message":
            self._message(frame)
        elif kind == "subscribe":
            room_id = frame["roomId"]
            self.hub.rooms.setdefault(room_id, set()).add(self)
            self.subscribed.add(room_id)
            self._reply(
                {"type": "subscribed", "roomId": room_id, "lastSeq": self.hub.seqs.get(room_id, 0)},
                frame,
            )
        elif kind == "auth":
            self.user_id = unverified_subject("Bearer " + frame.get("token", ""))
            self._reply({"type": "ready", "userId": self.user_id}, frame)
        elif kind == "ping":
            self._reply({"type": "pong"}, frame)

    def _message(self, frame):
        hub = self.hub
        room_id = frame["roomId"]
        seq = hub.seqs.get(room_id, 0) + 1
        hub.seqs[room_id] = seq
        message = {
            "messageId": str(next(hub.ids)),
            "roomId": room_id,
            "seq": seq,
            "senderId": self.user_id,
            "content": frame["content"],
            "clientMsgId": frame.get("clientMsgId"),
            "createdAt": datetime.datetime.now(datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        self._reply({"type": "ack", "message": message}, frame)
        delivery = dumps({"type": "message", "message": message})
        for socket in hub.rooms.get(room_id, ()):
            if socket is not self or hub.echo_sender:
                try:
                    socket.write_message(delivery)
                except websocket.WebSocketClosedError:
                    pass

    def _reply(self, body, frame):
        if "ref" in frame:
            body["ref"] = frame["ref"]
        self.write_message(dumps(body))

    def on_close(self):
        for room_id in self.subscribed:
            sockets = self.hub.rooms.get(room_id)
            if sockets is not None:
                sockets.discard(self)


class JoinCeiling(web.RequestHandler):
    def post(self):
        room_id = json.loads(self.request.body)["roomId"]
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(
            dumps(
                {
                    "room": {
                        "roomId": room_id,
                        "name": "Room",
                        "ownerId": "owner",
                        "capacity": 6,
                        "memberCount": 6,
                        "members": [f"member{i}" for i in range(6)],
                        "createdAt": "2026-01-01T00:00:00.000Z",
                    },
                    "charged": 150,
                    "availCoins": 150,
                }
            )
        )


class Health(web.RequestHandler):
    def get(self):
        self.write({"status": "ok"})


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--echo-sender",
        action="store_true",
        help="also deliver each message to its sender's socket, "
        "as the real server does when it echoes",
    )
    args = parser.parse_args()
    hub = Hub(args.echo_sender)
    app = web.Application(
        [
            (r"/api/ws", CeilingSocket, {"hub": hub}),
            (r"/api/joinroom", JoinCeiling),
            (r"/api/health", Health),
        ],
        websocket_ping_interval=30,
    )
    server = httpserver.HTTPServer(app)
    server.listen(args.port, args.host)
    # Same garbage-collector tuning as server.py, so neither side is favoured.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50000, 20, 100)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    server.stop()


if __name__ == "__main__":
    # Logged as server.py logs, access lines included, so neither side is favoured.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main())
