"""The OpenAPI document: well formed, derived from the route list, and true.

The document's paths and the application's routes both come from
chat/routes.py; these tests check that the application serves exactly that
list, that each route's methods are the ones its handler serves, that the
document's numbers are the running server's settings, that request schemas are
the ones validation uses, and that real responses match the document's
response schemas.
"""

import json
import re
import secrets

import jsonschema
import pytest
from tornado import web

import settings as settings_module
from chat import errors, routes
from chat.api import openapi, schemas
from chat.auth.ratelimit import parse_rates
from chat.web.base import NotFoundHandler
from chat.web.client import ClientHandler
from helpers import PASSWORD, served_routes

ADMIN_KEY = "admin-key-" + "k" * 16
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PATH_ITEM_FIELDS = METHODS | {"summary", "description", "parameters", "servers"}


def routed(app):
    """Pattern -> handler of every API route: not the catch-all, not the web client's files."""
    return {
        pattern: handler
        for pattern, handler in served_routes(app).items()
        if not issubclass(handler, (NotFoundHandler, ClientHandler))
    }


def handler_methods(handler):
    """The HTTP methods a handler class serves (Tornado's defaults answer 405)."""
    return {
        m.lower()
        for m in handler.SUPPORTED_METHODS
        if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())
    }


def documented_operations():
    """(pattern, OpenAPI path, method, Op) of every operation of chat/routes.py."""
    for route in routes.ROUTES:
        for method, op in route.operations.items():
            yield route.pattern, route.path, method, op


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def resolve(doc, pointer):
    assert pointer.startswith("#/"), pointer
    node = doc
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def walk(node):
    """Every dict inside ``node``, ``node`` included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def from_document(schema):
    """The inverse of openapi.to_document: x- extensions back to the project's keywords."""
    back = {v: k for k, v in openapi.EXTENSIONS.items()}
    if isinstance(schema, list):
        return [from_document(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: (
            {n: from_document(s) for n, s in value.items()}
            if key == "properties"
            else from_document(value)
        )
        for key, value in ((back.get(k, k), v) for k, v in schema.items())
    }


def sample_url(path):
    return re.sub(r"{\w+}", "nobody", path)


@pytest.fixture(scope="module")
def doc():
    return openapi.document()


# --- the document's own shape ----------------------------------------------


def test_is_openapi_3_1_json(doc):
    assert json.loads(json.dumps(doc)) == doc
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert isinstance(doc["info"]["title"], str) and isinstance(doc["info"]["version"], str)
    assert set(doc) <= {
        "openapi",
        "info",
        "jsonSchemaDialect",
        "servers",
        "paths",
        "webhooks",
        "components",
        "security",
        "tags",
        "externalDocs",
    }
    tags = {tag["name"] for tag in doc["tags"]}
    schemes = doc["components"]["securitySchemes"]
    for scheme in schemes.values():
        assert scheme["type"] in {"apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"}
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        assert set(item) <= PATH_ITEM_FIELDS, path
        templated = re.findall(r"{(\w+)}", path)
        for method, op in item.items():
            if method not in METHODS:
                continue
            operation_ids.append(op["operationId"])
            assert set(op["tags"]) <= tags
            params = op.get("parameters", [])
            path_params = [p["name"] for p in params if p["in"] == "path"]
            assert path_params == templated, (path, method)
            for p in params:
                assert p["in"] in {"path", "query", "header", "cookie"}
                assert "schema" in p
                if p["in"] == "path":
                    assert p["required"] is True
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes)
            assert op["responses"], (path, method)
            for status, response in op["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]|default", status), status
                assert isinstance(response["description"], str) and response["description"]
                for media in response.get("content", {}).values():
                    assert "schema" in media
            if "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


def test_every_reference_resolves_and_every_schema_is_valid_json_schema(doc):
    for node in walk(doc):
        if isinstance(node.get("$ref"), str):
            resolve(doc, node["$ref"])
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_each_error_code_has_one_status():
    statuses = errors.statuses()
    for cls in errors.error_classes():
        assert statuses[cls.code] == cls.status, f"{cls.__name__}: {cls.code} has two statuses"
    for status in (404, 405, 413, 503, 400, 411, 500):
        error = errors.for_status(status)
        assert statuses[error.code] == (400 if error.code == "bad_request" else error.status)


def test_error_responses_list_codes_of_their_own_status(doc):
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("allOf", [{}])[0].get("$ref") != "#/components/schemas/Error":
                continue
            codes = schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]
            assert codes and all(errors.statuses()[c] == int(status) for c in codes), (
                path,
                method,
                status,
            )
            for code in codes:
                assert f"`{code}`" in response["description"]


# --- the document and the route table ---------------------------------------


def test_the_application_serves_the_route_list_and_documents_every_api_route(app):
    served = routed(app)
    for route in routes.ROUTES:
        assert served.get(route.pattern) is route.handler, route.path
    listed = {route.pattern for route in routes.ROUTES}
    for pattern in served:
        if pattern.startswith("/api/"):
            assert pattern in listed, f"{pattern} is served but not in chat/routes.py"
    for route in routes.ROUTES:
        if route.path.startswith("/api/"):
            assert route.operations, f"{route.path} has no documented operation"


def test_documented_methods_are_exactly_the_served_ones():
    for route in routes.ROUTES:
        if route.operations:
            assert set(route.operations) == handler_methods(route.handler), route.path


def test_each_openapi_path_matches_its_route_pattern(doc):
    paths = [route.path for route in routes.ROUTES if route.operations]
    assert len(paths) == len(set(paths)) == len(doc["paths"])
    for route in routes.ROUTES:
        if route.operations:
            assert route.path in doc["paths"]
        assert re.fullmatch(route.pattern, sample_url(route.path)), route.path
        params = len(re.findall(r"{\w+}", route.path))
        assert re.compile(route.pattern).groups == params, route.path


def test_the_documents_numbers_are_the_running_settings():
    doc = openapi.document(
        settings_module.Settings(
            max_body_bytes=2048,
            join_price=40,
            invite_ttl=3600,
            ws_auth_timeout=2.5,
            token_ttl=120,
        )
    )
    text = json.dumps(doc)
    for shown in (
        "a body over 2 KiB",
        "the body is over 2 KiB",
        "CHAT_JOIN_PRICE (40) coins",
        "CHAT_INVITE_TTL seconds (1 h)",
        "within 2.5 s",
        "`CHAT_TOKEN_TTL`, 2 min on this server",
    ):
        assert shown in text, shown
    for default in ("64 KiB", "(150)", "(24 h)", "within 10 s", "15 min"):
        assert default not in text, default


@pytest.mark.gen_test
@pytest.mark.settings(join_price=40, max_body_bytes=4096)
async def test_the_served_document_has_this_servers_numbers(api):
    resp = await api.get("/api/openapi.json")
    text = json.dumps(resp.body)
    assert "CHAT_JOIN_PRICE (40) coins" in text and "a body over 4 KiB" in text
    assert "(150)" not in text and "64 KiB" not in text


# --- request schemas are the ones validation uses ----------------------------


def test_request_bodies_are_the_validation_schemas(doc):
    components = doc["components"]["schemas"]
    used = set()
    for _, path, method, op in documented_operations():
        documented = doc["paths"][path][method]
        if op.request is None:
            assert "requestBody" not in documented
            continue
        used.add(op.request)
        component = resolve(
            doc, documented["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        )
        assert component == openapi.to_document(schemas.REQUESTS[op.request])
        assert from_document(component) == schemas.REQUESTS[op.request]
        assert schemas.REQUEST[op.request].schema is schemas.REQUESTS[op.request]
    assert used == set(schemas.REQUESTS), "every request schema belongs to an operation"
    for name, schema in schemas.FRAMES.items():
        assert from_document(components[openapi.frame_component(name)]) == schema


def test_byte_length_keywords_are_extensions(doc):
    password = doc["components"]["schemas"]["CreateUserRequest"]["properties"]["password"]
    assert password["x-minUtf8Bytes"] == 8 and password["x-maxUtf8Bytes"] == 72
    text = json.dumps(doc)
    assert '"minUtf8Bytes"' not in text and '"maxUtf8Bytes"' not in text


def test_query_parameters_are_the_validation_schemas(doc):
    for _, path, method, op in documented_operations():
        params = [p for p in doc["paths"][path][method].get("parameters", []) if p["in"] == "query"]
        if op.query is None:
            assert params == []
            continue
        query = schemas.QUERIES[op.query]
        assert {p["name"]: p["schema"] for p in params} == query["properties"]
        assert {p["name"] for p in params if p["required"]} == set(query["required"])


@pytest.mark.gen_test
@pytest.mark.settings(admin_key=ADMIN_KEY)
async def test_every_routed_body_is_checked_against_its_documented_schema(api, app, doc):
    """A body with an unknown field gets exactly the errors the documented schema finds."""
    user = await api.user()
    body = {"unexpectedField": 1}
    served = routed(app)
    checked = 0
    key = lambda e: (e["field"], e["message"])  # noqa: E731
    for pattern, path, method, op in documented_operations():
        if op.request is None or pattern not in served:
            continue
        documented = resolve(
            doc,
            doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"][
                "$ref"
            ],
        )
        with pytest.raises(errors.ValidationFailed) as expected:
            schemas.CompiledSchema(from_document(documented)).validate(body)
        headers = {"X-Admin-Key": ADMIN_KEY} if op.auth == "admin" else None
        resp = await api.request(
            method.upper(), sample_url(path), body, token=user.token, headers=headers
        )
        assert resp.status == 400, (path, resp.body)
        assert resp.body["error"]["code"] == "validation_failed"
        assert sorted(resp.body["error"]["details"]["errors"], key=key) == sorted(
            expected.value.details["errors"], key=key
        ), path
        checked += 1
    assert checked >= 3


# --- real responses match the document ---------------------------------------


def assert_documented(doc, method, path, resp):
    """``resp`` is a response the document declares for this operation, body included."""
    op = doc["paths"][path][method]
    response = op["responses"].get(str(resp.status))
    assert response is not None, f"{method} {path}: {resp.status} is not documented"
    content = response.get("content")
    if content is None:
        assert resp.raw == b"", f"{method} {path}: {resp.status} has no documented body"
        return
    root = dict(content["application/json"]["schema"], components=doc["components"])
    jsonschema.Draft202012Validator(root).validate(resp.body)
    for header in response.get("headers", {}):
        assert header in resp.headers


@pytest.mark.gen_test
async def test_served_document_is_the_document(api, doc):
    resp = await api.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.body == json.loads(json.dumps(doc))


@pytest.mark.gen_test
@pytest.mark.settings(
    admin_key=ADMIN_KEY, rate_limits="on", limit_login_failures=parse_rates("1/300")
)
async def test_account_responses_match_the_document(api, doc):
    check = lambda method, path, resp: assert_documented(doc, method, path, resp)  # noqa: E731
    check("get", "/api/health", await api.get("/api/health"))
    check("get", "/api/openapi.json", await api.get("/api/openapi.json"))

    body = {
        "userId": "doc_" + secrets.token_hex(6),
        "deviceId": "d",
        "name": "Doc",
        "phone": "+49" + str(secrets.randbelow(10**12)).zfill(12),
        "password": PASSWORD,
    }
    created = await api.post("/api/create", body)
    assert created.status == 201
    check("post", "/api/create", created)
    check("post", "/api/create", await api.post("/api/create", body))
    check("post", "/api/create", await api.post("/api/create", {"userId": "x"}))
    check("post", "/api/create", await api.post("/api/create", raw=b"[]"))

    login = await api.post("/api/login", {"userId": body["userId"], "password": PASSWORD})
    check("post", "/api/login", login)
    token = login.body["token"]
    wrong = {"userId": body["userId"], "password": "not the password"}
    check("post", "/api/login", await api.post("/api/login", wrong))
    check("post", "/api/login", limited := await api.post("/api/login", wrong))
    assert limited.status == 429

    other = await api.user()
    profile = "/api/profile/{userId}"
    own = await api.get(f"/api/profile/{body['userId']}", token=token)
    check("get", profile, own)
    assert "phone" in own.body["user"]
    theirs = await api.get(f"/api/profile/{other.user_id}", token=token)
    check("get", profile, theirs)
    assert "phone" not in theirs.body["user"]
    check("get", profile, await api.get("/api/profile/nobody_here", token=token))
    check("get", profile, await api.get("/api/profile/x"))

    grants = "/api/admin/users/{userId}/grants"
    url = f"/api/admin/users/{other.user_id}/grants"
    check("post", grants, await api.post(url, {"coins": 5}, headers={"X-Admin-Key": ADMIN_KEY}))
    check("post", grants, await api.post(url, {"coins": 5}, headers={"X-Admin-Key": "wrong"}))

    check("post", "/api/logout", await api.post("/api/logout", token=token))
    check("post", "/api/logout", await api.post("/api/logout", token=token))


@pytest.mark.gen_test
async def test_room_responses_match_the_document(api, doc):
    check = lambda method, path, resp: assert_documented(doc, method, path, resp)  # noqa: E731
    owner = await api.user(prime=True)
    guest = await api.user(prime=True)
    created = await api.post(
        "/api/chatrooms", {"name": "Doc room", "password": "room-pass"}, token=owner.token
    )
    check("post", "/api/chatrooms", created)
    room_id = created.body["room"]["roomId"]
    check(
        "post", "/api/chatrooms", await api.post("/api/chatrooms", {"name": ""}, token=owner.token)
    )
    check("get", "/api/chatrooms", await api.get("/api/chatrooms", token=owner.token))
    check(
        "get",
        "/api/chatrooms/{roomId}",
        await api.get(f"/api/chatrooms/{room_id}", token=owner.token),
    )
    check(
        "get",
        "/api/chatrooms/{roomId}",
        await api.get(f"/api/chatrooms/{room_id}", token=guest.token),
    )
    invited = await api.post(
        "/api/invite", {"roomId": room_id, "userId": guest.user_id}, token=owner.token
    )
    check("post", "/api/invite", invited)
    joined = await api.post(
        "/api/joinroom", {"inviteToken": invited.body["invitation"]["token"]}, token=guest.token
    )
    check("post", "/api/joinroom", joined)
    check("post", "/api/joinroom", await api.join(guest, room_id, password="wrong-pass"))
    check(
        "post",
        "/api/chatrooms/{roomId}/leave",
        await api.post(f"/api/chatrooms/{room_id}/leave", token=owner.token),
    )
    check(
        "post",
        "/api/chatrooms/{roomId}/leave",
        await api.post(f"/api/chatrooms/{room_id}/leave", token=guest.token),
    )


@pytest.mark.gen_test
async def test_friend_responses_match_the_document(api, doc):
    check = lambda method, path, resp: assert_documented(doc, method, path, resp)  # noqa: E731
    owner = await api.user(prime=True)
    one, two = await api.user(), await api.user()
    room = await api.room(owner)
    for user in (one, two):
        assert (await api.join(user, room["roomId"])).status == 200
    requests = "/api/friend-requests"
    sent = await api.post(requests, {"userId": one.user_id}, token=owner.token)
    assert sent.status == 201
    check("post", requests, sent)
    check("post", requests, await api.post(requests, {"userId": one.user_id}, token=owner.token))
    check("post", requests, await api.post(requests, {"userId": owner.user_id}, token=owner.token))
    check("post", requests, await api.post(requests, {"userId": "nobody_here"}, token=owner.token))
    check(
        "get", requests, await api.get(requests, token=one.token, params={"direction": "incoming"})
    )
    check(
        "get", requests, await api.get(requests, token=one.token, params={"direction": "sideways"})
    )

    request_id = sent.body["friendRequest"]["requestId"]
    accept = "/api/friend-requests/{requestId}/accept"
    url = f"/api/friend-requests/{request_id}/accept"
    check("post", accept, await api.post(url, token=two.token))
    check("post", accept, await api.post(url, token=one.token))
    check("post", accept, await api.post(url, token=one.token))
    check("get", "/api/friends", await api.get("/api/friends", token=one.token))
    check(
        "delete",
        "/api/friend-requests/{requestId}",
        await api.delete(f"/api/friend-requests/{request_id}", token=owner.token),
    )

    pending = await api.post(requests, {"userId": two.user_id}, token=owner.token)
    declined = await api.post(
        f"/api/friend-requests/{pending.body['friendRequest']['requestId']}/decline",
        token=two.token,
    )
    check("post", "/api/friend-requests/{requestId}/decline", declined)
    again = await api.post(requests, {"userId": two.user_id}, token=owner.token)
    check(
        "delete",
        "/api/friend-requests/{requestId}",
        await api.delete(
            f"/api/friend-requests/{again.body['friendRequest']['requestId']}", token=owner.token
        ),
    )
    crossing = await api.post(requests, {"userId": one.user_id}, token=two.token)
    check("post", requests, await api.post(requests, {"userId": two.user_id}, token=one.token))
    assert crossing.status == 201


@pytest.mark.gen_test
async def test_message_responses_match_the_document(api, doc):
    check = lambda method, path, resp: assert_documented(doc, method, path, resp)  # noqa: E731
    owner = await api.user(prime=True)
    stranger = await api.user()
    room = await api.room(owner)
    body = {"roomId": room["roomId"], "content": "hello", "clientMsgId": "c-1"}
    check("post", "/api/messages", await api.post("/api/messages", body, token=owner.token))
    check("post", "/api/messages", await api.post("/api/messages", body, token=owner.token))
    check("post", "/api/messages", await api.post("/api/messages", body, token=stranger.token))
    check(
        "post",
        "/api/messages",
        await api.post("/api/messages", {**body, "content": ""}, token=owner.token),
    )
    check(
        "get",
        "/api/messages",
        await api.get("/api/messages", token=owner.token, params={"roomId": room["roomId"]}),
    )
    check(
        "get",
        "/api/messages",
        await api.get(
            "/api/messages", token=owner.token, params={"roomId": room["roomId"], "limit": 0}
        ),
    )
    check(
        "get",
        "/api/messages",
        await api.get("/api/messages", token=stranger.token, params={"roomId": room["roomId"]}),
    )
