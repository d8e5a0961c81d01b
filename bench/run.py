"""`make bench`: the chat server measured end to end, beside a bare ceiling, in one run.

    python -m bench.run [--quick] [--phases=http,e2e,e2e_http,open,overload,stuck,joins,...]

Creates a fresh database (``chat_bench_<random>``, dropped at the end), seeds it
in bulk through SQL, starts ``server.py`` as a subprocess on it, drives it from
separate load-generator processes (``bench/loadgen.py``) over loopback, stops
everything it started (on errors and Ctrl-C too) and prints a table. The last
line printed is one JSON object with every figure.

Phases (each one can be chosen with ``--phases``):

http     logins/s against users hashed at cost 12 (server at CHAT_BCRYPT_ROUNDS=12),
         then authenticated ``GET /api/profile/{id}``/s, on keep-alive connections.
e2e      capacity: rooms of 6 subscribed clients, each keeping ``--window``
         messages in flight; stored messages/s, deliveries/s, latency p50/p99.
         e2e and e2e_http run on a server of their own with admission control
         off (CHAT_QUEUE_DELAY_MS=60000); every other phase on the default.
e2e_http the e2e rooms, each message sent with ``POST /api/messages`` on a
         keep-alive connection (sockets still receive): ``e2e_http_msgs_per_s``.
open     the same rooms at a fixed ``--rate`` of messages/s: latency p50/p99.
overload open loop at 1.5x the closed-loop capacity measured in this run, over
         HTTP (1.5 x e2e_http) and over WebSocket (1.5 x e2e): goodput (stored
         msgs/s / capacity), p99 of accepted messages, p99 time to a refusal
         (``503 overloaded``): ``overload_goodput_ratio``, ``overload_p99_ms``,
         ``overload_refused_p99_ms``, and ``overload_ws_*`` likewise.
stuck    the open loop at ``--rate`` over all rooms but one, while another
         database client holds that room's row lock for 4 s and its member
         sends to it: the other rooms' ack p99 (``stuck_p99_ms``).
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
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

import pymysql

import settings as settings_module
from bench.phases import (
    PHASES,
    Bench,
    phase_ceiling,
    phase_conns,
    phase_e2e,
    phase_e2e_http,
    phase_http,
    phase_joins,
    phase_open,
    phase_overload,
    phase_stuck,
    phase_two,
)
from bench.processes import ROOT, BenchError, Processes, raise_open_files, say
from bench.report import Report, machine_info, print_report
from bench.seeding import BenchDatabase

# The queueing bound of the capacity server: a minute, admission control off.
CAPACITY_QUEUE_DELAY_MS = 60_000

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

        e2e = e2e_http = None
        if {"e2e", "e2e_http"} & set(args.phases):
            # Capacity: the most the server stores per second. Admission
            # control is off here (a bound of a minute): with it, a closed
            # loop of more messages in flight than the server answers within
            # the bound is partly refused, and its figure would measure the
            # load generator's wait before it retries, not the server.
            server = bench.start_server(
                "capacity", CHAT_QUEUE_DELAY_MS=str(CAPACITY_QUEUE_DELAY_MS)
            )
            try:
                e2e = attempt("e2e", phase_e2e, bench, server, seeded, report)
                e2e_http = attempt("e2e_http", phase_e2e_http, bench, server, seeded, report)
            finally:
                procs.stop(server)
        if {"http", "open", "overload", "stuck", "joins"} & set(args.phases):
            server = bench.start_server("server")
            try:
                attempt("http", phase_http, bench, server, seeded, report)
                attempt("open", phase_open, bench, server, seeded, report)
                capacity = {
                    "http": e2e_http["msgs_per_s"] if e2e_http else None,
                    "ws": e2e["msgs_per_s"] if e2e else None,
                }
                attempt("overload", phase_overload, bench, server, seeded, report, capacity)
                attempt("stuck", phase_stuck, bench, server, seeded, report)
                attempt("joins", phase_joins, bench, server, seeded, report)
            finally:
                procs.stop(server)
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
