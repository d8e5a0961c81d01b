"""Two server.py processes and Redis behind Debian's nginx, configured as docs/deployment.md says.

The nginx configuration is taken from the documentation itself (its first
```nginx block), with only the addresses and file paths changed for a
temporary directory and free ports, so the documented configuration is the
one tested.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado import httpclient, websocket

from helpers import ROOT, TEST_SECRET, ApiClient
from procs import ServerProcess, free_port, wait_until

NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin")


def documented_config():
    with open(os.path.join(ROOT, "docs", "deployment.md"), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert match, "docs/deployment.md has no nginx configuration"
    return match.group(1)


def local_config(tmp, listen_port, upstream_ports):
    """The documented configuration, on these ports and with its files under ``tmp``."""
    config = documented_config()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+[^;]*;\n", config, re.M)
    assert len(servers) >= 2, "the documented upstream lists the processes"
    first = config.index(servers[0])
    lines = "".join(
        servers[0].replace(re.search(r"127\.0\.0\.1:\d+", servers[0]).group(), f"127.0.0.1:{p}")
        for p in upstream_ports
    )
    config = config[:first] + lines + config[first:].replace("".join(servers), "", 1)
    replaced = {
        r"^pid .*;$": f"pid {tmp}/nginx.pid;",
        r"^error_log .*;$": f"error_log {tmp}/error.log warn;",
        r"access_log [^;]*;": f"access_log {tmp}/access.log;",
        r"listen 80;": f"listen 127.0.0.1:{listen_port};",
        r"^worker_processes .*;$": "worker_processes 1;",  # two cores shared by the suite
    }
    for pattern, value in replaced.items():
        config, count = re.subn(pattern, value, config, flags=re.M)
        assert count == 1, pattern
    temp_paths = "".join(
        f"    {name}_temp_path {tmp}/{name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return config.replace("http {\n", "http {\n" + temp_paths, 1)


class Nginx:
    def __init__(self, tmp, upstream_ports):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(local_config(tmp, self.port, upstream_ports))
        checked = subprocess.run([NGINX, "-t", "-c", path], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(
            [NGINX, "-c", path, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 15, "nginx did not answer")

    def answers(self):
        import socket

        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cluster(database, redis_url, tmp_path):
    """Two processes on one database and Redis, nginx in front; all stopped afterwards."""
    assert NGINX, "nginx is not installed (make test installs nginx-light)"
    started = []

    def process(port=None):
        server = ServerProcess(database, TEST_SECRET, redis_url, behind_proxy=1)
        if port is not None:
            server.port, server.base_url = port, f"http://127.0.0.1:{port}"
            server.env["CHAT_PORT"] = str(port)
        started.append(server)
        return server.start()

    first, second = process(), process()
    nginx = Nginx(str(tmp_path), [first.port, second.port])
    yield nginx, first, second, process
    nginx.close()
    logs = [server.close() for server in started]
    assert not [log for log in logs if "Traceback" in log], "\n".join(logs)


def posts_served(server):
    """How many POST /api/messages this process answered with 201, from its /metrics."""
    with urllib_open(server.base_url + "/metrics") as text:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "chat_http_requests_total"
                    and labels.get("route") == "/api/messages"
                    and labels.get("method") == "POST"
                    and labels.get("status") == "201"
                ):
                    return sample.value
    return 0


def urllib_open(url):
    import contextlib
    import urllib.request

    @contextlib.contextmanager
    def opened():
        with urllib.request.urlopen(url, timeout=5) as resp:
            yield resp.read().decode()

    return opened()


def sockets_open(server):
    with urllib_open(server.base_url + "/metrics") as text:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "chat_websockets_open":
                    return sample.value
    return 0


async def connect(url, token):
    request = httpclient.HTTPRequest(
        url.replace("http://", "ws://") + "/api/ws", headers={"Authorization": f"Bearer {token}"}
    )
    conn = await websocket.websocket_connect(request)
    ready = json.loads(await asyncio.wait_for(conn.read_message(), 10))
    assert ready["type"] == "ready"
    return conn


async def subscribe(conn, room_id, after=None):
    frame = {"type": "subscribe", "roomId": room_id}
    if after is not None:
        frame["after"] = after
    await conn.write_message(json.dumps(frame))


@pytest.mark.gen_test(timeout=180)
async def test_a_message_through_nginx_reaches_a_socket_on_the_other_process(cluster):
    nginx, first, second, _ = cluster
    api = ApiClient(nginx.base_url)
    opened = []
    try:
        owner = await api.user(prime=True)
        room = await api.room(owner)
        conn = await connect(nginx.base_url, owner.token)
        opened.append(conn)
        await subscribe(conn, room["roomId"])
        assert json.loads(await conn.read_message())["type"] == "subscribed"
        holder = first if sockets_open(first) >= 1 else second
        other = second if holder is first else first
        assert sockets_open(holder) == 1 and sockets_open(other) == 0

        before = posts_served(other)
        sent = []
        while posts_served(other) == before or len(sent) < 10:
            resp = await api.post(
                "/api/messages",
                {"roomId": room["roomId"], "content": f"m{len(sent)}"},
                token=owner.token,
            )
            assert resp.status == 201, resp.body
            sent.append(resp.body["message"]["seq"])
            assert len(sent) < 200, "nginx never sent a message to the other process"
        got = []
        while len(got) < len(sent):
            frame = json.loads(await asyncio.wait_for(conn.read_message(), 10))
            if frame["type"] == "message":
                got.append(frame["message"]["seq"])
        assert got == sent  # every one, once, in order, from both processes
    finally:
        for conn in opened:
            conn.close()
        api.close()


@pytest.mark.gen_test(timeout=180)
async def test_a_rolling_restart_loses_no_acknowledged_message(cluster):
    nginx, first, second, process = cluster
    api = ApiClient(nginx.base_url)
    opened = []
    try:
        owner = await api.user(prime=True)
        room = await api.room(owner)
        acked = {}  # clientMsgId -> seq, once a 200/201 came back through nginx
        stop = asyncio.Event()

        async def traffic():
            n = 0
            while not stop.is_set():
                cid = f"c{n}"
                for _ in range(50):  # a refused or cut request is sent again, same clientMsgId
                    try:
                        resp = await api.post(
                            "/api/messages",
                            {"roomId": room["roomId"], "content": cid, "clientMsgId": cid},
                            token=owner.token,
                        )
                    except OSError:
                        resp = None
                    if resp is not None and resp.status in (200, 201):
                        acked[cid] = resp.body["message"]["seq"]
                        break
                    await asyncio.sleep(0.05)
                n += 1
                await asyncio.sleep(0.01)

        seen = []
        conn = await connect(nginx.base_url, owner.token)
        opened.append(conn)
        await subscribe(conn, room["roomId"], after=0)
        sender = asyncio.ensure_future(traffic())
        holder = first if sockets_open(first) >= 1 else second
        await asyncio.sleep(1.0)

        # Restart the process holding the socket, then the other one: one at a time.
        for victim in (holder, second if holder is first else first):
            holds_socket = sockets_open(victim) >= 1
            victim.signal(signal.SIGTERM)
            while holds_socket:  # read until the server closes the socket (1001, going away)
                raw = await asyncio.wait_for(conn.read_message(), 30)
                if raw is None:
                    break
                frame = json.loads(raw)
                if frame["type"] == "message":
                    seen.append(frame["message"]["seq"])
            assert victim.wait(30) == 0
            assert process(victim.port).running  # its replacement, on the same port
            if holds_socket:  # resume through nginx from the last seq seen
                for _ in range(100):
                    try:
                        conn = await connect(nginx.base_url, owner.token)
                        opened.append(conn)
                        break
                    except (OSError, httpclient.HTTPClientError):
                        await asyncio.sleep(0.1)
                await subscribe(conn, room["roomId"], after=seen[-1] if seen else 0)
            await asyncio.sleep(1.0)

        stop.set()
        await sender
        assert len(acked) >= 10
        last = max(acked.values())
        deadline = time.monotonic() + 30
        while (not seen or seen[-1] < last) and time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(conn.read_message(), 30))
            if frame["type"] == "message":
                seen.append(frame["message"]["seq"])
        assert seen == list(range(1, len(seen) + 1)), "a gap or a repeat"
        assert set(acked.values()) <= set(seen), "an acknowledged message was lost"
        assert len(set(acked.values())) == len(acked), "a clientMsgId stored twice"
    finally:
        for conn in opened:
            conn.close()
        api.close()
