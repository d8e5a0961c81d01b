"""Named, parameterized queries loaded from ``sql/queries/*.sql``.

A file holds blocks like::

    -- name: get_user
    -- Reads one user; takes no lock.
    SELECT ... FROM users WHERE user_id = %(user_id)s;

Each block is one statement; parameters are ``%(name)s`` and are passed as a
dict. Loading fails loudly on a block without a name, a repeated name, a
block with no statement or more than one, or a stray ``%``; running a query
fails loudly when the parameters given differ from the ones it names.
"""

import os
import re
from collections.abc import Mapping
from typing import Any

NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[a-z][a-z0-9_]*)\s*$")
PARAM = re.compile(r"%\((?P<name>[a-z_][a-z0-9_]*)\)s")
PARAM_OR_LITERAL = re.compile(r"%\([a-z_][a-z0-9_]*\)s|%%")


class QueryFileError(Exception):
    pass


class Query:
    __slots__ = ("name", "sql", "params", "source")

    def __init__(self, name: str, sql: str, source: str) -> None:
        self.name = name
        self.sql = sql
        self.params = frozenset(PARAM.findall(sql))
        self.source = source

    def bind(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Check the given parameters against the ones the query names."""
        given = params.keys()
        if given != self.params:
            missing = sorted(self.params - given)
            extra = sorted(given - self.params)
            raise TypeError(
                f"query {self.name} ({self.source}): missing {missing}, unexpected {extra}"
            )
        return params

    def __repr__(self) -> str:
        return f"Query({self.name})"


def parse(text: str, source: str = "<string>") -> dict[str, Query]:
    queries: dict[str, Query] = {}
    name: str | None = None
    body: list[str] = []
    start = 0

    def close() -> None:
        if name is None:
            if any(line.strip() and not line.strip().startswith("--") for line in body):
                raise QueryFileError(f"{source}:{start}: SQL before the first '-- name:'")
            return
        sql = "\n".join(line for line in body if not line.strip().startswith("--")).strip()
        if not sql:
            raise QueryFileError(f"{source}:{start}: query {name} has no statement")
        if not sql.endswith(";"):
            raise QueryFileError(f"{source}:{start}: query {name} must end with ';'")
        sql = sql[:-1].rstrip()
        if ";" in sql:
            raise QueryFileError(f"{source}:{start}: query {name} holds more than one statement")
        if "%" in PARAM_OR_LITERAL.sub("", sql):
            raise QueryFileError(
                f"{source}:{start}: query {name} has a '%' that is not a %(param)s"
            )
        if name in queries:
            raise QueryFileError(f"{source}:{start}: query {name} is defined twice")
        queries[name] = Query(name, sql, source)

    for number, line in enumerate(text.splitlines(), 1):
        match = NAME_LINE.match(line.strip())
        if match:
            close()
            name, body, start = match["name"], [], number
        else:
            body.append(line)
    close()
    return queries


def load_dir(path: str) -> dict[str, Query]:
    """Every query of every ``*.sql`` file in ``path``; names are unique across files."""
    queries: dict[str, Query] = {}
    for filename in sorted(os.listdir(path)):
        if not filename.endswith(".sql"):
            continue
        full = os.path.join(path, filename)
        with open(full, encoding="utf-8") as f:
            found = parse(f.read(), source=filename)
        for name in found:
            if name in queries:
                raise QueryFileError(
                    f"{filename}: query {name} is already defined in {queries[name].source}"
                )
        queries.update(found)
    if not queries:
        raise QueryFileError(f"{path} holds no queries")
    return queries
