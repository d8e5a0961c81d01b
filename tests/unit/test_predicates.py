"""The compiled predicates of ``chat/api/predicates.py`` against jsonschema itself.

For every request, query and frame schema, thousands of generated bodies
(valid ones, and ones with a field missing, extra, empty, too long, of the
wrong type, with odd Unicode) must get the same answer from both, in one
direction at least: the predicate may say "valid" only when jsonschema does
(so it never lets a bad body through), and for bodies without floats it must
say so whenever jsonschema does (so the fast path really is taken). The
requests over HTTP and WebSockets in the other tests check the error answers.
"""

import random

import pytest

from chat.api import schemas
from chat.api.predicates import UnsupportedSchema, compile_schema

SCHEMAS = {
    f"{group}.{name}": schema
    for group, table in (
        ("request", schemas.REQUESTS),
        ("query", schemas.QUERIES),
        ("frame", schemas.FRAMES),
    )
    for name, schema in table.items()
}

STRINGS = [
    "",
    " ",
    "a",
    "ab",
    "abc",
    "ab c",
    "user_1.x-y",
    "UPPER.case",
    "a/b",
    "a b",
    "é",
    "ééé",
    "日本語",
    "\U0001f600" * 18,
    "\U0001f600" * 19,
    "x" * 7,
    "x" * 8,
    "x" * 63,
    "x" * 64,
    "x" * 65,
    "x" * 72,
    "x" * 73,
    "x" * 200,
    "x" * 1024,
    "x" * 1025,
    "x" * 4000,
    "x" * 4001,
    "+15550100001",
    "+1555",
    "+1234567890123456",
    "15550100001",
    "incoming",
    "outgoing",
    "pending",
    "accepted",
    "declined",
    "auth",
    "subscribe",
    "message",
    "typing",
    "ping",
    "unsubscribe",
    "\n",
    "\t x",
]
OTHERS = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    150,
    199,
    200,
    201,
    10**9,
    10**9 + 1,
    2**70,
    5.0,
    1.5,
    [],
    ["a"],
    {},
    {"a": 1},
]


def candidates(schema):
    """Every sample value, and those of them ``schema`` accepts."""
    pool = STRINGS + OTHERS + ([schema["const"]] if "const" in schema else [])
    validator = schemas.Validator(schema)
    return pool, [value for value in pool if validator.is_valid(value)]


def bodies(rng, schema, count):
    """Bodies made of sample values, each field more often valid than not."""
    pools = {name: candidates(sub) for name, sub in schema["properties"].items()}
    required = set(schema.get("required", ()))
    for _ in range(count):
        body = {}
        for name, (anything, good) in pools.items():
            if rng.random() < (0.9 if name in required else 0.5):
                body[name] = rng.choice(good if good and rng.random() < 0.8 else anything)
        if rng.random() < 0.1:
            body["extra"] = rng.choice(STRINGS)
        yield body


def has_float(value):
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    return isinstance(value, float)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_predicate_agrees_with_jsonschema(name):
    schema = SCHEMAS[name]
    fast = compile_schema(schema)
    validator = schemas.Validator(schema)
    rng = random.Random(name)
    accepted = 0
    for body in bodies(rng, schema, 4000):
        valid = validator.is_valid(body)
        assert not fast(body) or valid, f"the predicate let through {body!r}"
        if valid and not has_float(body):
            assert fast(body), f"the predicate turned away a valid {body!r}"
        accepted += valid
    assert accepted, "no valid body was generated: the test would prove nothing"
    for other in OTHERS + STRINGS:
        assert not fast(other) or validator.is_valid(other)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "number"},
        {"type": "array"},
        {"anyOf": [{"required": ["a"]}]},
        {"oneOf": [{"required": ["a"], "properties": {"a": {"type": "string"}}}]},
        {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
        {"enum": [1, 2]},
        {"minimum": 0.5},
        {"format": "email"},
    ],
)
def test_a_keyword_it_does_not_know_is_refused_at_compile_time(schema):
    with pytest.raises(UnsupportedSchema):
        compile_schema(schema)
