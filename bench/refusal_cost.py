"""What a refusal at the door costs the server, beside the cheapest answer Tornado can give.

    .venv/bin/python bench/refusal_cost.py [--n 20000] [--connections 50]

Starts a Tornado server in a child process, twice: once with every
``POST /api/messages`` refused at the door (``InFlight`` with a ``refuse``
that always says yes: ``503 overloaded`` without routing, auth, JSON or an
access-log line), once with a handler that answers ``{}`` at once (the least
a request costs in Tornado). Sends ``--n`` keep-alive requests over
``--connections`` connections and prints the server's CPU time per request
for each (median of three rounds). Compare with the cost of a stored
message: the server's CPU share in ``make bench``'s e2e_http phase divided by
its messages per second.
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


def measure(refuse: bool, n: int, connections: int, port: int) -> float:
    code = SERVER.format(root=ROOT, refuse=refuse, port=port)
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
    refused = measure(True, args.n, args.connections, args.port)
    answered = measure(False, args.n, args.connections, args.port + 1)
    print(f"refused at the door: {refused * 1e6:.0f} µs of server CPU a request")
    print(f"answered {{}} by a bare handler: {answered * 1e6:.0f} µs a request")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
