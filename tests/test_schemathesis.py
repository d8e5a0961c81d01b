"""Property-based tests of every operation of /api/openapi.json (schemathesis, pinned).

A real server.py on the test database; schemathesis generates requests from
the published document (valid and invalid bodies, query strings, path ids)
and checks every answer: never a 5xx, a status the operation documents, the
documented content type and headers, and a body matching the documented
schema. Examples per operation are bounded (``EXAMPLES``) so the suite's
time stays modest; a failure prints the request that reproduces it.
"""

import json
import secrets
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chat.api import openapi
from helpers import PASSWORD, TEST_SECRET
from procs import ServerProcess

EXAMPLES = 20
ADMIN_KEY = "schemathesis-admin-key-0123"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _post(base_url, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        base_url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture(scope="module")
def live(database):
    server = ServerProcess(database, TEST_SECRET, admin_key=ADMIN_KEY)
    server.start()
    user_id = "st_" + secrets.token_hex(5)
    _post(
        server.base_url,
        "/api/create",
        {
            "userId": user_id,
            "deviceId": "d",
            "name": "Schemathesis",
            "phone": "+1" + str(secrets.randbelow(10**12)).zfill(12),
            "password": PASSWORD,
            "isPrime": True,
            "availCoins": 1000,
        },
    )
    server.token = _post(server.base_url, "/api/login", {"userId": user_id, "password": PASSWORD})[
        "token"
    ]
    yield server
    log = server.close()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def live_schema(live):
    return schemathesis.openapi.from_url(live.base_url + "/api/openapi.json")


def _cases():
    """(method, path, mode) for every operation of the document as built at import time.

    Invalid input (NEGATIVE) only where the operation takes any: with no
    parameter and no body there is nothing to make invalid.
    """
    doc = openapi.document()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, GenerationMode.POSITIVE
            if operation.get("parameters") or operation.get("requestBody"):
                yield method.upper(), path, GenerationMode.NEGATIVE


@pytest.mark.parametrize("method, path, mode", list(_cases()))
def test_every_answer_matches_the_document(live, live_schema, method, path, mode):
    operation = live_schema[path][method]
    headers = {}
    if path.startswith("/api/admin/"):
        headers["X-Admin-Key"] = ADMIN_KEY
    else:
        headers["Authorization"] = f"Bearer {live.token}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case):
        sent = {**headers, **(case.headers or {})}
        case.call_and_validate(base_url=live.base_url, headers=sent, checks=CHECKS, timeout=30)

    check()
