"""What a refusal at the door costs the server, beside the cheapest answer Tornado can give.

    .venv/bin/python bench/refusal_cost.py [--n 20000] [--connections 50]

Starts a Tornado server in a child process, twice: once with every
``POST /api/messages`` refused at the door (``InFlight`` with a ``refuse``
that always says yes: ``503 overloaded`` without routing, auth, JSON or an
access-log line), once with a handler that answers ``{}`` at once (the least
a request costs in Tornado). Then, for scale, the same refusal written by a
bare asyncio protocol that only finds where each request ends (what a
refusal costs in Python below any HTTP framework). Sends ``--n`` keep-alive
requests over ``--connections`` connections and prints the server's CPU
time per request for each (median of three rounds). Compare with the cost of
a stored message: the server's CPU share in ``make bench``'s e2e_http phase
divided by its messages per second.

Why it matters: with a refusal costing ``r`` times a stored message, a
server offered 1.5 times what it can store, all of it refused or stored by
one core, stores at most ``(1 - 1.5 r) / (1 - r)`` of its capacity (goodput
0.9 needs ``r`` of 1/6 or less).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER = """
import asyncio, sys
from tornado import httpserver, web
sys.path.insert(0, {root!r})
from chat.web.inflight import InFlight

class Answer(web.RequestHandler):
    def post(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(b"{{}}")

async def main():
    app = web.Application([(r"/api/messages", Answer)])
    delegate = InFlight(app, refuse=(lambda start_line: True) if {refuse} else None)
    server = httpserver.HTTPServer(delegate)
    server.listen({port}, "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

BARE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from chat.web.inflight import REFUSAL_BODY

ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\\r\\nContent-Type: application/json; charset=UTF-8\\r\\n"
    b"Retry-After: 1\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(REFUSAL_BODY), REFUSAL_BODY)
)

class Refuse(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\\r\\n\\r\\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\\r\\n", 1)[0]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length:]
            self.transport.write(ANSWER)
        self.buffer = buffer

async def main():
    await asyncio.get_running_loop().create_server(Refuse, "127.0.0.1", {port})
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

BODY = b'{"roomId":"r1","content":"hello","clientMsgId":"c1"}'


def request(port: int) -> bytes:
    return (
        b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Authorization: Bearer x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (port, len(BODY), BODY)
    )


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, n: int, connections: int) -> None:
    payload = request(port)

    async def one(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(one(n // connections) for _ in range(connections)))


def measure(code: str, n: int, connections: int, port: int) -> float:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        asyncio.run(drive(port, 1000, connections))  # warm-up
        rounds = []
        for _ in range(3):
            before = cpu_seconds(proc.pid)
            asyncio.run(drive(port, n, connections))
            rounds.append((cpu_seconds(proc.pid) - before) / n)
        return statistics.median(rounds)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    started = time.monotonic()
    port, n, connections = args.port, args.n, args.connections
    refused = measure(SERVER.format(root=ROOT, refuse=True, port=port), n, connections, port)
    answered = measure(
        SERVER.format(root=ROOT, refuse=False, port=port + 1), n, connections, port + 1
    )
    bare = measure(BARE.format(root=ROOT, port=port + 2), n, connections, port + 2)
    print(f"refused at the door: {refused * 1e6:.0f} µs of server CPU a request")
    print(f"answered {{}} by a bare handler: {answered * 1e6:.0f} µs a request")
    print(f"refused by a bare asyncio protocol, no HTTP framework: {bare * 1e6:.0f} µs a request")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
