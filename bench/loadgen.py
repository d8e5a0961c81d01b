"""The benchmark's load generator: one process driving WebSocket clients or HTTP connections.

    python bench/loadgen.py SPEC.json RESULT.json

``python -m bench.run`` writes the spec, starts one or more of these processes and
steers them over stdin/stdout, so several of them start their measurement at
the same moment:

1. connect everything the spec names, then print ``READY {...}``;
2. wait for ``GO`` on stdin (``ws-idle``: for ``STOP``);
3. run: ``warmup`` seconds, then ``duration`` measured seconds;
4. write the result JSON and print ``DONE``.

Modes:

``ws-closed``  every client keeps ``window`` messages in flight: a new one goes
               out when the server acks one (saturation).
``ws-open``    messages leave on a fixed schedule of ``rate`` per second,
               round-robin over the clients, whatever the server's pace.
``ws-idle``    connect, authenticate, subscribe, and stay idle until STOP.

With ``"via": "http"`` in a ``ws-closed`` or ``ws-open`` spec the clients
still listen on their sockets, but send each message with ``POST
/api/messages`` on a keep-alive connection (one taken from a shared pool of
idle ones, or a new one: in open loop, independent users do not wait for each
other). A ``503`` answer (HTTP) or an ``error`` frame (WebSocket) is a
refusal: its time from the (scheduled) send is ``refused_latencies_ms``.
Rates count the answers and deliveries that arrive in the measured window;
latencies are those of the messages sent (or scheduled) in it, however late
their answer comes (the drain waits for it), so a stalled message counts.
``http``       ``concurrency`` keep-alive connections, each sending the spec's
               requests in turn; timed, or once each (``burst``).

A WebSocket client sends ``{"type": "message", "roomId", "content",
"clientMsgId"}`` with its send time (``time.monotonic()``, one clock for every
process on the machine) at the start of ``content``; latency is the time a
recipient receives the delivery minus that time. In open loop the time
written is the scheduled one, so a late send counts against the server.

Every delivery is checked against the room's acks: per socket, a ``seq``
received twice is ``duplicated``, one lower than a ``seq`` already received
is ``out_of_order``, and an acked message of another member never received
(after a drain) is ``lost``.
"""

import asyncio
import collections
import gc
import itertools
import json
import os
import resource
import socket
import sys
import time
import urllib.parse

from tornado import httpclient, websocket

monotonic = time.monotonic
# Answers that refuse a message at once (the server is overloaded or its
# database unavailable): expected in the overload phase, not faults.
REFUSALS = {"overloaded", "unavailable", "503"}
RETRY_AFTER = 1.0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_open_files(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Window:
    """The measured interval, [start, end), on the monotonic clock."""

    def __init__(self, warmup, duration):
        self.start = monotonic() + warmup
        self.end = self.start + duration
        self.cpu_at_start = None
        self.cpu = 0.0

    def __contains__(self, t):
        return self.start <= t < self.end


LATE_TICK = 0.005


async def watch_loop(window, late):
    """How late this process's own event loop runs a 5 ms timer, in the measured window.

    A generator whose loop runs late sends late and reads late; every latency
    it measures then includes that, whatever the server did.
    """
    while monotonic() < window.end:
        asked = monotonic()
        await asyncio.sleep(LATE_TICK)
        if asked in window:
            late.append(monotonic() - asked - LATE_TICK)


def late_summary(late):
    """p50, p99 and max of the loop's lateness, in ms."""
    if not late:
        return None
    late = sorted(late)
    return [round(late[int(q * (len(late) - 1))] * 1000, 1) for q in (0.5, 0.99, 1.0)]


class WsClient:
    def __init__(self, run, index, room, member):
        self.run = run
        self.index = index
        self.room = room
        self.user_id = member["userId"]
        self.token = member["token"]
        self.url = member["url"]
        self.conn = None
        self.ready = asyncio.get_running_loop().create_future()
        self.subscribed = asyncio.get_running_loop().create_future()
        self.inflight = 0
        self.sent = 0
        self.seen = set()
        self.last_seq = 0
        self.prefix = f'{{"type":"message","roomId":"{room.room_id}","content":"'
        # Send times of the frames not yet answered, by the frame's ref: the
        # server answers a refused frame at once, before the acks of older ones.
        self.stamps = {}
        # clientMsgId is unique per run: the server answers a repeated one with
        # the original message and delivers nothing.
        self.suffix = f' {run.pad}","clientMsgId":"{run.run_id}.{index}.'

    async def connect(self):
        request = httpclient.HTTPRequest(
            self.url,
            headers={"Authorization": "Bearer " + self.token},
            connect_timeout=120,
            request_timeout=120,
        )
        self.conn = await websocket.websocket_connect(request, on_message_callback=self.on_message)
        self.conn.protocol.set_nodelay(True)
        await asyncio.wait_for(self.ready, 120)
        self.conn.write_message(f'{{"type":"subscribe","roomId":"{self.room.room_id}"}}')
        await asyncio.wait_for(self.subscribed, 120)

    def send(self, stamp):
        self.sent += 1
        self.inflight += 1
        self.run.sent += 1
        if self.run.via_http:
            task = asyncio.ensure_future(self.post(stamp, self.sent))
            self.run.tasks.add(task)
            task.add_done_callback(self.run.tasks.discard)
            return
        try:
            n = self.sent
            self.conn.write_message(f'{self.prefix}{stamp:.6f}{self.suffix}{n}","ref":"{n}"}}')
            self.stamps[str(n)] = stamp
        except websocket.WebSocketClosedError:
            self.inflight -= 1

    async def post(self, stamp, n):
        run = self.run
        conn = run.http_idle.pop() if run.http_idle else KeepAliveConnection(*run.http_address)
        body = {
            "roomId": self.room.room_id,
            "content": f"{stamp:.6f} {run.pad}",
            "clientMsgId": f"{run.run_id}.{self.index}.{n}",
        }
        try:
            status, data = await conn.request("POST", "/api/messages", self.token, body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conn.close()
            run.errors["connection"] += 1
            self.inflight -= 1
            return
        if conn.writer is not None:
            run.http_idle.append(conn)
        now = monotonic()
        run.last_frame = now
        if status in (200, 201):
            self.on_ack(json.loads(data)["message"], now)
            return
        try:
            code = json.loads(data)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = str(status)
        self.on_refused(code, stamp, now)

    def on_ack(self, message, now):
        run = self.run
        seq = message["seq"]
        acked = self.room.acked
        if seq in acked:
            run.seq_errors += 1
        acked[seq] = self.index
        self.inflight -= 1
        run.acked += 1
        if now in run.window:
            run.acks += 1
        sent_at = float(message["content"].partition(" ")[0])
        if sent_at in run.window:
            run.ack_latencies.append(now - sent_at)
        if run.closed_loop and run.sending:
            self.send(now)

    def on_refused(self, code, stamp, now):
        run = self.run
        run.errors[code] += 1
        if code in REFUSALS:
            run.refused += 1
            if stamp in run.window:
                run.refused_latencies.append(now - stamp)
        self.inflight -= 1
        if run.closed_loop and run.sending:
            # As a client should: wait Retry-After (1 s) before sending again.
            asyncio.get_running_loop().call_later(RETRY_AFTER, self.send_again)

    def send_again(self):
        if self.run.sending:
            self.send(monotonic())

    def on_message(self, raw):
        run = self.run
        if raw is None:
            if not run.stopping:
                run.closed += 1
            if not self.ready.done():
                self.ready.set_exception(ConnectionError("closed before ready"))
            elif not self.subscribed.done():
                self.subscribed.set_exception(ConnectionError("closed before subscribed"))
            return
        now = monotonic()
        run.last_frame = now
        frame = json.loads(raw)
        kind = frame["type"]
        if kind == "message":
            message = frame["message"]
            seq = message["seq"]
            if seq in self.seen:
                run.duplicated += 1
            else:
                self.seen.add(seq)
            if seq < self.last_seq:
                run.out_of_order += 1
            else:
                self.last_seq = seq
            if message["senderId"] == self.user_id:
                run.self_echo += 1
                return
            run.received += 1
            if now in run.window:
                run.deliveries += 1
            sent_at = float(message["content"].partition(" ")[0])
            if sent_at in run.window:
                run.latencies.append(now - sent_at)
        elif kind == "ack":
            self.stamps.pop(frame.get("ref"), None)
            self.on_ack(frame["message"], now)
        elif kind == "error":
            if not self.subscribed.done():
                run.errors[frame.get("code", "?")] += 1
                self.subscribed.set_exception(ConnectionError(frame.get("code")))
            elif self.inflight:
                stamp = self.stamps.pop(frame.get("ref"), now)
                self.on_refused(frame.get("code", "?"), stamp, now)
            else:
                run.errors[frame.get("code", "?")] += 1
        elif kind == "ready":
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "subscribed":
            if not self.subscribed.done():
                self.subscribed.set_result(frame.get("lastSeq", 0))

    def close(self):
        if self.conn is not None:
            self.conn.close()


class Room:
    def __init__(self, room_id):
        self.room_id = room_id
        self.clients = []
        self.acked = {}


class WsRun:
    def __init__(self, spec):
        self.spec = spec
        self.mode = spec["mode"]
        self.closed_loop = self.mode == "ws-closed"
        self.via_http = spec.get("via") == "http"
        self.http_idle = []  # keep-alive connections with no request on them
        self.http_address = None
        self.tasks = set()
        self.refused = 0
        self.refused_latencies = []
        self.pad = "x" * max(0, spec.get("content_bytes", 64) - 18)
        self.run_id = os.urandom(4).hex()
        self.rooms = []
        self.clients = []
        self.window = Window(1e9, 0)
        self.sending = False
        self.stopping = False
        self.sent = self.acked = self.acks = self.deliveries = 0
        self.duplicated = self.out_of_order = self.self_echo = self.seq_errors = 0
        self.closed = 0
        self.received = 0
        self.errors = collections.Counter()
        self.latencies = []
        self.ack_latencies = []
        self.loop_late = []
        self.last_frame = monotonic()
        for room_spec in spec["rooms"]:
            room = Room(room_spec["roomId"])
            for member in room_spec["members"]:
                client = WsClient(self, len(self.clients), room, member)
                room.clients.append(client)
                self.clients.append(client)
            self.rooms.append(room)

    async def connect_all(self):
        limit = asyncio.Semaphore(self.spec.get("connect_concurrency", 100))
        failures = collections.Counter()

        async def one(client):
            async with limit:
                try:
                    await client.connect()
                    return True
                except Exception as exc:
                    failures[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                    client.close()
                    return False

        started = monotonic()
        ok = await asyncio.gather(*(one(c) for c in self.clients))
        if self.via_http and self.clients:
            url = urllib.parse.urlsplit(self.clients[0].url)
            self.http_address = (url.hostname, url.port)
            # One keep-alive connection per client to begin with (closed loop needs no more).
            self.http_idle = [KeepAliveConnection(*self.http_address) for _ in self.clients]
            await asyncio.gather(*(c.open() for c in self.http_idle))
        for room in self.rooms:
            room.clients = [c for c in room.clients if ok[c.index]]
        self.clients = [c for c in self.clients if ok[c.index]]
        return {
            "clients": len(self.clients),
            "connect_failed": sum(failures.values()),
            "connect_errors": dict(failures.most_common(5)),
            "connect_s": round(monotonic() - started, 3),
        }

    async def run(self):
        spec = self.spec
        self.window = Window(spec["warmup"], spec["duration"])
        self.sending = True
        window = self.window
        watch = watch_loop(window, self.loop_late)
        if self.closed_loop:
            now = monotonic()
            for client in self.clients:
                for _ in range(spec["window"]):
                    client.send(now)
            await asyncio.gather(self._measure(), watch)
        else:
            await asyncio.gather(self._schedule(spec["rate"]), self._measure(), watch)
        self.sending = False
        await self._drain(spec.get("drain", 5.0))
        return window

    async def _measure(self):
        window = self.window
        await asyncio.sleep(max(0.0, window.start - monotonic()))
        window.cpu_at_start = cpu_seconds()
        await asyncio.sleep(max(0.0, window.end - monotonic()))
        window.cpu = cpu_seconds() - window.cpu_at_start

    async def _schedule(self, rate):
        """Open loop: message i leaves at start + i / rate, whatever happened before."""
        clients = self.clients
        if not clients or rate <= 0:
            return
        start = monotonic()
        end = self.window.end
        i = 0
        while True:
            now = monotonic()
            if now >= end:
                break
            due = int((now - start) * rate) + 1
            while i < due:
                clients[i % len(clients)].send(start + i / rate)
                i += 1
            await asyncio.sleep(max(0.0, start + i / rate - monotonic()))

    async def _drain(self, limit):
        """Wait for the last acks and deliveries.

        Until every message sent is acked and every acked one delivered to the
        other members; or nothing arrived for a second; or ``limit`` seconds.
        """
        deadline = monotonic() + limit
        while monotonic() < deadline:
            pending = any(c.inflight for c in self.clients)
            expected = sum(len(r.acked) * (len(r.clients) - 1) for r in self.rooms)
            if not pending and self.received >= expected:
                break
            if monotonic() - self.last_frame > 1.0:
                break
            await asyncio.sleep(0.05)

    def result(self, window):
        lost = 0
        for room in self.rooms:
            for client in room.clients:
                lost += sum(
                    1
                    for seq, sender in room.acked.items()
                    if sender != client.index and seq not in client.seen
                )
        return {
            "mode": self.mode,
            "clients": len(self.clients),
            "rooms": len(self.rooms),
            "window_s": self.spec["duration"],
            "sent": self.sent,
            "acked": self.acked,
            "unacked": sum(c.inflight for c in self.clients),
            "acks": self.acks,
            "deliveries": self.deliveries,
            "lost": lost,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "seq_errors": self.seq_errors,
            "self_echo": self.self_echo,
            "closed": self.closed,
            "errors": dict(self.errors),
            "cpu_s": window.cpu,
            "latencies_ms": [round(x * 1000, 3) for x in self.latencies],
            "ack_latencies_ms": [round(x * 1000, 3) for x in self.ack_latencies],
            "refused": self.refused,
            "refused_latencies_ms": [round(x * 1000, 3) for x in self.refused_latencies],
            "http_connections": len(self.http_idle),
            "loop_late_ms": late_summary(self.loop_late),
        }

    def idle_result(self):
        still_open = sum(
            1
            for c in self.clients
            if c.conn is not None
            and c.conn.protocol is not None
            and not c.conn.protocol.is_closing()
        )
        return {
            "mode": self.mode,
            "clients": len(self.clients),
            "open": still_open,
            "closed": self.closed,
            "errors": dict(self.errors),
        }

    def close(self):
        self.stopping = True
        for client in self.clients:
            client.close()
        for conn in self.http_idle:
            conn.close()


class KeepAliveConnection:
    """A minimal HTTP/1.1 client on one keep-alive connection (Tornado's has no keep-alive)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method, path, token=None, body=None):
        if self.writer is None:
            await self.open()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            head += "Content-Type: application/json\r\n"
        if body is not None or method == "POST":
            head += f"Content-Length: {len(payload)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length, close = 0, False
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked responses are not expected from the server")
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data


class HttpRun:
    def __init__(self, spec):
        self.spec = spec
        self.connections = [
            KeepAliveConnection(spec["host"], spec["port"]) for _ in range(spec["concurrency"])
        ]
        self.statuses = collections.Counter()
        self.latencies = []
        self.completed = 0
        self.paid = 0
        self.window = None
        self.elapsed = 0.0
        self.loop_late = []

    async def connect_all(self):
        await asyncio.gather(*(c.open() for c in self.connections))
        return {"connections": len(self.connections)}

    async def run(self):
        spec = self.spec
        requests = spec["requests"]
        burst = spec.get("burst", False)
        self.window = window = Window(
            0 if burst else spec["warmup"], 1e9 if burst else spec["duration"]
        )
        counter = itertools.count()
        window.cpu_at_start = cpu_seconds()
        started = monotonic()
        deadline = window.end

        async def worker(conn):
            while True:
                i = next(counter)
                if burst and i >= len(requests):
                    return
                begun = monotonic()
                if not burst and begun >= deadline:
                    return
                method, path, token, body = requests[i % len(requests)]
                status, data = await conn.request(method, path, token, body)
                now = monotonic()
                if now in window:
                    self.completed += 1
                    self.statuses[status] += 1
                    self.latencies.append(now - begun)
                    if burst and status == 200 and json.loads(data).get("charged"):
                        self.paid += 1

        async def mark():
            # The measured window starts after warm-up: reset the CPU count then.
            if not burst:
                await asyncio.sleep(max(0.0, window.start - monotonic()))
                window.cpu_at_start = cpu_seconds()

        watch = [] if burst else [watch_loop(window, self.loop_late)]
        await asyncio.gather(mark(), *watch, *(worker(c) for c in self.connections))
        self.elapsed = monotonic() - started
        window.cpu = cpu_seconds() - window.cpu_at_start
        return window

    def result(self, window):
        burst = self.spec.get("burst", False)
        return {
            "mode": "http",
            "completed": self.completed,
            "window_s": self.elapsed if burst else self.spec["duration"],
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "paid": self.paid,
            "cpu_s": window.cpu,
            "latencies_ms": [round(x * 1000, 3) for x in self.latencies],
            "loop_late_ms": late_summary(self.loop_late),
        }

    def close(self):
        for conn in self.connections:
            conn.close()


async def read_line():
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


def say(word, body=None):
    sys.stdout.write(word + (" " + json.dumps(body) if body is not None else "") + "\n")
    sys.stdout.flush()


async def main(spec_path, result_path):
    with open(spec_path) as f:
        spec = json.load(f)
    raise_open_files(spec.get("open_files", 4096))
    run = HttpRun(spec) if spec["mode"] == "http" else WsRun(spec)
    try:
        say("READY", await run.connect_all())
        # Everything made during set-up lives to the end: never scan it again.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50000, 20, 100)
        if spec["mode"] == "ws-idle":
            await read_line()
            result = run.idle_result()
        else:
            if await read_line() != "GO":
                return 1
            result = run.result(await run.run())
    finally:
        run.close()
    with open(result_path, "w") as f:
        json.dump(result, f)
    say("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
