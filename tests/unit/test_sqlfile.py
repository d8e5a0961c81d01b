"""chat/db/sqlfile.py: named queries loaded from .sql files, malformed ones refused loudly."""

import os

import pytest

from chat.db import sqlfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
