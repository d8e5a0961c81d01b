"""The ops command line: ``python server.py migrate | status | check-ledger``.

Each command reads the same settings as the server (flags after the command,
or CHAT_* variables), does its work and exits: 0 when all is well, 1 when it
found something wrong (a mismatch, an unreachable service, pending schema
files), 2 for a bad setting or command.
"""

import os
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import pymysql
import pymysql.cursors
import redis

import settings as settings_module
from chat.db import migrate, sqlfile
from chat.ops import embedded

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_DIR = os.path.join(ROOT, "sql", "schema")
QUERIES_DIR = os.path.join(ROOT, "sql", "queries")
CONNECT_TIMEOUT = 5

COMMANDS = {
    "migrate": "apply the schema files the database lacks (creating it if needed), then exit",
    "status": "schema version, pending schema files, database and Redis reachability",
    "check-ledger": "every balance against its coin ledger, memberships against room member "
    "counts, rooms within capacity; exit 1 with a report on any mismatch",
}

USAGE = """\
usage: python server.py [COMMAND] [--setting=value ...]

Without a command: serve (until SIGTERM or SIGINT).

commands:
{commands}

settings (a flag, or the CHAT_* variable beside it; a flag wins):
{settings}
"""


def usage() -> str:
    commands = "\n".join(
        textwrap.fill(text, 79, initial_indent=f"  {name:<14}", subsequent_indent=" " * 16)
        for name, text in COMMANDS.items()
    )
    lines = []
    for _, option, _, _, row in settings_module.rows():
        lines.append(f"  --{option}  ({settings_module.env_name(option)})")
        lines.append(textwrap.fill(row.help, 79, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return USAGE.format(commands=commands, settings="\n".join(lines))


def describe(url: settings_module.DatabaseUrl) -> str:
    """Where the database is, never its password."""
    return f"{url.user}@{url.host}:{url.port}/{url.database}"


def cmd_migrate(settings: settings_module.Settings, out: TextIO) -> int:
    applied = migrate.migrate(settings.database, SCHEMA_DIR, create_database=True)
    for filename in applied:
        out.write(f"applied {filename}\n")
    version = len(migrate.schema_files(SCHEMA_DIR))
    out.write(f"schema is up to date at version {version} ({describe(settings.database)})\n")
    return 0


def schema_state(settings: settings_module.Settings) -> tuple[str, list[str], list[str]]:
    """(server version, applied filenames, pending filenames) of the configured database."""
    files = migrate.schema_files(SCHEMA_DIR)
    conn = migrate.connect(settings.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            server_version = cur.fetchone()[0]
            try:
                conn.select_db(settings.database.database)
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != migrate.UNKNOWN_DATABASE:
                    raise
                done: set[int] = set()
            else:
                done = migrate.applied_versions(cur)
    finally:
        conn.close()
    applied = [name for version, name, _ in files if version in done]
    pending = [name for version, name, _ in files if version not in done]
    return server_version, applied, pending


def redis_state(url: str) -> str:
    if not url:
        return "not configured (fan-out within this process only)"
    client = redis.Redis.from_url(url, socket_timeout=CONNECT_TIMEOUT)
    try:
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"down ({type(exc).__name__}: {exc})"
    finally:
        client.close()


def cmd_status(settings: settings_module.Settings, out: TextIO) -> int:
    healthy = True
    try:
        server_version, applied, pending = schema_state(settings)
    except (pymysql.MySQLError, OSError) as exc:
        out.write(f"database: down ({describe(settings.database)}: {exc.args[-1]})\n")
        out.write("schema: unknown while the database does not answer\n")
        healthy = False
    else:
        out.write(f"database: ok ({describe(settings.database)}, {server_version})\n")
        if applied:
            out.write(f"schema: version {len(applied)}: {applied[-1].removesuffix('.sql')}\n")
        else:
            out.write(f"schema: none applied (no tables in {settings.database.database} yet)\n")
        if pending:
            out.write(f"pending: {', '.join(pending)} (run: python server.py migrate)\n")
            healthy = False
        else:
            out.write("pending: none\n")
    state = redis_state(settings.redis_url)
    out.write(f"redis: {state}\n")
    if state.startswith("down"):
        healthy = False
    return 0 if healthy else 1


def cmd_check_ledger(settings: settings_module.Settings, out: TextIO) -> int:
    queries = sqlfile.load_dir(QUERIES_DIR)
    conn = migrate.connect(settings.database, settings.database.database)

    def rows(name: str) -> list[dict[str, Any]]:
        query = queries[name]
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(query.sql, query.bind({}))
            return list(cur.fetchall())

    try:
        # Every check reads one consistent snapshot, taken while the server runs.
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        counted = rows("count_checked")[0]
        problems = []
        for row in rows("check_balances"):
            problems.append(
                f"balance: user {row['user_id']} has {row['avail_coins']} coins, "
                f"its ledger adds up to {row['ledger_total']}"
            )
        for row in rows("check_room_members"):
            if row["member_count"] != row["members"]:
                problems.append(
                    f"members: room {row['room_id']} counts {row['member_count']} members, "
                    f"it has {row['members']} membership rows"
                )
            if row["members"] > row["capacity"]:
                problems.append(
                    f"capacity: room {row['room_id']} has {row['members']} members, "
                    f"capacity {row['capacity']}"
                )
        conn.rollback()
    finally:
        conn.close()
    for problem in problems:
        out.write(f"MISMATCH {problem}\n")
    checked = f"{counted['users']} balances and {counted['rooms']} rooms"
    if problems:
        out.write(f"check-ledger: {len(problems)} mismatches in {checked}\n")
        return 1
    out.write(f"check-ledger: {checked} checked, all consistent\n")
    return 0


HANDLERS: dict[str, Callable[[settings_module.Settings, TextIO], int]] = {
    "migrate": cmd_migrate,
    "status": cmd_status,
    "check-ledger": cmd_check_ledger,
}


def run_command(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``argv[1]``, one of COMMANDS, with the settings the rest of ``argv`` gives."""
    command = argv[1]
    try:
        settings = settings_module.load_settings([argv[0], *argv[2:]])
    except settings_module.SettingsError as exc:
        err.write(f"invalid setting: {exc}\n")
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pymysql.Warning)
        try:
            return HANDLERS[command](settings, out)
        except (pymysql.MySQLError, OSError, migrate.MigrationError) as exc:
            detail = exc.args[-1] if exc.args else exc
            err.write(f"{command}: {describe(settings.database)}: {detail}\n")
            return 1


def main(argv: Sequence[str], serve: Callable[[Sequence[str]], int]) -> int:
    """``server.py``'s entry point: a command, ``--help``, or else ``serve(argv)``."""
    first = argv[1] if len(argv) > 1 else ""
    if first in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if first and first not in COMMANDS and not first.startswith("-"):
        sys.stderr.write(f"unknown command {first!r}; commands: {', '.join(COMMANDS)}\n")
        return 2
    try:
        with embedded.private_database(argv) as url:
            if url is not None:
                os.environ["CHAT_DATABASE_URL"] = url
            return run_command(argv) if first in COMMANDS else serve(argv)
    except embedded.NoDatabase as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
