"""Logging: text for a terminal (the default) or one JSON object a line, and request ids.

``CHAT_LOG_FORMAT=json`` writes each record as one JSON object: ``time``,
``level``, ``logger``, ``message``, and when a request caused it
``requestId`` (taken from the request's ``X-Request-Id`` when it is a sane
one, else made up, and echoed in the response). The access line of a request
adds ``remote`` (the client's address; behind a proxy, with
CHAT_BEHIND_PROXY, as the proxy reports it), ``method``, ``route``, ``path``,
``status`` and ``durationMs``.
``CHAT_LOG_LEVEL`` sets the level. Client errors (4xx) are INFO; 5xx ERROR.

Nothing here logs a body, a header value other than the request id, or a
query string: tokens, passwords and message contents never reach the log.
"""

import contextvars
import datetime
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from chat.ops import metrics

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The id of the request being answered, for every line it causes.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SANE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")

access_log = logging.getLogger("chat.access")

# What an access line carries besides the message, as record attributes.
_ACCESS_FIELDS = ("remote", "method", "route", "path", "status", "durationMs")


def request_id_for(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a new random one."""
    if given and _SANE_ID.fullmatch(given):
        return given
    return secrets.token_hex(8)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "requestId", None) or REQUEST_ID.get()
        if request_id:
            entry["requestId"] = request_id
        for field in _ACCESS_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "requestId", None) or REQUEST_ID.get()
        return f"{text} [{request_id}]" if request_id else text


def _option(name: str, argv: Sequence[str], environ: Mapping[str, str], default: str) -> str:
    value = environ.get("CHAT_" + name.upper(), default)
    for arg in argv:
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def configure(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> None:
    """Set up the root logger from --log_format/--log_level or CHAT_LOG_FORMAT/CHAT_LOG_LEVEL.

    Runs before the settings are read (their checks log); a bad value falls
    back to the default here and is refused by the settings right after.
    """
    environ = os.environ if environ is None else environ
    fmt = _option("log_format", argv, environ, "text").lower()
    level = _option("log_level", argv, environ, "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if level in LEVELS else "INFO")


def log_request(handler: Any) -> None:
    """Tornado's ``log_function``: count the request in the metrics and log one line."""
    request = handler.request
    status = handler.get_status()
    seconds = request.request_time()
    route = metrics.route_of(handler)
    metrics.observe_request(request.method, route, status, seconds)
    level = logging.ERROR if status >= 500 else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    access_log.log(
        level,
        "%s %s %d %.1f ms (%s)",
        request.method,
        route,
        status,
        seconds * 1000,
        request.remote_ip,
        extra={
            "requestId": getattr(handler, "request_id", None),
            "remote": request.remote_ip,
            "method": request.method,
            "route": route,
            "path": request.path,
            "status": status,
            "durationMs": round(seconds * 1000, 2),
        },
    )
