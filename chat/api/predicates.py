"""A fast yes for the JSON Schemas of ``chat/api/schemas.py``: one plain Python predicate each.

jsonschema walks a schema keyword by keyword on every call (about 50 µs
for a join or message body here); the predicates built here answer the common
case, a valid body, in a few microseconds. They only ever say "valid" when
jsonschema would: each check is at least as strict as the keyword it stands
for (``type: integer`` is ``type(x) is int``, where jsonschema also takes
``5.0``), so a False means only "ask jsonschema", which then decides and
words the errors. ``tests/test_schema_check.py`` holds them to that.

``compile_schema`` knows the keywords these schemas use and refuses any
other at import time, so a schema that grows a new keyword cannot be checked
more loosely than it says.
"""

import functools
import re
from collections.abc import Callable
from typing import Any

# type(x) is T, not isinstance: bool is an int subclass, and True is no integer.
Predicate = Callable[[Any], bool]

_TYPES = {"object": dict, "string": str, "integer": int, "boolean": bool}
_IGNORED = {"description"}


class UnsupportedSchema(ValueError):
    pass


@functools.lru_cache(maxsize=64)
def python_regex(pattern: str) -> "re.Pattern[str]":
    """A JSON Schema (ECMA-262) ``pattern`` as Python reads it.

    ECMA's ``$`` matches only at the very end; Python's also before a final
    ``\\n``, which would let ``"alice\\n"`` pass ``^[a-z]+$``. A ``$`` that
    ends the pattern becomes ``\\Z``; no schema here uses ``$`` elsewhere.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    if "$" in pattern.replace("\\$", ""):
        raise UnsupportedSchema(f"pattern {pattern!r}: '$' other than at its end")
    return re.compile(pattern)


def compile_schema(schema: dict[str, Any]) -> Predicate:
    """A predicate ``check(instance) -> bool`` that is True only for valid instances."""
    compiled = [_compile_keyword(schema, keyword) for keyword in schema if keyword not in _IGNORED]
    checks = tuple(check for check in compiled if check is not None)
    if len(checks) == 1:
        return checks[0]

    def check_all(instance: Any) -> bool:
        for check in checks:
            if not check(instance):
                return False
        return True

    return check_all


def _compile_keyword(schema: dict[str, Any], keyword: str) -> Predicate | None:
    value = schema[keyword]
    if keyword == "type":
        if value not in _TYPES:
            raise UnsupportedSchema(f"type {value!r}")
        expected = _TYPES[value]
        return lambda x: type(x) is expected
    if keyword == "properties":
        return _properties(value, schema.get("additionalProperties", True))
    if keyword == "additionalProperties":
        if value is not False or "properties" not in schema:
            raise UnsupportedSchema("additionalProperties other than false beside properties")
        return None  # checked with the properties
    if keyword == "required":
        names = tuple(value)
        return lambda x: type(x) is dict and all(name in x for name in names)
    if keyword == "minProperties":
        return lambda x: type(x) is dict and len(x) >= value
    if keyword == "oneOf":
        return _one_of_required(value)
    if keyword in ("minLength", "maxLength", "pattern", "minUtf8Bytes", "maxUtf8Bytes"):
        return _string_rule(keyword, value)
    if keyword in ("minimum", "maximum"):
        if type(value) is not int:
            raise UnsupportedSchema(f"{keyword} {value!r}")
        if keyword == "minimum":
            return lambda x: type(x) is int and x >= value
        return lambda x: type(x) is int and x <= value
    if keyword in ("enum", "const"):
        options = value if keyword == "enum" else [value]
        if not all(type(option) is str for option in options):
            raise UnsupportedSchema(f"{keyword} of other than strings")
        allowed = frozenset(options)
        return lambda x: type(x) is str and x in allowed
    raise UnsupportedSchema(f"keyword {keyword!r}")


def _properties(properties: dict[str, Any], additional: Any) -> Predicate:
    checks = {name: compile_schema(sub) for name, sub in properties.items()}

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return False
        for name, item in x.items():
            sub = checks.get(name)
            if sub is None:
                if additional is False:
                    return False
            elif not sub(item):
                return False
        return True

    return check


def _one_of_required(alternatives: list[dict[str, Any]]) -> Predicate:
    """``oneOf`` whose alternatives only list required names: exactly one is met."""
    groups = []
    for alternative in alternatives:
        if set(alternative) != {"required"}:
            raise UnsupportedSchema("oneOf alternatives other than 'required' lists")
        groups.append(tuple(alternative["required"]))

    def check(x: Any) -> bool:
        return type(x) is dict and sum(all(n in x for n in names) for names in groups) == 1

    return check


def _string_rule(keyword: str, value: Any) -> Predicate:
    # Every string rule also insists on a string: jsonschema would let other
    # types pass it, but "ask jsonschema" is always a safe answer.
    if keyword == "minLength":
        return lambda x: type(x) is str and len(x) >= value
    if keyword == "maxLength":
        return lambda x: type(x) is str and len(x) <= value
    if keyword == "pattern":
        search = python_regex(value).search
        return lambda x: type(x) is str and search(x) is not None
    if keyword == "minUtf8Bytes":
        return lambda x: type(x) is str and len(x.encode("utf-8")) >= value
    return lambda x: type(x) is str and len(x.encode("utf-8")) <= value
