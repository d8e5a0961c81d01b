"""Real processes for the tests: private redis-server instances and server.py.

A test that stops Redis stops its own ``RedisServer`` on a free port, never
the shared one. ``ServerProcess`` runs ``server.py`` exactly as an operator
would, configured through CHAT_* variables, with its log kept in a file.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(url):
    """A settings.DatabaseUrl as the CHAT_DATABASE_URL string."""
    auth = quote(url.user, safe="")
    if url.password:
        auth += ":" + quote(url.password, safe="")
    return f"mysql://{auth}@{url.host}:{url.port}/{url.database}"


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)


def _stop(proc, sig, timeout):
    """Signal the process and reap it; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


class RedisServer:
    """A redis-server of our own on a free port, nothing saved to disk."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc = None
        self._dir = tempfile.mkdtemp(prefix="chat-redis-")

    def start(self):
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, f"redis-server on port {self.port} did not answer")
        return self

    def answers(self):
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        """Kill it outright (SIGKILL), as a crash would."""
        if self._proc is not None:
            _stop(self._proc, signal.SIGKILL, 10)
            self._proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class ServerProcess:
    """``python server.py`` on a free port; its log goes to a temporary file."""

    def __init__(self, database, jwt_secret, redis_url=None, open_files=None, **settings):
        self.port = free_port()
        self.open_files = open_files  # the process's RLIMIT_NOFILE, when given
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        for name in list(self.env):
            if name.startswith("CHAT_"):
                del self.env[name]
        self.env.update(
            {
                "CHAT_HOST": "127.0.0.1",
                "CHAT_PORT": str(self.port),
                "CHAT_DATABASE_URL": database_url(database),
                "CHAT_JWT_SECRET": jwt_secret,
                "CHAT_BCRYPT_ROUNDS": "4",
                # A loaded CI machine may stall longer than the production bound.
                "CHAT_QUEUE_DELAY_MS": "2000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if redis_url:
            self.env["CHAT_REDIS_URL"] = redis_url
        # Off unless a test asks: the suite makes many users from one address.
        self.env["CHAT_RATE_LIMITS"] = "off"
        self.env["CHAT_SIGNUP_GRANTS"] = "open"
        # Set, so that no test run writes a generated key into the checkout's var/.
        self.env["CHAT_ADMIN_KEY"] = "test-admin-key-" + "k" * 16
        for name, value in settings.items():
            self.env["CHAT_" + name.upper()] = str(value)
        self._log = tempfile.NamedTemporaryFile(prefix="chat-server-", suffix=".log", delete=False)
        self.log_path = self._log.name
        self._proc = None

    def start(self, timeout=30):
        self.spawn()
        wait_until(self._ready, timeout, f"server.py on port {self.port} did not start")
        return self

    def spawn(self):
        """Start the process without waiting for it to answer."""
        self._proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "server.py")],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit_open_files if self.open_files else None,
        )
        return self

    def _limit_open_files(self):
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def _ready(self):
        if self._proc.poll() is not None:
            raise RuntimeError(f"server.py exited with {self._proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.base_url + "/api/health", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def pid(self):
        return self._proc.pid

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, sig):
        self._proc.send_signal(sig)

    def wait(self, timeout):
        """The exit code, once the process has exited within ``timeout`` seconds."""
        return self._proc.wait(timeout)

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def close(self):
        """Stop the process (SIGTERM) and remove its log; returns what it logged."""
        if self._proc is not None:
            try:
                _stop(self._proc, signal.SIGTERM, 15)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()
        text = self.log()
        os.unlink(self.log_path)
        return text


class MariaDBServer:
    """A mariadbd of our own: a fresh data directory in a temp dir, a free port.

    Root logs in over TCP without a password (``--skip-grant-tables``); the
    data survive ``kill()`` / ``start()`` (a crash and a restart), and
    ``freeze()`` / ``thaw()`` stop and resume the process (SIGSTOP/SIGCONT).
    """

    def __init__(self, port=None):
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="chat-mariadb-")
        self.datadir = os.path.join(self._dir, "data")
        self._proc = None
        self._frozen = False
        self._started_once = False  # then its clients know its port: keep it
        subprocess.run(
            [
                _binary("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--user={_user()}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def url(self, database):
        import settings as settings_module

        return settings_module.DatabaseUrl("127.0.0.1", self.port, "root", "", database)

    def start(self, attempts=3):
        """Start it (again); on a port someone took meanwhile, try another (first start only)."""
        for attempt in range(attempts):
            try:
                return self._start()
            except (RuntimeError, TimeoutError):
                if self._proc is not None and self._proc.poll() is None:
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None
                if attempt == attempts - 1:
                    raise RuntimeError(f"mariadbd did not start:\n{self.error_log()}") from None
                if not self._started_once:
                    self.port = free_port()
        return self

    def error_log(self, lines=30):
        try:
            with open(os.path.join(self._dir, "error.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no error log)"

    def _start(self):
        self._proc = subprocess.Popen(
            [
                _binary("mariadbd", "mysqld"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={os.path.join(self._dir, 'sock')}",
                f"--pid-file={os.path.join(self._dir, 'pid')}",
                f"--log-error={os.path.join(self._dir, 'error.log')}",
                f"--user={_user()}",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--max-connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 60, f"mariadbd on port {self.port} did not answer")
        self._started_once = True
        return self

    def answers(self):
        import pymysql

        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"mariadbd on port {self.port} exited")
        try:
            pymysql.connect(
                host="127.0.0.1", port=self.port, user="root", connect_timeout=1
            ).close()
            return True
        except pymysql.err.OperationalError:
            return False

    def connect(self, database=None):
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            database=database,
            charset="utf8mb4",
            autocommit=True,
        )

    def freeze(self):
        self._proc.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self):
        self._proc.send_signal(signal.SIGCONT)
        self._frozen = False

    def kill(self):
        """SIGKILL, as a crash would; ``start()`` brings it back on the same data and port."""
        if self._proc is not None:
            if self._frozen:
                self.thaw()
            _stop(self._proc, signal.SIGKILL, 10)
            self._proc = None

    def close(self):
        if self._proc is not None:
            if self._frozen:
                self.thaw()
            try:
                _stop(self._proc, signal.SIGTERM, 20)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)


def _binary(*names):
    for name in names:
        for folder in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"none of {names} is installed (apt-get install mariadb-server)")


def _user():
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
