"""Every query the code names exists in sql/queries/, with the parameters it is given.

Queries are called by name (``db.fetch_one("get_user", user_id=...)``), so a
typo would only fail when that line runs. This reads the source of chat/ and
checks every literal query name, and every set of keyword arguments written
out in full, against the loaded query files.
"""

import ast
import os
import re
from collections.abc import Iterator

from chat.db import sqlfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUERIES = sqlfile.load_dir(os.path.join(ROOT, "sql", "queries"))

# Calls that take a query name as their first argument (``db.``, ``tx.``, ...)...
QUERY_NAME = re.compile(r"[a-z][a-z0-9_]*")
RUNNERS = {"fetch_one", "fetch_all", "execute", "execute_many", "statement", "insert_rows"}
# ...and those that take it as their second (``BatchedLookup(db, "name", param, ...)``,
# ``_all_rows(tx, "name", keys, **params)``).
SECOND_ARGUMENT = {"BatchedLookup", "_all_rows"}


def _sources() -> Iterator[tuple[str, ast.Module]]:
    """Every module that calls the data-access layer: chat/ but chat/db/ itself,
    whose migrations run the driver's own cursor."""
    for folder, _, files in os.walk(os.path.join(ROOT, "chat")):
        if os.path.relpath(folder, ROOT).startswith(os.path.join("chat", "db")):
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, ROOT), ast.parse(f.read(), path)


def _called(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


# Parsed when the module is collected, before any test runs: CPython 3.11's
# parser can refuse to run after a test has caught a RecursionError.
SOURCES = list(_sources())


def query_calls() -> list[tuple[str, int, str, ast.Call, int]]:
    """(file, line, query name, call, index of the name) for every literal query name."""
    found = []
    for path, tree in SOURCES:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = _called(node)
            index = 0 if called in RUNNERS else 1 if called in SECOND_ARGUMENT else None
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            # A query name is a lower-case identifier (sqlfile.NAME_LINE); a
            # string with spaces or capitals is SQL run on a driver's cursor.
            if (
                isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and QUERY_NAME.fullmatch(arg.value)
            ):
                found.append((path, node.lineno, arg.value, node, index))
    return found


def test_every_query_named_in_the_code_exists() -> None:
    calls = query_calls()
    assert len(calls) > 40, "the scan found too few query calls to be looking in the right place"
    unknown = [f"{path}:{line}: {name}" for path, line, name, _, _ in calls if name not in QUERIES]
    assert not unknown, "queries not in sql/queries/:\n" + "\n".join(unknown)


def test_keyword_arguments_written_out_match_the_querys_parameters() -> None:
    wrong = []
    for path, line, name, call, index in query_calls():
        if name not in QUERIES or _called(call) in ("execute_many", "insert_rows"):
            continue
        if any(k.arg is None for k in call.keywords):
            continue  # **params: checked when the query runs
        given = {k.arg for k in call.keywords if k.arg is not None}
        if _called(call) == "BatchedLookup":
            param = call.args[index + 1] if len(call.args) > index + 1 else None
            given = {param.value} if isinstance(param, ast.Constant) else set()
        if given != QUERIES[name].params:
            wrong.append(
                f"{path}:{line}: {name} given {sorted(given)}, takes {sorted(QUERIES[name].params)}"
            )
    assert not wrong, "\n".join(wrong)
