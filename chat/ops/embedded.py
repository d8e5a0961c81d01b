"""A private MariaDB for ``make run`` and ``make test`` on a machine with no database.

When CHAT_DATABASE_URL is not given and nothing answers at the default
address (127.0.0.1:3306), but a ``mariadbd`` or ``mysqld`` binary is
installed, ``private_database()`` starts one for the project: data under
``var/mariadb`` (created once with ``mariadb-install-db``, or ``mysqld
--initialize-insecure`` for MySQL, and kept between runs), listening on
loopback only, on a free port, plus a unix socket in the same directory.
It is stopped when the caller is done. ``CHAT_EMBEDDED_DB_DIR`` moves the
directory (the tests use a temporary one).

With no binary either, ``NoDatabase`` says in one line what to install or set.
"""

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence

log = logging.getLogger("chat.embedded")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 3306
START_SECONDS = 60
STOP_SECONDS = 30
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])

INSTALL_HINT = (
    "no database: nothing answers at 127.0.0.1:3306 and no MariaDB is installed; "
    "install one (Debian: apt-get install mariadb-server) or set "
    "CHAT_DATABASE_URL=mysql://user:password@host:3306/chat"
)


class NoDatabase(Exception):
    """Nothing to connect to and nothing to start; the message says what to do."""


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def url_given(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    return "CHAT_DATABASE_URL" in environ or any(arg.startswith("--database_url") for arg in argv)


def binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name, path=SEARCH)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateMariaDB:
    """mariadbd (or mysqld) with its data in ``directory``, on loopback at a free port."""

    def __init__(self, directory: str, server: str) -> None:
        self.directory = directory
        self.server = server
        self.datadir = os.path.join(directory, "data")
        self.socket = os.path.join(directory, "mysqld.sock")
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/chat"

    def _user(self) -> list[str]:
        # mariadbd refuses to run as root unless told to.
        return ["--user=root"] if os.geteuid() == 0 else []

    def _initialize(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        error_log = os.path.join(self.directory, "install.log")
        installer = binary("mariadb-install-db", "mysql_install_db")
        if installer and "mariadb" in os.path.basename(self.server) + installer:
            command = [
                installer,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._user(),
            ]
        else:  # MySQL 8: the server initializes its own data directory
            command = [
                self.server,
                "--no-defaults",
                "--initialize-insecure",
                f"--datadir={self.datadir}",
                *self._user(),
            ]
        with open(error_log, "wb") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise NoDatabase(f"could not create a database in {self.datadir}: see {error_log}")

    def _stop_leftover(self) -> None:
        """Stop a server a killed run left on this data directory (it holds its files)."""
        try:
            with open(os.path.join(self.directory, "mysqld.pid"), encoding="ascii") as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f"--datadir={self.datadir}".encode() not in f.read():
                    return
        except (OSError, ValueError):
            return
        log.warning("stopping the private database a previous run left running (pid %d)", pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self) -> "PrivateMariaDB":
        self._stop_leftover()
        if not os.path.isdir(os.path.join(self.datadir, "mysql")):
            self._initialize()
        error_log = os.path.join(self.directory, "error.log")
        self._proc = subprocess.Popen(
            [
                self.server,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                f"--socket={self.socket}",
                f"--pid-file={os.path.join(self.directory, 'mysqld.pid')}",
                f"--log-error={error_log}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=300",
                *self._user(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C for the server is not one for the database
        )
        deadline = time.monotonic() + START_SECONDS
        while not answers("127.0.0.1", self.port, 0.5):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NoDatabase(f"the private database did not start: see {error_log}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_available(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> None:
    """Raise ``NoDatabase`` when there is neither a database nor a binary to start one."""
    environ = os.environ if environ is None else environ
    if url_given(argv, environ) or answers(DEFAULT_HOST, DEFAULT_PORT):
        return
    if binary("mariadbd", "mysqld") is None:
        raise NoDatabase(INSTALL_HINT)


@contextlib.contextmanager
def private_database(
    argv: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> Iterator[str | None]:
    """The URL of a private database to use, or None when the configured one is to be used.

    Raises ``NoDatabase`` when there is neither a database nor a binary to start one.
    """
    environ = os.environ if environ is None else environ
    if url_given(argv, environ) or answers(DEFAULT_HOST, DEFAULT_PORT):
        yield None
        return
    server = binary("mariadbd", "mysqld")
    if server is None:
        raise NoDatabase(INSTALL_HINT)
    directory = environ.get("CHAT_EMBEDDED_DB_DIR") or os.path.join(ROOT, "var", "mariadb")
    db = PrivateMariaDB(os.path.abspath(directory), server).start()
    log.info(
        "CHAT_DATABASE_URL is not set and nothing answers at 127.0.0.1:3306: using a private "
        "%s on 127.0.0.1:%d (data in %s, kept), stopped when this process stops",
        os.path.basename(server),
        db.port,
        os.path.relpath(directory, ROOT) if directory.startswith(ROOT) else directory,
    )
    try:
        yield db.url
    finally:
        db.stop()
