"""The phases of ``make bench``: the servers and load generators each one drives."""

import collections
import json
import os
import random
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from bench.processes import (
    BENCH,
    BenchError,
    CpuMeter,
    expect,
    free_port,
    percentile,
    pid_of,
    rnd,
    rss_kib,
    tell,
    wait_healthy,
)
from bench.seeding import PASSWORD, ROOM_PASSWORD, session_id
from chat.auth.tokens import TokenIssuer

PHASES = (
    "http",
    "e2e",
    "e2e_http",
    "open",
    "overload",
    "stuck",
    "joins",
    "ceiling",
    "conns",
    "two",
)


# The overload phase offers this multiple of the closed-loop capacity measured in the same run.
OVERLOAD_FACTOR = 1.5
# The stuck phase: how long another client holds one room's row lock, and
# how many messages that room's member sends meanwhile.
STUCK_SECONDS = 4.0
STUCK_SENDS = 5
STUCK_SEND_GAP = 0.2


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
            self._token_cache[user_id] = self.tokens.issue(user_id, session_id(user_id))[0]
        return self._token_cache[user_id]

    def start_server(self, name, redis=False, **env_extra):
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
        env.update(env_extra)
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

    def loadgens(
        self, specs, meter=None, measured=None, while_ready=None, py_spy=None, at_start=None
    ):
        """Run one load generator per spec in step; returns their results and CPU shares.

        ``measured`` is (warmup, duration): ``meter`` and ``py_spy`` cover that
        window, and ``at_start(duration)`` is called as it begins.
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
                    if at_start is not None:
                        at_start(duration)
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

    def ws_specs(self, mode, rooms, urls, duration=None, **extra):
        """One spec per load generator; whole rooms go to one process, members alternate URLs."""
        count = max(1, min(self.args.loadgens, len(rooms)))
        specs = [
            dict(
                mode=mode,
                rooms=[],
                content_bytes=64,
                connect_concurrency=100,
                warmup=self.args.warmup,
                duration=duration or self.args.duration,
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

    def messaging(self, name, servers, rooms, mode, at_start=None, duration=None, **extra):
        """Run WebSocket load generators on ``rooms``; ``duration`` defaults to ``--duration``."""
        duration = duration or self.args.duration
        urls = [f"ws://127.0.0.1:{s.port}/api/ws" for s in servers]
        specs = self.ws_specs(mode, rooms, urls, duration, **extra)
        named = {
            f"server{i + 1}" if len(servers) > 1 else "server": s.pid for i, s in enumerate(servers)
        }
        named.update(mysqld=self.mysqld, redis=self.redis if len(servers) > 1 else None)
        meter = CpuMeter(named)
        ready, results, extra_out = self.loadgens(
            specs,
            meter=meter,
            measured=(self.args.warmup, duration),
            py_spy=self.spy(servers[0].pid, name),
            at_start=at_start,
        )
        connected = sum(r["clients"] for r in ready)
        if connected == 0:
            errors = {}
            for r in ready:
                errors.update(r["connect_errors"])
            raise BenchError(f"{name}: no client could connect: {errors}")
        figures = merge_ws(results, duration)
        figures["connect_failed"] = sum(r["connect_failed"] for r in ready)
        figures["cpu"] = dict(extra_out["cpu"] or {})
        for i, r in enumerate(results):
            figures["cpu"][f"loadgen{i + 1}"] = round(r["cpu_s"] / duration, 3)
        figures["loop_late_ms"] = loop_late(results)
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

    def hold_room_lock(self, port, room_id, user_id, seconds, statuses):
        """Another database client holds ``room_id``'s row lock for ``seconds``.

        Meanwhile the room's member sends STUCK_SENDS messages to it over
        HTTP, STUCK_SEND_GAP apart (they wait for the lock); their statuses
        are counted in ``statuses``.
        """
        conn = self.db.connect()
        try:
            conn.begin()
            with conn.cursor() as cur:
                cur.execute("SELECT room_id FROM rooms WHERE room_id = %s FOR UPDATE", (room_id,))
            senders = [
                threading.Thread(
                    target=self._send_one, args=(port, room_id, user_id, i, statuses), daemon=True
                )
                for i in range(STUCK_SENDS)
            ]
            # One at a time, so that they reach separate batches of the writer.
            for t in senders:
                t.start()
                time.sleep(STUCK_SEND_GAP)
            time.sleep(seconds - STUCK_SEND_GAP * len(senders))
            conn.rollback()
            for t in senders:
                t.join(30)
        finally:
            conn.close()

    def _send_one(self, port, room_id, user_id, n, statuses):
        body = json.dumps({"roomId": room_id, "content": f"waits for the lock {n}"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/messages",
            data=body,
            headers={
                "Authorization": "Bearer " + self.token(user_id),
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                statuses[resp.status] += 1
        except urllib.error.HTTPError as exc:
            statuses[exc.code] += 1
        except OSError:
            statuses["no answer"] += 1

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
        result["loop_late_ms"] = loop_late(results)
        return result


def loop_late(results):
    """Each load generator's loop lateness (p50, p99, max ms), by the CPU table's names."""
    return {
        f"loadgen{i + 1}": r["loop_late_ms"] for i, r in enumerate(results) if r.get("loop_late_ms")
    }


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


def phase_stuck(bench, server, seeded, report):
    """Other rooms' messages while another client holds one room's row lock.

    An open loop at ``--rate`` over every room but the first; as the
    measured window begins, a database client locks the first room's row
    for STUCK_SECONDS while its member sends it STUCK_SENDS messages over
    HTTP. ``stuck_p99_ms``: the other rooms' acks, p99 over the window (set
    to STUCK_SECONDS), from each message's scheduled send.
    """
    (room_id, members), *others = seeded.msg_rooms
    count = max(1, min(bench.args.loadgens, len(others)))
    statuses = collections.Counter()
    holders = []

    def lock(duration):
        holder = threading.Thread(
            target=bench.hold_room_lock,
            args=(server.port, room_id, members[0], STUCK_SECONDS, statuses),
            daemon=True,
        )
        holder.start()
        holders.append(holder)

    f = bench.messaging(
        "stuck",
        [server],
        others,
        "ws-open",
        at_start=lock,
        duration=STUCK_SECONDS,
        rate=bench.args.rate / count,
    )
    for holder in holders:
        holder.join(60)
    report.ws("stuck", f)
    report.values.update(
        stuck_rate=rnd(bench.args.rate),
        stuck_msgs_per_s=rnd(f["msgs_per_s"]),
        stuck_p50_ms=rnd(f["ack_p50_ms"], 2),
        stuck_p99_ms=rnd(f["ack_p99_ms"], 2),
        stuck_locked_room_statuses={str(k): v for k, v in statuses.items()},
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
