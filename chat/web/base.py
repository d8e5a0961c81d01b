"""The base of every HTTP handler: JSON in and out, auth, limits, error shape."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tornado import httputil, web

from chat import errors
from chat.api import schemas, wire
from chat.auth.ratelimit import address_key
from chat.ops import logs, metrics
from chat.util.compact_json import dumps
from chat.web.headers import SecureHeaders

if TYPE_CHECKING:
    from chat.context import Context

log = logging.getLogger("chat.http")


async def authenticate(ctx: Context, token: str | None) -> dict[str, Any] | None:
    """The claims of a valid, unrevoked login token, or None."""
    claims = ctx.tokens.verify(token) if token else None
    if claims is None:
        return None
    if await ctx.revocations.is_revoked(claims):
        return None
    return claims


def bearer_token(request: httputil.HTTPServerRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class JsonErrors(web.RequestHandler):
    """Answers every error, HTTP or WebSocket handshake, in the contract's JSON shape.

    It also gives every request its id (``X-Request-Id``, echoed), which every
    log line the request causes carries (chat/ops/logs.py).
    """

    request_id: str | None = None

    def set_default_headers(self) -> None:
        super().set_default_headers()
        if self.request_id is None:
            self.request_id = logs.request_id_for(self.request.headers.get("X-Request-Id"))
            # Set in the connection's context, which the handler's task copies.
            logs.REQUEST_ID.set(self.request_id)
        self.set_header("X-Request-Id", self.request_id)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, errors.ChatError):
            error = exc
        elif isinstance(exc, web.HTTPError) or exc is None:
            error = errors.for_status(status_code)
        else:
            error = errors.Internal()
        metrics.refused_error(error.code, "http")
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(dumps(error.to_json()))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, errors.ChatError) and (value.status < 500 or value.status == 503):
            return  # an expected refusal (503: overloaded or unavailable), already answered
        if isinstance(value, web.HTTPError) and value.status_code < 500:
            return  # a client error, in the access log at INFO
        super().log_exception(typ, value, tb)


@web.stream_request_body
class ApiHandler(SecureHeaders, JsonErrors, web.RequestHandler):
    """Reads the body as it streams in, so an oversized one gets a JSON 413."""

    auth_required = True

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.claims: dict[str, Any] | None = None
        self._chunks: list[bytes] = []
        self._size = 0

    def compute_etag(self) -> None:
        # Answers are per user and never cached (Cache-Control: no-store):
        # hashing every body for an ETag would be wasted work.
        return None

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        super().set_default_headers()

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            if not self.cors_preflight():
                raise errors.MethodNotAllowed()
            return
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.ctx.settings.max_body_bytes:
            raise errors.PayloadTooLarge()
        if self.auth_required:
            self.claims = await authenticate(self.ctx, bearer_token(self.request))
            if self.claims is None:
                raise errors.Unauthorized()

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.ctx.settings.max_body_bytes:
            self._chunks.append(chunk)

    @property
    def client_address(self) -> str:
        """The client's address as rate limits key it (X-Real-IP when CHAT_BEHIND_PROXY)."""
        return address_key(self.request.remote_ip)

    @property
    def user_id(self) -> str:
        """The signed-in user's id (on routes with ``auth_required``)."""
        assert self.claims is not None, "only on routes with auth_required"
        user_id: str = self.claims["sub"]
        return user_id

    @property
    def session_id(self) -> str:
        """The session of the token in use (on routes with ``auth_required``)."""
        assert self.claims is not None, "only on routes with auth_required"
        session_id: str = self.claims["sid"]
        return session_id

    def json_body(self, schema_name: str) -> dict[str, Any]:
        """The request body, parsed and checked against ``schemas.REQUEST[schema_name]``."""
        if self._size > self.ctx.settings.max_body_bytes:
            raise errors.PayloadTooLarge()
        try:
            text = b"".join(self._chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidJson() from None
        body = wire.loads(text, errors.InvalidJson())
        if not isinstance(body, dict):
            raise errors.InvalidJson()
        validated: dict[str, Any] = schemas.REQUEST[schema_name].validate(body)
        return validated

    def query_args(self, schema_name: str, integers: Iterable[str] = ()) -> dict[str, Any]:
        """Query-string arguments, parsed and checked against ``schemas.QUERY``."""
        args: dict[str, Any] = {}
        for name, values in self.request.query_arguments.items():
            value: str | int = values[-1].decode("utf-8", "replace")
            if name in integers:
                try:
                    value = int(value)
                except ValueError:
                    raise errors.ValidationFailed(
                        [{"field": name, "message": "must be an integer"}]
                    ) from None
            args[name] = value
        validated: dict[str, Any] = schemas.QUERY[schema_name].validate(args)
        return validated

    def reply(self, status: int, body: Any = None) -> None:
        self.set_status(status)
        if body is None:
            self.clear_header("Content-Type")
            self.finish()
        else:
            self.finish(dumps(body))


class NotFoundHandler(ApiHandler):
    """Every unknown path: a JSON 404 rather than Tornado's HTML page."""

    auth_required = False

    async def prepare(self) -> None:
        raise errors.NotFound(f"No such path: {self.request.path}")
