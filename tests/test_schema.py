"""Schema files against a real MariaDB (the query-file loader and settings: tests/unit/).

The schema files must run cleanly through the ``mysql`` client (as ops would
run them), and a server started on such a database must recognise it and
apply nothing; a server started on a database that does not exist yet must
create and migrate it, ending with the same tables.
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import urllib.request
import warnings

import pymysql
import pytest

from chat.db import migrate
from helpers import SCHEMA_DIR, mysql_connect, query
from procs import ServerProcess

JWT_SECRET = "schema-test-secret-" + "s" * 32


# --- databases and servers -------------------------------------------------


@pytest.fixture
def databases(server_url):
    """Names of fresh databases (not created yet); every one is dropped afterwards."""
    names = []

    def make():
        name = "chat_schema_" + os.urandom(4).hex()
        names.append(name)
        return dataclasses.replace(server_url, database=name)

    yield make
    conn = mysql_connect(server_url)
    try:
        with conn.cursor() as cur, warnings.catch_warnings():
            warnings.simplefilter("ignore", pymysql.Warning)  # a note when it never existed
            for name in names:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


def create_database(url):
    conn = mysql_connect(url)
    try:
        conn.cursor().execute(
            f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    finally:
        conn.close()


def mysql_client(url, path):
    """Run one file through the mysql command-line client; returns (code, output)."""
    env = dict(os.environ, MYSQL_PWD=url.password) if url.password else None
    with open(path, "rb") as f:
        done = subprocess.run(
            [
                "mysql",
                "--show-warnings",
                "-h",
                url.host,
                "-P",
                str(url.port),
                "-u",
                url.user,
                url.database,
            ],
            stdin=f,
            capture_output=True,
            env=env,
            timeout=60,
        )
    return done.returncode, (done.stdout + done.stderr).decode()


def migrations(url):
    conn = mysql_connect(url, url.database)
    try:
        return list(
            query(conn, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        )
    finally:
        conn.close()


def table_definitions(url):
    """SHOW CREATE TABLE of every table, keyed by table name."""
    conn = mysql_connect(url, url.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = [row[0] for row in cur.fetchall()]
            definitions = {}
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE `{table}`")
                # AUTO_INCREMENT=n depends on the rows inserted, not on the schema.
                definitions[table] = " ".join(
                    part
                    for part in cur.fetchone()[1].split()
                    if not part.startswith("AUTO_INCREMENT=")
                )
            return definitions
    finally:
        conn.close()


@pytest.fixture
def servers():
    """``servers(url)``: server.py started on the database ``url``; stopped afterwards."""
    started = []

    def start(url):
        server = ServerProcess(url, JWT_SECRET)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


def health(server):
    with urllib.request.urlopen(server.base_url + "/api/health", timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def stop(server):
    """SIGTERM, as an init system would; returns the exit code."""
    server.signal(signal.SIGTERM)
    return server.wait(30)


# --- schema files -----------------------------------------------------------------


def test_schema_files_run_cleanly_through_the_mysql_client(databases, servers):
    url = databases()
    create_database(url)
    files = migrate.schema_files(SCHEMA_DIR)
    assert files, "no schema files"
    for _, filename, path in files:
        code, output = mysql_client(url, path)
        assert code == 0 and output == "", f"{filename}:\n{output}"
    before = migrations(url)
    assert [(row["version"], row["name"]) for row in before] == [
        (version, filename[: -len(".sql")]) for version, filename, _ in files
    ]

    server = servers(url)
    status, body = health(server)
    assert (status, body["status"], body["schemaVersion"]) == (200, "ok", len(files))
    assert body["checks"] == {"database": "ok", "broker": "not_configured"}
    assert migrations(url) == before, "the server must apply nothing to a migrated database"
    assert "applied schema" not in server.log()
    assert stop(server) == 0
    assert "Traceback" not in server.log()


def schema_state(url):
    """Everything a schema file may change: every table's definition and schema_migrations."""
    return table_definitions(url), migrations(url)


# What the client may say on a re-run: a table that exists, a migration row already there.
RERUN_NOTES = re.compile(
    r"^(Note \(Code 1050\): Table '\w+' already exists|"
    r"Warning \(Code 1062\): Duplicate entry '\d+' for key 'PRIMARY')$"
)


def test_every_schema_file_runs_again_on_an_up_to_date_database_and_changes_nothing(databases):
    """As ops may re-run the whole sql/schema directory: no error, no change."""
    files = migrate.schema_files(SCHEMA_DIR)
    by_client, by_server = databases(), databases()
    create_database(by_client)
    for _, filename, path in files:
        assert mysql_client(by_client, path) == (0, ""), filename
    migrate.migrate(by_server, SCHEMA_DIR, create_database=True)
    for url in (by_client, by_server):
        before = schema_state(url)
        for _ in range(2):
            for _, filename, path in files:
                code, output = mysql_client(url, path)
                assert code == 0, f"{filename}:\n{output}"
                for line in output.splitlines():
                    assert RERUN_NOTES.match(line), f"{filename}: {line}"
            assert schema_state(url) == before
    assert table_definitions(by_client) == table_definitions(by_server)


def test_the_server_creates_and_migrates_a_missing_database(databases, servers):
    by_server, by_client = databases(), databases()
    server = servers(by_server)
    status, body = health(server)
    assert status == 200 and body["status"] == "ok"
    files = migrate.schema_files(SCHEMA_DIR)
    assert [row["version"] for row in migrations(by_server)] == [v for v, _, _ in files]
    for _, filename, _ in files:
        assert f"applied schema {filename}" in server.log()
    assert stop(server) == 0

    create_database(by_client)
    for _, filename, path in files:
        assert mysql_client(by_client, path) == (0, ""), filename
    assert table_definitions(by_server) == table_definitions(by_client)


def test_migrate_applies_only_what_is_missing(databases):
    url = databases()
    assert migrate.migrate(url, SCHEMA_DIR, create_database=True) == [
        filename for _, filename, _ in migrate.schema_files(SCHEMA_DIR)
    ]
    assert migrate.migrate(url, SCHEMA_DIR) == []


def test_schema_file_names_and_statements_are_checked(tmp_path):
    (tmp_path / "0001_one.sql").write_text("SELECT 1;\n")
    (tmp_path / "0003_three.sql").write_text("SELECT 3;\n")
    with pytest.raises(migrate.MigrationError, match="without gaps"):
        migrate.schema_files(str(tmp_path))
    (tmp_path / "0003_three.sql").unlink()
    (tmp_path / "two.sql").write_text("SELECT 2;\n")
    with pytest.raises(migrate.MigrationError, match="NNNN_description"):
        migrate.schema_files(str(tmp_path))
    with pytest.raises(migrate.MigrationError, match="does not end with ';'"):
        migrate.statements("CREATE TABLE t (a INT);\nSELECT 1\n")
    assert migrate.statements("-- a comment\nSELECT 1;\n\nSELECT\n  2;\n") == [
        "SELECT 1",
        "SELECT\n  2",
    ]
