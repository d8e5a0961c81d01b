"""The bench's processes: starting, stopping and metering them, and small helpers."""

import json
import math
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BENCH = os.path.join(ROOT, "bench")


class BenchError(Exception):
    pass


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
