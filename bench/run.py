"""`make bench`: the chat server measured end to end, beside a bare ceiling, in one run.

    python bench/run.py [--quick] [--phases=http,e2e,e2e_http,open,overload,joins,ceiling,conns,two]

Creates a fresh database (``chat_bench_<random>``, dropped at the end), seeds it
in bulk through SQL, starts ``server.py`` as a subprocess on it, drives it from
separate load-generator processes (``bench/loadgen.py``) over loopback, stops
everything it started (on errors and Ctrl-C too) and prints a table. The last
line printed is one JSON object with every figure.

Phases (each one can be chosen with ``--phases``):

http     logins/s against users hashed at cost 12 (server at CHAT_BCRYPT_ROUNDS=12),
         then authenticated ``GET /api/profile/{id}``/s, on keep-alive connections.
e2e      saturation: rooms of 6 subscribed clients, each keeping ``--window``
         messages in flight; stored messages/s, deliveries/s, latency p50/p99.
e2e_http the e2e rooms, each message sent with ``POST /api/messages`` on a
         keep-alive connection (sockets still receive): ``e2e_http_msgs_per_s``.
open     the same rooms at a fixed ``--rate`` of messages/s: latency p50/p99.
overload open loop at 1.5x the closed-loop capacity measured in this run, over
         HTTP (1.5 x e2e_http) and over WebSocket (1.5 x e2e): goodput (stored
         msgs/s / capacity), p99 of accepted messages, p99 time to a refusal
         (``503 overloaded``): ``overload_goodput_ratio``, ``overload_p99_ms``,
         ``overload_refused_p99_ms``, and ``overload_ws_*`` likewise.
joins    paid joins under contention: many non-prime users with coins and their
         free join used, few rooms, concurrent joins; then SQL checks that no
         room holds more than 6, no balance is negative and every ledger adds up;
         then the same requests against ``bench/ceiling.py``'s bare join answer:
         ``joins_vs_ceiling``.
ceiling  ``bench/ceiling.py`` (no database, auth or validation) driven by the same
         load generator with the same rooms: ``e2e_vs_ceiling``.
conns    ``--conns`` authenticated, subscribed, idle sockets on a fresh server
         process: its resident memory growth / socket count.
two      two server processes sharing Redis (CHAT_REDIS_URL), each room's clients
         spread over both: end-to-end messages/s.

Seeding writes users, rooms and memberships directly (seed users' passwords
are bcrypt cost 4, the login users' cost 12), and login tokens for the
WebSocket clients are issued with the server's own secret and TokenIssuer, as
``/api/login`` would: the cost of logging in is measured on its own, in ``http``.
Every delivery is checked by ``seq``; a figure whose run saw a lost, duplicated
or out-of-order delivery, an error frame or a dropped socket is flagged and
does not count.
"""

import argparse
import base64
import collections
import dataclasses
import datetime
import json
import math
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import bcrypt
import pymysql
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, ROOT)

import settings as settings_module  # noqa: E402
from chat.auth.tokens import TokenIssuer  # noqa: E402
from chat.db import migrate, sqlfile  # noqa: E402

PHASES = ("http", "e2e", "e2e_http", "open", "overload", "joins", "ceiling", "conns", "two")
MSG_PHASES = {"http", "e2e", "e2e_http", "open", "overload", "ceiling", "two"}
# The overload phase offers this multiple of the closed-loop capacity measured in the same run.
OVERLOAD_FACTOR = 1.5
PASSWORD = "bench-password-1"
ROOM_PASSWORD = "room-password"
JOIN_PRICE = 150
ROOM_SIZE = 6

# Sizes of the short run (--quick, under two minutes) and of the full one.
PROFILES = {
    "quick": dict(
        rooms=50,
        window=2,
        warmup=2.0,
        duration=6.0,
        rate=1000.0,
        loadgens=2,
        http_duration=4.0,
        http_concurrency=32,
        login_users=8,
        login_concurrency=4,
        conns=10000,
        join_rooms=200,
        join_users=800,
        join_tries=3,
        join_coins=2,
        join_concurrency=64,
    ),
    "full": dict(
        rooms=50,
        window=2,
        warmup=3.0,
        duration=20.0,
        rate=1000.0,
        loadgens=2,
        http_duration=10.0,
        http_concurrency=32,
        login_users=16,
        login_concurrency=4,
        conns=10000,
        join_rooms=400,
        join_users=1600,
        join_tries=3,
        join_coins=2,
        join_concurrency=64,
    ),
}

TARGETS = {
    "e2e_msgs_per_s": (">=", 2000),
    "e2e_http_msgs_per_s": (">=", 2000),
    "overload_goodput_ratio": (">=", 0.9),
    "overload_p99_ms": ("<=", 150),
    "overload_refused_p99_ms": ("<=", 20),
    "overload_ws_goodput_ratio": (">=", 0.9),
    "e2e_deliveries_per_s": (">=", 10000),
    "open_loop_p99_ms": ("<=", 50),
    "e2e_vs_ceiling": (">=", 0.5),
    "conn_rss_kib": ("<=", 24),
    "paid_joins_per_s": (">=", 1000),
    "overbooked": ("==", 0),
    "profile_gets_per_s": (">=", 2000),
    "lost": ("==", 0),
    "duplicated": ("==", 0),
    "out_of_order": ("==", 0),
}


# CPU users that belong to the run itself (see CpuMeter): anything else is foreign load.
OWN_PROCESSES = (
    "machine",
    "server",
    "mysqld",
    "redis",
    "loadgen",
    "softirq",
    "kworker",
    "ksoftirqd",
    "py-spy",
    "ceiling",
)


class BenchError(Exception):
    pass


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Benchmark the chat server end to end beside a bare ceiling.",
        epilog="Sizes default to the --quick or the full profile: " + json.dumps(PROFILES),
    )
    parser.add_argument("--quick", action="store_true", help="the short run (under 2 minutes)")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help="comma-separated subset of: " + ",".join(PHASES)
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CHAT_BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/chat"),
        help="MySQL/MariaDB server to use; a fresh chat_bench_* database is made on it",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CHAT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the 'two' phase",
    )
    size = parser.add_argument_group("sizes (default: the chosen profile)")
    size.add_argument("--rooms", type=int, help="rooms of 6 clients in e2e/open/ceiling/two")
    size.add_argument("--window", type=int, help="messages in flight per client (e2e)")
    size.add_argument("--warmup", type=float, help="seconds before each measured window")
    size.add_argument("--duration", type=float, help="measured seconds of each messaging phase")
    size.add_argument("--rate", type=float, help="messages/s of the open-loop phase")
    size.add_argument("--loadgens", type=int, help="load-generator processes per WebSocket phase")
    size.add_argument("--http-duration", type=float, help="measured seconds of each HTTP figure")
    size.add_argument("--http-concurrency", type=int, help="keep-alive connections for profiles")
    size.add_argument("--login-users", type=int, help="users hashed at cost 12 for logins")
    size.add_argument("--login-concurrency", type=int, help="logins in flight")
    size.add_argument("--conns", type=int, help="idle sockets of the connections phase")
    size.add_argument("--join-rooms", type=int, help="rooms with 5 free seats each (joins)")
    size.add_argument("--join-users", type=int, help="non-prime users joining (joins)")
    size.add_argument("--join-tries", type=int, help="distinct rooms each user tries to join")
    size.add_argument("--join-coins", type=int, help="paid joins each user can afford")
    size.add_argument("--join-concurrency", type=int, help="joins in flight")
    parser.add_argument(
        "--join-processes",
        type=int,
        default=1,
        help="server processes the joins are spread over (default 1; "
        "the figures of the issue are one process's)",
    )
    parser.add_argument(
        "--rate-limits",
        choices=("off", "on"),
        default="off",
        help="CHAT_RATE_LIMITS of the servers (default off: a few addresses play thousands "
        "of users, which the per-user and per-address limits would refuse)",
    )
    parser.add_argument(
        "--room-hash-cost",
        type=int,
        default=4,
        help="bcrypt cost of the seeded room passwords that joins verify "
        "(rooms made through the API get the server's cost, 12)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="py-spy binary: profile the server during the e2e phase and print where its time goes",
    )
    parser.add_argument(
        "--server-dir",
        metavar="DIR",
        default=ROOT,
        help="run the server.py of another checkout (e.g. a worktree of an older commit) "
        "against this bench, for before/after figures",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the server and load-generator logs (kept anyway on errors)",
    )
    args = parser.parse_args(argv)
    for name, value in PROFILES["quick" if args.quick else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.join_processes < 1:
        parser.error("--join-processes must be at least 1")
    return args


def say(text=""):
    print(text, flush=True)


def raise_open_files(wanted=65536):
    """Enough descriptors for 10,000 sockets; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not values:
        return None
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def rnd(value, digits=1):
    return None if value is None else round(value, digits)


# --- processes -------------------------------------------------------------------------


class Processes:
    """Every process this run starts, stopped by pid at the end whatever happens."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv, env=None, **kw):
        path = os.path.join(self.workdir, name + ".log")
        with open(path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=kw.pop("cwd", ROOT),
                env=env,
                stderr=log,
                stdout=kw.pop("stdout", log),
                start_new_session=True,
                preexec_fn=raise_open_files,
                **kw,
            )
        proc.bench_name = name
        proc.bench_log = path
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=15):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in list(self.procs):
            self.stop(proc, timeout=5)


def log_tail(proc, lines=20):
    try:
        with open(proc.bench_log, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class CpuMeter:
    """Where the machine's CPU went over an interval, from /proc.

    Named processes (by pid) are reported by name; every other process that
    used at least 2 % of a core by its command name; ``softirq`` is kernel
    network and block work that no process is charged for; ``machine`` is
    everything that was not idle.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, named_pids):
        self.named = {pid: name for name, pid in named_pids.items() if pid}
        self.started_at = self.start = self.start_stat = None

    @classmethod
    def processes(cls):
        """{pid: (command, CPU seconds)} of every process."""
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            command = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 1 :].split()
            found[int(entry)] = (command, (int(fields[11]) + int(fields[12])) / cls.TICK)
        return found

    @classmethod
    def stat(cls):
        """(busy, softirq) CPU seconds of the whole machine."""
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / cls.TICK, fields[6] / cls.TICK

    def begin(self):
        self.started_at = time.monotonic()
        self.start = self.processes()
        self.start_stat = self.stat()

    def end(self):
        """Share of one core each process (and the whole machine) used since begin()."""
        wall = max(time.monotonic() - self.started_at, 1e-9)
        busy, softirq = self.stat()
        shares = {"machine": round((busy - self.start_stat[0]) / wall, 3)}
        others = {}
        for pid, (command, seconds) in self.processes().items():
            used = seconds - self.start[pid][1] if pid in self.start else seconds
            if pid in self.named:
                shares[self.named[pid]] = round(used / wall, 3)
            else:
                key = command.split("/")[0]
                others[key] = others.get(key, 0.0) + used
        shares["softirq"] = round((softirq - self.start_stat[1]) / wall, 3)
        for command, used in sorted(others.items(), key=lambda x: -x[1]):
            if used / wall >= 0.02:
                shares[command] = round(used / wall, 3)
        return shares

    def add(self, name, pid):
        self.named[pid] = name


def pid_of(*commands):
    """The pid of a running program by its command name (mariadbd, redis-server), or None."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() in commands:
                        return int(entry)
            except OSError:
                pass
    return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


# --- the database ----------------------------------------------------------------------


@dataclasses.dataclass
class Seeded:
    msg_rooms: list
    conn_rooms: list
    join_rooms: list
    join_users: list
    login_users: list


class BenchDatabase:
    def __init__(self, server_url):
        self.url = dataclasses.replace(server_url, database="chat_bench_" + secrets.token_hex(4))
        with open(os.path.join(BENCH, "bench.sql"), encoding="utf-8") as f:
            self.queries = sqlfile.parse(f.read(), "bench/bench.sql")
        self.created = False

    def connect(self, database=True):
        u = self.url
        return pymysql.connect(
            host=u.host,
            port=u.port,
            user=u.user,
            password=u.password,
            database=u.database if database else None,
            charset="utf8mb4",
            autocommit=True,
        )

    def create(self):
        self.created = True
        migrate.migrate(self.url, os.path.join(ROOT, "sql", "schema"), create_database=True)

    def drop(self):
        if not self.created:
            return
        conn = self.connect(database=False)
        try:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.url.database}`")
        finally:
            conn.close()

    def many(self, conn, name, rows):
        with conn.cursor() as cur:
            for i in range(0, len(rows), 2000):
                cur.executemany(self.queries[name].sql, rows[i : i + 2000])

    def _one_row(self, statement, database=True):
        conn = self.connect(database=database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchone()
        finally:
            conn.close()

    def count(self, name):
        return int(self._one_row(self.queries[name].sql)[0])

    def statements(self):
        """Statements the database server has run for its clients so far (all of them)."""
        return int(self._one_row("SHOW GLOBAL STATUS LIKE 'Questions'", database=False)[1])

    def version(self):
        return self._one_row("SELECT VERSION()", database=False)[0]

    def seed(self, args, rng):
        """Users, rooms and memberships for every phase, in bulk."""
        cheap = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
        room_hash = bcrypt.hashpw(
            ROOM_PASSWORD.encode(), bcrypt.gensalt(args.room_hash_cost)
        ).decode()
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        users, rooms, members, grants = [], [], [], []

        def user(user_id, prime=False, coins=0, free_join_used=False, password_hash=cheap):
            users.append(
                {
                    "user_id": user_id,
                    "device_id": "bench",
                    "name": user_id,
                    "phone": f"+1{len(users):010d}",
                    "password_hash": password_hash,
                    "avail_coins": coins,
                    "is_prime": prime,
                    "free_join_used": free_join_used,
                    "created_at": now,
                }
            )
            if coins:
                grants.append({"user_id": user_id, "delta": coins, "created_at": now})
            return user_id

        def room(prefix, index, member_ids, password_hash=cheap):
            room_id = base64.urlsafe_b64encode(rng.randbytes(12)).decode()
            rooms.append(
                {
                    "room_id": room_id,
                    "name": f"{prefix} {index}",
                    "owner_id": member_ids[0],
                    "password_hash": password_hash,
                    "member_count": len(member_ids),
                    "created_at": now,
                }
            )
            members.extend({"room_id": room_id, "user_id": m, "joined_at": now} for m in member_ids)
            return room_id, member_ids

        def full_rooms(prefix, sockets):
            made = []
            for r in range(math.ceil(sockets / ROOM_SIZE)):
                size = min(ROOM_SIZE, sockets - r * ROOM_SIZE)
                ids = [user(f"{prefix}{r}x{k}", prime=(k == 0)) for k in range(size)]
                made.append(room(prefix, r, ids))
            return made

        msg_rooms = full_rooms("m", args.rooms * ROOM_SIZE) if MSG_PHASES & set(args.phases) else []
        conn_rooms = full_rooms("c", args.conns) if "conns" in args.phases else []
        join_rooms, join_users = [], []
        if "joins" in args.phases:
            for r in range(args.join_rooms):
                owner = user(f"jo{r}", prime=True)
                join_rooms.append(room("j", r, [owner], password_hash=room_hash)[0])
            join_users = [
                user(f"ju{i}", coins=JOIN_PRICE * args.join_coins, free_join_used=True)
                for i in range(args.join_users)
            ]
        login_users = []
        if "http" in args.phases and args.login_users:
            costly = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
            login_users = [user(f"li{i}", password_hash=costly) for i in range(args.login_users)]
        conn = self.connect()
        try:
            self.many(conn, "seed_user", users)
            self.many(conn, "seed_room", rooms)
            self.many(conn, "seed_member", members)
            self.many(conn, "seed_grant", grants)
        finally:
            conn.close()
        return Seeded(msg_rooms, conn_rooms, join_rooms, join_users, login_users)


# --- servers and load generators ---------------------------------------------------------


class Bench:
    def __init__(self, args, workdir, procs, db):
        self.args = args
        self.workdir = workdir
        self.procs = procs
        self.db = db
        self.secret = secrets.token_urlsafe(48)
        self.tokens = TokenIssuer(self.secret, 86400)
        self._token_cache = {}
        self.rng = random.Random(args.seed + 1)
        self.mysqld = pid_of("mariadbd", "mysqld")
        self.redis = pid_of("redis-server")
        self.runs = 0

    def token(self, user_id):
        if user_id not in self._token_cache:
            self._token_cache[user_id] = self.tokens.issue(user_id)[0]
        return self._token_cache[user_id]

    def start_server(self, name, redis=False):
        port = free_port()
        u = self.db.url
        env = dict(
            os.environ,
            CHAT_PORT=str(port),
            CHAT_HOST="127.0.0.1",
            CHAT_DATABASE_URL=f"mysql://{u.user}:{u.password}@{u.host}:{u.port}/{u.database}",
            CHAT_JWT_SECRET=self.secret,
            CHAT_BCRYPT_ROUNDS="12",
            CHAT_RATE_LIMITS=self.args.rate_limits,
            # The seeded users get their prime and coins from the database, and the
            # WebSocket clients send no Origin: open sign-up keeps older phases working.
            CHAT_SIGNUP_GRANTS="open",
        )
        env.pop("CHAT_REDIS_URL", None)
        if redis:
            env["CHAT_REDIS_URL"] = self.args.redis_url
        server_py = os.path.join(self.args.server_dir, "server.py")
        proc = self.procs.start(
            name, [sys.executable, server_py], env=env, cwd=self.args.server_dir
        )
        proc.port = port
        wait_healthy(proc, port)
        return proc

    def start_ceiling(self, echo):
        port = free_port()
        argv = [sys.executable, os.path.join(BENCH, "ceiling.py"), f"--port={port}"]
        proc = self.procs.start("ceiling", argv + (["--echo-sender"] if echo else []))
        proc.port = port
        wait_healthy(proc, port)
        return proc

    def loadgens(self, specs, meter=None, measured=None, while_ready=None, py_spy=None):
        """Run one load generator per spec in step; returns their results and CPU shares.

        ``measured`` is (warmup, duration): ``meter`` and ``py_spy`` cover that window.
        ``while_ready`` is called once every load generator has connected (idle mode).
        """
        self.runs += 1
        started = []
        try:
            for i, spec in enumerate(specs):
                base = os.path.join(self.workdir, f"loadgen-{self.runs}-{i}")
                with open(base + ".spec.json", "w") as f:
                    json.dump(spec, f)
                proc = self.procs.start(
                    f"loadgen-{self.runs}-{i}",
                    [
                        sys.executable,
                        os.path.join(BENCH, "loadgen.py"),
                        base + ".spec.json",
                        base + ".result.json",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                proc.result_path = base + ".result.json"
                started.append(proc)
                if meter is not None:
                    meter.add(f"loadgen{i + 1}", proc.pid)
            ready = [expect(proc, "READY") for proc in started]
            shares, spy = None, None
            if while_ready is not None:
                while_ready(ready)
                tell(started, "STOP")
            else:
                tell(started, "GO")
                if measured is not None:
                    warmup, duration = measured
                    time.sleep(warmup)
                    if meter is not None:
                        meter.begin()
                    if py_spy is not None:
                        spy = py_spy(duration)
                    time.sleep(duration)
                    if meter is not None:
                        shares = meter.end()
            results = []
            for proc in started:
                expect(proc, "DONE")
                proc.wait(30)
                with open(proc.result_path) as f:
                    results.append(json.load(f))
            return ready, results, {"cpu": shares, "py_spy": spy}
        finally:
            for proc in started:
                self.procs.stop(proc, timeout=5)

    # --- WebSocket phases ---

    def ws_specs(self, mode, rooms, urls, **extra):
        """One spec per load generator; whole rooms go to one process, members alternate URLs."""
        count = max(1, min(self.args.loadgens, len(rooms)))
        specs = [
            dict(
                mode=mode,
                rooms=[],
                content_bytes=64,
                connect_concurrency=100,
                warmup=self.args.warmup,
                duration=self.args.duration,
                drain=30.0,
                **extra,
            )
            for _ in range(count)
        ]
        for i, (room_id, member_ids) in enumerate(rooms):
            specs[i % count]["rooms"].append(
                {
                    "roomId": room_id,
                    "members": [
                        {"userId": m, "token": self.token(m), "url": urls[k % len(urls)]}
                        for k, m in enumerate(member_ids)
                    ],
                }
            )
        for spec in specs:
            spec["open_files"] = sum(len(r["members"]) for r in spec["rooms"]) + 1024
        return specs

    def spy(self, pid, name):
        """With --py-spy: a callable that profiles ``pid`` for the measured window."""
        if not self.args.py_spy:
            return None
        return lambda duration: self.py_spy_start(pid, duration, name)

    def messaging(self, name, servers, rooms, mode, **extra):
        urls = [f"ws://127.0.0.1:{s.port}/api/ws" for s in servers]
        specs = self.ws_specs(mode, rooms, urls, **extra)
        named = {
            f"server{i + 1}" if len(servers) > 1 else "server": s.pid for i, s in enumerate(servers)
        }
        named.update(mysqld=self.mysqld, redis=self.redis if len(servers) > 1 else None)
        meter = CpuMeter(named)
        ready, results, extra_out = self.loadgens(
            specs,
            meter=meter,
            measured=(self.args.warmup, self.args.duration),
            py_spy=self.spy(servers[0].pid, name),
        )
        connected = sum(r["clients"] for r in ready)
        if connected == 0:
            errors = {}
            for r in ready:
                errors.update(r["connect_errors"])
            raise BenchError(f"{name}: no client could connect: {errors}")
        figures = merge_ws(results, self.args.duration)
        figures["connect_failed"] = sum(r["connect_failed"] for r in ready)
        figures["cpu"] = dict(extra_out["cpu"] or {})
        for i, r in enumerate(results):
            figures["cpu"][f"loadgen{i + 1}"] = round(r["cpu_s"] / self.args.duration, 3)
        figures["py_spy"] = extra_out["py_spy"]
        return figures

    def py_spy_start(self, pid, duration, name):
        out = os.path.join(self.workdir, f"py-spy-{name}.txt")
        proc = self.procs.start(
            f"py-spy-{name}",
            [
                self.args.py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(duration)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                out,
            ],
        )
        proc.output = out
        return proc

    # --- HTTP phases ---

    def http(self, name, servers, requests, concurrency, burst=False):
        """Send ``requests`` over ``concurrency`` keep-alive connections, spread over ``servers``.

        One load generator per server; their counts are added up, their
        latencies pooled, and a burst's window is the longest of theirs.
        """
        count = len(servers)
        specs = [
            dict(
                mode="http",
                host="127.0.0.1",
                port=server.port,
                requests=requests[i::count],
                concurrency=max(1, concurrency // count),
                burst=burst,
                warmup=1.0,
                duration=self.args.http_duration,
                open_files=concurrency + 256,
            )
            for i, server in enumerate(servers)
        ]
        named = {
            "server" if count == 1 else f"server{i + 1}": server.pid
            for i, server in enumerate(servers)
        }
        meter = CpuMeter(dict(named, mysqld=self.mysqld))
        measured = None if burst else (1.0, self.args.http_duration)
        if burst:
            meter.begin()
        ready, results, extra = self.loadgens(
            specs,
            meter=meter,
            measured=measured,
            py_spy=None if burst else self.spy(servers[0].pid, name),
        )
        result = dict(
            completed=sum(r["completed"] for r in results),
            paid=sum(r["paid"] for r in results),
            window_s=max(r["window_s"] for r in results),
            statuses=dict(
                sum((collections.Counter(r["statuses"]) for r in results), collections.Counter())
            ),
            latencies_ms=[x for r in results for x in r["latencies_ms"]],
            py_spy=extra["py_spy"],
        )
        cpu = meter.end() if burst else dict(extra["cpu"] or {})
        for i, r in enumerate(results):
            cpu[f"loadgen{i + 1}"] = round(r["cpu_s"] / max(r["window_s"], 1e-9), 3)
        result["cpu"] = cpu
        return result


def tell(procs, word):
    for proc in procs:
        proc.stdin.write(word + "\n")
        proc.stdin.flush()


def expect(proc, word):
    line = proc.stdout.readline()
    if not line.startswith(word):
        raise BenchError(
            f"{proc.bench_name} said {line.strip()!r} instead of {word}\n" + log_tail(proc)
        )
    rest = line[len(word) :].strip()
    return json.loads(rest) if rest else None


def wait_healthy(proc, port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.bench_name} exited with {proc.returncode}:\n" + log_tail(proc))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{proc.bench_name} was not healthy after {timeout} s:\n" + log_tail(proc))


def merge_ws(results, duration):
    """Figures of one WebSocket phase, summed over its load generators."""
    total = {
        k: sum(r[k] for r in results)
        for k in (
            "clients",
            "sent",
            "acked",
            "unacked",
            "acks",
            "deliveries",
            "lost",
            "duplicated",
            "out_of_order",
            "seq_errors",
            "self_echo",
            "closed",
        )
    }
    errors = {}
    for r in results:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    acks = sorted(x for r in results for x in r["ack_latencies_ms"])
    refused = sorted(x for r in results for x in r.get("refused_latencies_ms", ()))
    total["refused"] = sum(r.get("refused", 0) for r in results)
    total.update(
        msgs_per_s=total["acks"] / duration,
        deliveries_per_s=total["deliveries"] / duration,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else None,
        ack_p50_ms=percentile(acks, 50),
        ack_p99_ms=percentile(acks, 99),
        refused_p50_ms=percentile(refused, 50),
        refused_p99_ms=percentile(refused, 99),
        refused_in_window=len(refused),
        error_frames=errors,
    )
    total["faults"] = (
        total["lost"]
        + total["duplicated"]
        + total["out_of_order"]
        + total["seq_errors"]
        + total["unacked"]
        + total["closed"]
        + sum(errors.values())
        - total["refused"]  # refusals are answers, not faults (the overload phase wants them)
    )
    return total


def py_spy_summary(proc, top=15):
    """The functions where the server spent its samples: self and inclusive shares."""
    proc.wait(60)
    if not os.path.exists(proc.output):
        return None
    own, inclusive, total = {}, {}, 0
    with open(proc.output) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return None

    def short(frame):
        return frame.replace(ROOT + "/", "").replace(sys.prefix + "/lib/", "")

    return {
        "samples": total,
        "file": proc.output,
        "self": [
            (short(f), round(n / total, 3))
            for f, n in sorted(own.items(), key=lambda x: -x[1])[:top]
        ],
        # Frames in nearly every sample (the event loop's own) say nothing.
        "inclusive": [
            (short(f), round(n / total, 3))
            for f, n in sorted(inclusive.items(), key=lambda x: -x[1])
            if n < 0.9 * total
        ][: top * 2],
    }


# --- the phases ------------------------------------------------------------------------


def phase_http(bench, server, seeded, report):
    args = bench.args
    logins = [
        ["POST", "/api/login", None, {"userId": u, "password": PASSWORD}]
        for u in seeded.login_users
    ]
    if logins:
        r = bench.http("logins", [server], logins, args.login_concurrency)
        ok = r["statuses"].get("200", 0)
        report.figure(
            "logins_per_s",
            ok / r["window_s"],
            r,
            faults=r["completed"] - ok,
            extra={"login_p50_ms": percentile(sorted(r["latencies_ms"]), 50)},
        )
    users = [m for _, members in seeded.msg_rooms for m in members]
    gets = [
        ["GET", f"/api/profile/{bench.rng.choice(users)}", bench.token(u), None]
        for u in bench.rng.sample(users, min(len(users), 500))
    ]
    r = bench.http("profile_gets", [server], gets, args.http_concurrency)
    ok = r["statuses"].get("200", 0)
    lat = sorted(r["latencies_ms"])
    report.figure(
        "profile_gets_per_s",
        ok / r["window_s"],
        r,
        faults=r["completed"] - ok,
        extra={"profile_p50_ms": percentile(lat, 50), "profile_p99_ms": percentile(lat, 99)},
    )


def phase_e2e(bench, server, seeded, report):
    f = bench.messaging("e2e", [server], seeded.msg_rooms, "ws-closed", window=bench.args.window)
    report.ws("e2e", f)
    report.values.update(
        e2e_msgs_per_s=rnd(f["msgs_per_s"]),
        e2e_deliveries_per_s=rnd(f["deliveries_per_s"]),
        latency_p50_ms=rnd(f["p50_ms"], 2),
        latency_p99_ms=rnd(f["p99_ms"], 2),
        e2e_ack_p50_ms=rnd(f["ack_p50_ms"], 2),
        e2e_self_echo=f["self_echo"] > 0,
    )
    return f


def phase_e2e_http(bench, server, seeded, report):
    """The e2e rooms and window, each message sent by ``POST /api/messages`` (keep-alive)."""
    f = bench.messaging(
        "e2e_http", [server], seeded.msg_rooms, "ws-closed", window=bench.args.window, via="http"
    )
    report.ws("e2e_http", f)
    report.values.update(
        e2e_http_msgs_per_s=rnd(f["msgs_per_s"]),
        e2e_http_ack_p50_ms=rnd(f["ack_p50_ms"], 2),
        e2e_http_ack_p99_ms=rnd(f["ack_p99_ms"], 2),
        e2e_http_latency_p99_ms=rnd(f["p99_ms"], 2),
    )
    return f


def phase_overload(bench, server, seeded, report, capacity):
    """Open loop at OVERLOAD_FACTOR x the closed-loop capacity of this run, over HTTP and WebSocket.

    ``capacity``: {"http": msgs/s, "ws": msgs/s} measured by e2e_http / e2e.
    Goodput is messages stored per second over that capacity; latency is
    from each message's scheduled send (so a late send counts against the
    server) to its answer: p99 of the accepted ones, and of the refusals.
    """
    count = max(1, min(bench.args.loadgens, len(seeded.msg_rooms)))
    for via, key in (("http", "overload"), ("ws", "overload_ws")):
        base = capacity.get(via)
        if not base:
            report.notes[key] = f"no closed-loop {via} capacity measured: skipped"
            continue
        rate = OVERLOAD_FACTOR * base
        extra = {"via": "http"} if via == "http" else {}
        f = bench.messaging(
            f"overload_{via}", [server], seeded.msg_rooms, "ws-open", rate=rate / count, **extra
        )
        report.ws(f"overload_{via}", f)
        answered = f["acks"] + f["refused_in_window"]
        report.values.update(
            {
                f"{key}_rate": rnd(rate),
                f"{key}_msgs_per_s": rnd(f["msgs_per_s"]),
                f"{key}_goodput_ratio": rnd(f["msgs_per_s"] / base, 3),
                f"{key}_p50_ms": rnd(f["ack_p50_ms"], 2),
                f"{key}_p99_ms": rnd(f["ack_p99_ms"], 2),
                f"{key}_refused_p99_ms": rnd(f["refused_p99_ms"], 2),
                f"{key}_refused_share": rnd(f["refused_in_window"] / answered, 3)
                if answered
                else None,
            }
        )


def phase_open(bench, server, seeded, report):
    count = max(1, min(bench.args.loadgens, len(seeded.msg_rooms)))
    f = bench.messaging("open", [server], seeded.msg_rooms, "ws-open", rate=bench.args.rate / count)
    report.ws("open", f)
    # Below the offered rate the server fell behind: latency is then queueing.
    overloaded = f["msgs_per_s"] < 0.95 * bench.args.rate
    report.values.update(
        open_loop_msgs_per_s=rnd(f["msgs_per_s"]),
        open_loop_p50_ms=rnd(f["p50_ms"], 2),
        open_loop_p99_ms=rnd(f["p99_ms"], 2),
        open_loop_rate=bench.args.rate,
        open_loop_overloaded=overloaded,
    )
    if overloaded:
        report.notes["open"] = (
            f"overloaded: the server stored {f['msgs_per_s']:.0f} of the "
            f"{bench.args.rate:.0f} messages/s offered, so its latency "
            "is mostly time spent queueing"
        )


def phase_joins(bench, server, seeded, report):
    args = bench.args
    attempts = []
    for user_id in seeded.join_users:
        for room_id in bench.rng.sample(
            seeded.join_rooms, min(args.join_tries, len(seeded.join_rooms))
        ):
            attempts.append(
                [
                    "POST",
                    "/api/joinroom",
                    bench.token(user_id),
                    {"roomId": room_id, "password": ROOM_PASSWORD},
                ]
            )
    bench.rng.shuffle(attempts)
    servers = [server] + [
        bench.start_server(f"server-joins-{i + 2}") for i in range(args.join_processes - 1)
    ]
    try:
        before = bench.db.statements()
        r = bench.http("joins", servers, attempts, args.join_concurrency, burst=True)
        statements = bench.db.statements() - before - 1
    finally:
        for extra in servers[1:]:
            bench.procs.stop(extra)
    checks = {
        name: bench.db.count(name)
        for name in (
            "count_overfull_rooms",
            "count_negative_balances",
            "count_ledger_mismatches",
            "count_double_charges",
        )
    }
    paid_in_db = bench.db.count("count_paid_memberships")
    violations = sum(checks.values()) + abs(paid_in_db - r["paid"])
    unexpected = sum(n for code, n in r["statuses"].items() if code not in ("200", "402", "409"))
    report.figure(
        "paid_joins_per_s",
        r["paid"] / r["window_s"],
        r,
        faults=unexpected,
        extra={
            "join_attempts_per_s": rnd(r["completed"] / r["window_s"]),
            "join_statuses": r["statuses"],
            "join_room_hash_cost": args.room_hash_cost,
            "join_statements_per_attempt": rnd(statements / len(attempts), 2),
            "join_processes": args.join_processes,
            "overbooked": violations,
        },
    )
    report.notes["joins"] = (
        f"{len(attempts)} attempts, {r['paid']} paid, "
        f"statuses {r['statuses']}, checks {checks}, "
        f"paid memberships in the database {paid_in_db}"
    )
    # The same requests over as many connections, answered by Tornado doing nothing else;
    # three times over, as it answers them about three times as fast.
    ceiling = bench.start_ceiling(echo=False)
    try:
        c = bench.http("join_ceiling", [ceiling], attempts * 3, args.join_concurrency, burst=True)
    finally:
        bench.procs.stop(ceiling)
    report.figure(
        "join_ceiling_per_s",
        c["completed"] / c["window_s"],
        c,
        faults=c["completed"] - c["statuses"].get("200", 0),
    )
    report.values["joins_vs_ceiling"] = rnd(
        r["completed"] / r["window_s"] / report.values["join_ceiling_per_s"], 3
    )


def phase_ceiling(bench, seeded, report, echo):
    server = bench.start_ceiling(echo)
    try:
        f = bench.messaging(
            "ceiling", [server], seeded.msg_rooms, "ws-closed", window=bench.args.window
        )
    finally:
        bench.procs.stop(server)
    report.ws("ceiling", f)
    report.values.update(
        ceiling_msgs_per_s=rnd(f["msgs_per_s"]),
        ceiling_deliveries_per_s=rnd(f["deliveries_per_s"]),
        ceiling_p50_ms=rnd(f["p50_ms"], 2),
    )


def phase_conns(bench, seeded, report):
    server = bench.start_server("server-conns")
    try:
        # Let the process settle after start-up (pool, imports) before the baseline.
        time.sleep(1.0)
        before = rss_kib(server.pid)
        urls = [f"ws://127.0.0.1:{server.port}/api/ws"]
        specs = bench.ws_specs("ws-idle", seeded.conn_rooms, urls)
        for spec in specs:
            spec["connect_concurrency"] = 200
        seen = {}

        def measure(ready):
            connected = sum(r["clients"] for r in ready)
            seen["connect_s"] = max(r["connect_s"] for r in ready)
            seen["failed"] = sum(r["connect_failed"] for r in ready)
            seen["errors"] = [r["connect_errors"] for r in ready if r["connect_errors"]]
            time.sleep(2.0)  # idle: let writes drain and the loop go quiet
            seen["rss"] = rss_kib(server.pid)
            seen["connected"] = connected

        ready, results, _ = bench.loadgens(specs, while_ready=measure)
    finally:
        bench.procs.stop(server)
    still_open = sum(r["open"] for r in results)
    if still_open == 0:
        raise BenchError(f"conns: no socket connected: {seen.get('errors')}")
    delta = seen["rss"] - before
    per = delta / still_open
    faults = seen["failed"] + (seen["connected"] - still_open) + sum(r["closed"] for r in results)
    report.values.update(
        conn_count=still_open,
        conn_rss_kib=rnd(per, 2),
        conn_rss_before_kib=before,
        conn_rss_after_kib=seen["rss"],
        conn_connect_s=seen["connect_s"],
    )
    report.flag_if(
        "conn_rss_kib",
        faults,
        f"{seen['failed']} failed to connect, "
        f"{seen['connected'] - still_open} closed while idle ({seen['errors']})",
    )
    report.rows.append(
        (
            "conns",
            f"{still_open} idle sockets",
            f"{per:.2f} KiB/socket",
            f"RSS {before} -> {seen['rss']} KiB; connected in {seen['connect_s']:.1f} s",
        )
    )


def phase_two(bench, seeded, report):
    servers = [
        bench.start_server("server-two-1", redis=True),
        bench.start_server("server-two-2", redis=True),
    ]
    try:
        f = bench.messaging("two", servers, seeded.msg_rooms, "ws-closed", window=bench.args.window)
    finally:
        for s in servers:
            bench.procs.stop(s)
    report.ws("two", f)
    report.values.update(
        two_process_msgs_per_s=rnd(f["msgs_per_s"]),
        two_process_deliveries_per_s=rnd(f["deliveries_per_s"]),
        two_process_p50_ms=rnd(f["p50_ms"], 2),
        two_process_p99_ms=rnd(f["p99_ms"], 2),
    )


# --- the report ------------------------------------------------------------------------


class Report:
    WS_FIGURES = {
        "e2e": ("e2e_msgs_per_s", "e2e_deliveries_per_s", "latency_p50_ms", "latency_p99_ms"),
        "open": ("open_loop_p50_ms", "open_loop_p99_ms"),
        "e2e_http": ("e2e_http_msgs_per_s",),
        "overload_http": ("overload_goodput_ratio", "overload_p99_ms", "overload_refused_p99_ms"),
        "overload_ws": ("overload_ws_goodput_ratio", "overload_ws_p99_ms"),
        "ceiling": ("ceiling_deliveries_per_s",),
        "two": ("two_process_msgs_per_s",),
    }

    def __init__(self):
        self.values = {}
        self.rows = []
        self.flagged = {}
        self.failed = {}
        self.notes = {}
        self.cpu = {}
        self.faults = {}
        self.py_spy = {}

    def flag_if(self, figure, faults, why):
        if faults:
            self.flagged[figure] = why

    def profiled(self, name, result):
        if result.get("py_spy") is not None:
            summary = py_spy_summary(result["py_spy"])
            if summary:
                self.py_spy[name] = summary

    def figure(self, name, value, result, faults=0, extra=None):
        self.profiled(name, result)
        self.values[name] = rnd(value)
        self.values.update(extra or {})
        self.cpu[name] = result["cpu"]
        self.flag_if(name, faults, f"statuses {result['statuses']}")
        lat = sorted(result["latencies_ms"])
        self.rows.append(
            (
                name,
                f"{result['completed']} in {result['window_s']:.1f} s",
                f"{value:,.1f}/s",
                f"p50 {percentile(lat, 50)} ms, p99 {percentile(lat, 99)} ms; "
                f"statuses {result['statuses']}",
            )
        )

    def ws(self, phase, f):
        self.profiled(phase, f)
        self.cpu[phase] = f["cpu"]
        self.faults[phase] = {
            k: f[k]
            for k in (
                "lost",
                "duplicated",
                "out_of_order",
                "seq_errors",
                "unacked",
                "closed",
                "connect_failed",
            )
        }
        self.faults[phase]["error_frames"] = f["error_frames"]
        faults = f["faults"] + f["connect_failed"]
        for figure in self.WS_FIGURES.get(phase, ()):
            self.flag_if(figure, faults, f"{phase}: " + json.dumps(self.faults[phase]))
        self.rows.append(
            (
                phase,
                f"{f['clients']} clients",
                f"{f['msgs_per_s']:,.0f} msgs/s, {f['deliveries_per_s']:,.0f} deliv/s",
                f"latency p50 {f['p50_ms']} p99 {f['p99_ms']} max {f['max_ms']} ms; "
                f"ack p50 {f['ack_p50_ms']} ms; faults {faults}",
            )
        )

    def finish(self, args, machine):
        v = self.values
        real = [
            p
            for p in ("e2e", "e2e_http", "open", "overload_http", "overload_ws", "two")
            if p in self.faults
        ]
        for key in ("lost", "duplicated", "out_of_order"):
            v[key] = sum(self.faults[p][key] for p in real) if real else None
        if v.get("e2e_deliveries_per_s") is not None and v.get("ceiling_deliveries_per_s"):
            v["e2e_vs_ceiling"] = round(
                v["e2e_deliveries_per_s"] / v["ceiling_deliveries_per_s"], 3
            )
        shares = [
            share
            for cpu in self.cpu.values()
            for name, share in (cpu or {}).items()
            if name.startswith("loadgen")
        ]
        v["loadgen_cpu_share"] = max(shares) if shares else None
        for key in (
            "e2e_msgs_per_s",
            "e2e_deliveries_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "lost",
            "duplicated",
            "out_of_order",
            "ceiling_deliveries_per_s",
            "e2e_vs_ceiling",
            "conn_count",
            "conn_rss_kib",
            "paid_joins_per_s",
            "overbooked",
            "logins_per_s",
            "profile_gets_per_s",
            "two_process_msgs_per_s",
            "open_loop_p50_ms",
            "open_loop_p99_ms",
        ):
            v.setdefault(key, None)
        v["flagged"] = self.flagged
        v["failed"] = self.failed
        v["cpu"] = self.cpu
        v["faults"] = self.faults
        v["sizes"] = "quick" if args.quick else "full"
        v["options"] = {
            name: value
            for name, value in vars(args).items()
            if name not in ("database_url", "redis_url")
        }
        v["machine"] = machine
        return v


def redis_version(url):
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            return client.info("server")["redis_version"]
        finally:
            client.close()
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


def machine_info(db, redis_url):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": model,
        "python": sys.version.split()[0],
        "database": db.version(),
        "redis": redis_version(redis_url),
    }


def meets(value, target):
    op, bound = target
    if value is None:
        return None
    return {">=": value >= bound, "<=": value <= bound, "==": value == bound}[op]


def print_report(report, values):
    say()
    say(f"{'phase':<18} | {'load':<22} | {'result':<31} | detail")
    say(f"{'':-<18}-+-{'':-<22}-+-{'':-<31}-+-------")
    for phase, load, result, detail in report.rows:
        say(f"{phase:<18} | {load:<22} | {result:<31} | {detail}")
    say()
    say(
        f"CPU, share of one core during each measured window ({os.cpu_count()} cores; "
        "machine = all processes):"
    )
    for phase, cpu in report.cpu.items():
        say(f"  {phase:<20} " + ", ".join(f"{k} {v:.0%}" for k, v in (cpu or {}).items()))
    share = values.get("loadgen_cpu_share")
    if share is not None:
        verdict = (
            "it may be the bottleneck: try more --loadgens"
            if share >= 0.85
            else "not the bottleneck"
        )
        say(f"Busiest load generator: {share:.0%} of one core ({verdict}).")
    for phase, cpu in report.cpu.items():
        foreign = {k: v for k, v in (cpu or {}).items() if not k.startswith(OWN_PROCESSES)}
        if sum(foreign.values()) >= 0.1:
            say(
                f"WARNING: during {phase}, other processes used CPU ({foreign}): "
                "its figures are lower than this machine can do"
            )
    for phase, note in report.notes.items():
        say(f"{phase}: {note}")
    for name, spy in report.py_spy.items():
        say()
        say(f"Server profile during {name} (py-spy, {spy['samples']} samples, {spy['file']}):")
        say("  self time:")
        for frame, share in spy["self"]:
            say(f"    {share:6.1%}  {frame}")
        say("  inclusive:")
        for frame, share in spy["inclusive"]:
            say(f"    {share:6.1%}  {frame}")
    say()
    say("figure                      value        target   ")
    for key, target in TARGETS.items():
        value = values.get(key)
        ok = meets(value, target)
        mark = {True: "ok", False: "MISSED", None: "-"}[ok]
        if key in report.flagged:
            mark = "FLAGGED (does not count)"
        say(f"  {key:<26}{str(value):<13}{target[0]} {target[1]:<8} {mark}")
    for figure, why in report.flagged.items():
        say(f"FLAGGED {figure}: {why}")
    for phase, why in report.failed.items():
        say(f"FAILED {phase}: {why}")
    say()


def run(args, workdir, procs):
    raise_open_files()
    db = BenchDatabase(settings_module.DatabaseUrl.parse(args.database_url))
    report = Report()
    try:
        say(
            f"bench: database {db.url.database}, phases {','.join(args.phases)}, "
            f"{'quick' if args.quick else 'full'} profile, logs in {workdir}"
        )
        db.create()
        started = time.monotonic()
        seeded = db.seed(args, random.Random(args.seed))
        say(f"bench: seeded in {time.monotonic() - started:.1f} s")
        machine = machine_info(db, args.redis_url)
        bench = Bench(args, workdir, procs, db)

        def attempt(name, fn, *a):
            if name not in args.phases:
                return None
            say(f"bench: {name} ...")
            t = time.monotonic()
            try:
                result = fn(*a)
            except BenchError as exc:
                report.failed[name] = str(exc)
                say(f"bench: {name} FAILED: {exc}")
                return None
            say(f"bench: {name} done in {time.monotonic() - t:.1f} s")
            return result

        if {"http", "e2e", "e2e_http", "open", "overload", "joins"} & set(args.phases):
            server = bench.start_server("server")
            try:
                attempt("http", phase_http, bench, server, seeded, report)
                e2e = attempt("e2e", phase_e2e, bench, server, seeded, report)
                e2e_http = attempt("e2e_http", phase_e2e_http, bench, server, seeded, report)
                attempt("open", phase_open, bench, server, seeded, report)
                capacity = {
                    "http": e2e_http["msgs_per_s"] if e2e_http else None,
                    "ws": e2e["msgs_per_s"] if e2e else None,
                }
                attempt("overload", phase_overload, bench, server, seeded, report, capacity)
                attempt("joins", phase_joins, bench, server, seeded, report)
            finally:
                procs.stop(server)
        else:
            e2e = None
        # The ceiling echoes each message to its sender when the server does
        # (as the API says it does: every subscribed socket receives it).
        echo = bool(e2e["self_echo"]) if e2e else True
        attempt("ceiling", phase_ceiling, bench, seeded, report, echo)
        attempt("conns", phase_conns, bench, seeded, report)
        attempt("two", phase_two, bench, seeded, report)
        values = report.finish(args, machine)
        values["elapsed_s"] = round(time.monotonic() - started, 1)
        print_report(report, values)
        return values
    finally:
        procs.stop_all()
        db.drop()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = tempfile.mkdtemp(prefix="chat-bench-")
    procs = Processes(workdir)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    # Installed explicitly: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)
    values, ok, keep = None, False, False
    say(f"bench: rate limits {args.rate_limits} (CHAT_RATE_LIMITS={args.rate_limits})")
    try:
        values = run(args, workdir, procs)
        values["rate_limits"] = args.rate_limits
        ok = not values["failed"]
        keep = bool(values["flagged"])
    except KeyboardInterrupt:
        values = {"error": "interrupted"}
    except (BenchError, pymysql.MySQLError, OSError) as exc:
        values = {"error": str(exc)}
    finally:
        procs.stop_all()
    if ok and not (keep or args.keep_logs or args.py_spy):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"bench: logs kept in {workdir}")
    # The last line is always the one JSON object.
    print(json.dumps(values, separators=(",", ":")), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
