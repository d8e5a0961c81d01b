"""Applies the forward-only schema files of ``sql/schema`` that a database lacks.

Each file ``NNNN_description.sql`` ends by recording itself in
``schema_migrations``, so a database that ops migrated by hand with the
``mysql`` client is recognised, and the server applies only what is missing.

Every file must also run again on an up-to-date database without error or
change, as ops may re-run the whole directory: ``CREATE TABLE IF NOT EXISTS``,
``INSERT IGNORE INTO schema_migrations``, and for anything else a guard that
MySQL 8 and MariaDB both accept (a statement chosen from ``information_schema``
and run with ``PREPARE``/``EXECUTE``; not ``ADD COLUMN IF NOT EXISTS``, which
MySQL lacks). tests/test_schema.py applies every file twice to check it.
"""

import logging
import os
import re
import warnings
from typing import Any

import pymysql

log = logging.getLogger("chat.migrate")

UNKNOWN_DATABASE = 1049
FILENAME = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    pass


def schema_files(path: str) -> list[tuple[int, str, str]]:
    """(version, filename, full path) of every schema file, in order."""
    files = []
    for filename in sorted(os.listdir(path)):
        if not filename.endswith(".sql"):
            continue
        match = FILENAME.match(filename)
        if not match:
            raise MigrationError(f"{filename}: schema files are named NNNN_description.sql")
        files.append((int(match["version"]), filename, os.path.join(path, filename)))
    versions = [v for v, _, _ in files]
    if versions != list(range(1, len(files) + 1)):
        raise MigrationError(f"schema versions must run 1, 2, 3, ... without gaps: {versions}")
    return files


def statements(text: str) -> list[str]:
    """Split a schema file into statements: each ends with ';' at the end of a line."""
    current: list[str] = []
    result: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if stripped.endswith(";"):
            result.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if any(line.strip() and not line.strip().startswith("--") for line in current):
        raise MigrationError("the last statement does not end with ';'")
    return result


def applied_versions(cur: Any) -> set[int]:
    cur.execute("SHOW TABLES LIKE 'schema_migrations'")
    if not cur.fetchone():
        return set()
    cur.execute("SELECT version FROM schema_migrations")
    return {row[0] for row in cur.fetchall()}


# Seconds to open a connection of this module's (migrations, operator commands).
CONNECT_TIMEOUT = 5


def connect(url: Any, database: str | None = None) -> Any:
    """A plain pymysql connection (autocommit) to ``url``'s server, in ``database`` if given."""
    return pymysql.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT,
    )


def migrate(url: Any, schema_dir: str, create_database: bool = False) -> list[str]:
    """Bring the database up to date; returns the filenames applied.

    With ``create_database``, a database that does not exist yet is created.
    """
    conn = connect(url)
    try:
        with conn.cursor() as cur, warnings.catch_warnings():
            warnings.simplefilter("ignore", pymysql.Warning)
            try:
                conn.select_db(url.database)
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != UNKNOWN_DATABASE or not create_database:
                    raise
                # IF NOT EXISTS: another process may be creating it right now.
                quoted = url.database.replace("`", "``")
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{quoted}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
                log.info("created database %s", url.database)
                conn.select_db(url.database)
            # Several processes may start at once: one migrates, the others wait.
            cur.execute("SELECT GET_LOCK('chat_schema_migrate', 60)")
            locked = cur.fetchone()
            if locked is None or locked[0] != 1:
                raise MigrationError("another process held the migration lock for 60 s")
            try:
                return _apply_missing(cur, schema_dir)
            finally:
                cur.execute("SELECT RELEASE_LOCK('chat_schema_migrate')")
    finally:
        conn.close()


def _apply_missing(cur: Any, schema_dir: str) -> list[str]:
    done = applied_versions(cur)
    applied = []
    for version, filename, full in schema_files(schema_dir):
        if version in done:
            continue
        with open(full, encoding="utf-8") as f:
            for statement in statements(f.read()):
                try:
                    cur.execute(statement)
                except pymysql.MySQLError as exc:
                    raise MigrationError(f"{filename}: {exc.args[-1]}") from None
        log.info("applied schema %s", filename)
        applied.append(filename)
    return applied
