"""With no database and CHAT_DATABASE_URL unset, the server starts a private MariaDB.

Each test runs in a network namespace of its own (``unshare -n``, loopback
brought up inside) so that nothing listens on 127.0.0.1:3306 there; to see
the one-line answer for a machine with no MariaDB at all, a mount namespace
also hides /usr/sbin (where Debian puts mariadbd and mysqld).
"""

import os
import subprocess
import sys

from chat.ops import embedded
from helpers import ROOT, TEST_SECRET

PORT = 18080  # inside the namespace: nothing else is there

# Runs inside the namespace: start server.py, ask its health, stop it, report.
SCRIPT = """
ip link set lo up || exit 3
{hide}
cd {root}
env -u CHAT_DATABASE_URL -u CHAT_TEST_DATABASE_URL CHAT_EMBEDDED_DB_DIR={data} \\
    CHAT_PORT={port} CHAT_JWT_SECRET={secret} CHAT_BCRYPT_ROUNDS=4 \\
    {python} server.py {args} >{data_log} 2>&1 &
pid=$!
for i in $(seq 1 200); do
    python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(
        "http://127.0.0.1:{port}/api/health", timeout=1).read().decode())' 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
echo
kill -TERM $pid 2>/dev/null
wait $pid
echo "exit=$?"
pgrep -f -- "[m]ariadbd --no-defaults --datadir={data}/data" >/dev/null \\
    && echo "database still running" || true
"""


def run_isolated(tmp_path, hide_sbin=False, args=""):
    data = tmp_path / "mariadb"
    log = tmp_path / "server.log"
    hide = ""
    if hide_sbin:
        os.makedirs(tmp_path / "empty", exist_ok=True)
        hide = f"mount --bind {tmp_path / 'empty'} /usr/sbin || exit 4"
    script = SCRIPT.format(
        hide=hide,
        root=ROOT,
        data=data,
        data_log=log,
        port=PORT,
        secret=TEST_SECRET,
        python=sys.executable,
        args=args,
    )
    unshare = ["unshare", "-n", "-m"] if hide_sbin else ["unshare", "-n"]
    done = subprocess.run(
        [*unshare, "bash", "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, log.read_text()


def test_the_server_starts_a_private_database_where_none_answers(tmp_path):
    out, log = run_isolated(tmp_path)
    assert '"database":"ok"' in out, (out, log)
    assert "exit=0" in out
    assert "database still running" not in out
    said = [line for line in log.splitlines() if "private" in line]
    assert len(said) == 1 and "127.0.0.1:" in said[0] and str(tmp_path) in said[0], log
    assert "created database chat" in log
    assert "Traceback" not in log
    # The data are kept: a second run finds the database made by the first.
    out, log = run_isolated(tmp_path)
    assert '"database":"ok"' in out and "exit=0" in out, (out, log)
    assert "created database chat" not in log and "applied schema" not in log


def test_with_no_database_installed_one_line_says_what_to_do(tmp_path):
    out, log = run_isolated(tmp_path, hide_sbin=True)
    assert "exit=1" in out
    assert log.strip() == embedded.INSTALL_HINT, log


def test_an_ops_command_uses_the_private_database_too(tmp_path):
    script = f"""
ip link set lo up || exit 3
cd {ROOT}
env -u CHAT_DATABASE_URL CHAT_EMBEDDED_DB_DIR={tmp_path}/db CHAT_JWT_SECRET={TEST_SECRET} \\
    {sys.executable} server.py migrate
"""
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert "schema is up to date" in done.stdout


def test_make_test_says_in_one_line_that_there_is_no_database(tmp_path):
    os.makedirs(tmp_path / "empty")
    script = f"""
ip link set lo up || exit 3
mount --bind {tmp_path / "empty"} /usr/sbin || exit 4
cd {ROOT}
env -u CHAT_TEST_DATABASE_URL {sys.executable} -m pytest -q -p no:cacheprovider \\
    tests/test_admin.py -k derives
"""
    done = subprocess.run(
        ["unshare", "-n", "-m", "bash", "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "CHAT_TEST_DATABASE_URL" in lines[0] and "apt-get install mariadb-server" in lines[0]


def test_make_test_runs_on_a_private_database_where_none_answers(tmp_path):
    script = f"""
ip link set lo up || exit 3
cd {ROOT}
env -u CHAT_TEST_DATABASE_URL CHAT_EMBEDDED_DB_DIR={tmp_path}/db \\
    {sys.executable} -m pytest -q -p no:cacheprovider tests/test_admin.py -k derives
"""
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
