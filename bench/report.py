"""The bench's report: figures, targets, CPU shares, profiles, the final JSON."""

import json
import os
import sys

import redis

from bench.processes import ROOT, percentile, rnd, say

TARGETS = {
    "e2e_msgs_per_s": (">=", 2000),
    "e2e_http_msgs_per_s": (">=", 2000),
    "overload_goodput_ratio": (">=", 0.9),
    "overload_p99_ms": ("<=", 150),
    "overload_refused_p99_ms": ("<=", 20),
    "overload_ws_goodput_ratio": (">=", 0.9),
    "stuck_p99_ms": ("<=", 100),
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


class Report:
    WS_FIGURES = {
        "e2e": ("e2e_msgs_per_s", "e2e_deliveries_per_s", "latency_p50_ms", "latency_p99_ms"),
        "open": ("open_loop_p50_ms", "open_loop_p99_ms"),
        "e2e_http": ("e2e_http_msgs_per_s",),
        "overload_http": ("overload_goodput_ratio", "overload_p99_ms", "overload_refused_p99_ms"),
        "overload_ws": ("overload_ws_goodput_ratio", "overload_ws_p99_ms"),
        "stuck": ("stuck_p99_ms",),
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
        self.loop_late = {}
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
        self.loop_late[name] = result.get("loop_late_ms")
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
        self.loop_late[phase] = f.get("loop_late_ms")
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
            "stuck_p99_ms",
        ):
            v.setdefault(key, None)
        v["flagged"] = self.flagged
        v["failed"] = self.failed
        v["cpu"] = self.cpu
        v["loop_late_ms"] = {phase: late for phase, late in self.loop_late.items() if late}
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
    late = {phase: by_gen for phase, by_gen in report.loop_late.items() if by_gen}
    if late:
        say(
            "How late each load generator's event loop ran a 5 ms timer (p50 / p99 / max ms;"
            " a latency figure includes its generator's lateness):"
        )
        for phase, by_gen in late.items():
            say(
                f"  {phase:<20} "
                + ", ".join(f"{name} {' / '.join(map(str, ms))}" for name, ms in by_gen.items())
            )
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
