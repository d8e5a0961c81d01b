"""Schema files, the query-file loader and settings.

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
import stat
import subprocess
import urllib.request
import warnings

import pymysql
import pytest

import settings as settings_module
from chat.db import migrate, sqlfile
from helpers import ROOT, SCHEMA_DIR, mysql_connect, query
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


# --- query files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,complaint",
    [
        ("SELECT 1;\n", "SQL before the first '-- name:'"),
        ("-- name: Not-A-Name\nSELECT 1;\n", "SQL before the first '-- name:'"),
        ("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n", "defined twice"),
        ("-- name: two\nSELECT 1; SELECT 2;\n", "more than one statement"),
        ("-- name: two\nSELECT 1;\nDELETE FROM t;\n", "more than one statement"),
        ("-- name: pct\nSELECT * FROM t WHERE a LIKE 'x%';\n", "'%'"),
        ("-- name: pct\nSELECT * FROM t WHERE a = %s;\n", "'%'"),
        ("-- name: pct\nSELECT * FROM t WHERE a = %(A)s;\n", "'%'"),
        ("-- name: open\nSELECT 1\n", "must end with ';'"),
        ("-- name: empty\n-- just a comment\n\n", "has no statement"),
    ],
)
def test_malformed_query_files_fail_loudly(text, complaint):
    with pytest.raises(sqlfile.QueryFileError, match=f"^bad.sql:[0-9]+: .*{complaint}"):
        sqlfile.parse(text, source="bad.sql")


def test_a_well_formed_query_file():
    queries = sqlfile.parse(
        "-- Leading comments are fine.\n\n"
        "-- name: get_thing\n-- Reads one thing; no lock.\n"
        "SELECT a, b FROM things\nWHERE id = %(id)s AND c = %(c)s;\n\n"
        "-- name: count_things\nSELECT COUNT(*) AS n FROM things;\n",
        source="ok.sql",
    )
    assert set(queries) == {"get_thing", "count_things"}
    get = queries["get_thing"]
    assert get.params == {"id", "c"}
    assert get.sql == "SELECT a, b FROM things\nWHERE id = %(id)s AND c = %(c)s"
    assert queries["count_things"].params == frozenset()


def test_a_doubled_percent_is_a_literal_percent():
    """With pyformat parameters a literal '%' is written '%%' (the loader means to allow it)."""
    queries = sqlfile.parse("-- name: like\nSELECT a FROM t WHERE a LIKE CONCAT(%(p)s, '%%');\n")
    assert queries["like"].params == {"p"}


def test_binding_the_wrong_parameters_fails_loudly():
    query_ = sqlfile.parse("-- name: q\nSELECT %(a)s, %(b)s;\n", source="q.sql")["q"]
    assert query_.bind({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match=r"missing \['b'\], unexpected \[\]"):
        query_.bind({"a": 1})
    with pytest.raises(TypeError, match=r"missing \[\], unexpected \['c'\]"):
        query_.bind({"a": 1, "b": 2, "c": 3})
    with pytest.raises(TypeError, match=r"missing \['a', 'b'\]"):
        query_.bind({})


def test_query_names_are_unique_across_files(tmp_path):
    (tmp_path / "a.sql").write_text("-- name: same\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: same\nSELECT 2;\n")
    with pytest.raises(sqlfile.QueryFileError, match="already defined in a.sql"):
        sqlfile.load_dir(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(sqlfile.QueryFileError, match="holds no queries"):
        sqlfile.load_dir(str(empty))


def test_the_project_query_files_load():
    queries = sqlfile.load_dir(os.path.join(ROOT, "sql", "queries"))
    assert "get_user" in queries and "insert_ledger_entry" in queries


# --- settings ---------------------------------------------------------------------------


def load(tmp_path, *flags, **environ):
    return settings_module.load_settings(
        ["server.py", *flags], environ=environ, var_dir=str(tmp_path)
    )


@pytest.mark.parametrize(
    "flags,environ,complaint",
    [
        (["--port=70000"], {}, "CHAT_PORT"),
        (["--port=-1"], {}, "CHAT_PORT"),
        (["--port=eighty"], {}, None),
        ([], {"CHAT_PORT": "eighty"}, "CHAT_PORT"),
        (["--signup_grants=anyone"], {}, "CHAT_SIGNUP_GRANTS"),
        ([], {"CHAT_SIGNUP_GRANTS": "OPEN"}, "CHAT_SIGNUP_GRANTS"),
        (["--jwt_secret=too-short"], {}, "CHAT_JWT_SECRET"),
        ([], {"CHAT_JWT_SECRET": "x" * 31}, "CHAT_JWT_SECRET"),
        (["--database_url=postgres://root@127.0.0.1/chat"], {}, "CHAT_DATABASE_URL"),
        (["--database_url=mysql://root@127.0.0.1:3306/"], {}, "CHAT_DATABASE_URL"),
        (["--database_url=mysql://root@127.0.0.1:99999/chat"], {}, "CHAT_DATABASE_URL"),
        ([], {"CHAT_DATABASE_URL": "127.0.0.1:3306"}, "CHAT_DATABASE_URL"),
        (["--admin_key=short"], {}, "CHAT_ADMIN_KEY"),
        (["--bcrypt_rounds=3"], {}, "CHAT_BCRYPT_ROUNDS"),
        (["--redis_url=http://localhost"], {}, "CHAT_REDIS_URL"),
        (["--allowed_origins=example.com"], {}, "CHAT_ALLOWED_ORIGINS"),
        (["--login_attempts=0"], {}, "CHAT_LOGIN_ATTEMPTS"),
        (["--join_price=-1"], {}, "CHAT_JOIN_PRICE"),
        (["--no_such_setting=1"], {}, "no-such-setting"),
    ],
)
def test_bad_settings_are_refused(tmp_path, flags, environ, complaint):
    with pytest.raises(settings_module.SettingsError, match=complaint):
        load(tmp_path, *flags, **environ)


def test_settings_come_from_the_environment(tmp_path):
    s = load(
        tmp_path,
        CHAT_PORT="9001",
        CHAT_HOST="0.0.0.0",
        CHAT_SIGNUP_GRANTS="operator",
        CHAT_ADMIN_KEY="a" * 16,
        CHAT_JWT_SECRET=JWT_SECRET,
        CHAT_BCRYPT_ROUNDS="11",
        CHAT_DATABASE_URL="mysql://bob:p%40ss@db.example:3307/chatdb",
        CHAT_ALLOWED_ORIGINS="https://a.example, https://b.example/",
        CHAT_LOGIN_ATTEMPTS="5",
        CHAT_WS_AUTH_TIMEOUT="2.5",
        CHAT_DEBUG="true",
        OTHER_PORT="1",
    )
    assert (s.port, s.host, s.signup_grants, s.admin_key, s.jwt_secret, s.bcrypt_rounds) == (
        9001,
        "0.0.0.0",
        "operator",
        "a" * 16,
        JWT_SECRET,
        11,
    )
    assert s.database == settings_module.DatabaseUrl("db.example", 3307, "bob", "p@ss", "chatdb")
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert (s.login_attempts, s.ws_auth_timeout, s.debug) == (5, 2.5, True)
    for secret in ("p@ss", JWT_SECRET, "a" * 16):
        assert secret not in repr(s)


def test_a_flag_wins_over_the_environment(tmp_path):
    s = load(
        tmp_path,
        "--port=9002",
        "--signup_grants=open",
        CHAT_PORT="9001",
        CHAT_SIGNUP_GRANTS="operator",
        CHAT_JWT_SECRET=JWT_SECRET,
    )
    assert (s.port, s.signup_grants) == (9002, "open")
    defaults = load(tmp_path, CHAT_JWT_SECRET=JWT_SECRET)
    assert (defaults.port, defaults.signup_grants, defaults.bcrypt_rounds) == (8888, "open", 12)


def test_a_missing_jwt_secret_is_generated_once_and_kept(tmp_path):
    first = load(tmp_path)
    kept = tmp_path / "jwt_secret"
    assert kept.read_text().strip() == first.jwt_secret
    assert len(first.jwt_secret.encode()) >= 32
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert load(tmp_path).jwt_secret == first.jwt_secret
