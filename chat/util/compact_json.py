"""The one JSON encoding of everything the server sends: compact, UTF-8, not ASCII-escaped."""

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """``obj`` as compact JSON text (an HTTP body)."""
    return _encoder.encode(obj)


def encode(obj: Any) -> bytes:
    """``obj`` as compact JSON in UTF-8 (a WebSocket frame, a broker payload)."""
    return _encoder.encode(obj).encode("utf-8")
