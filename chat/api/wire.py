"""JSON off the wire (HTTP bodies and WebSocket frames), refused at the boundary when unusable.

``json.loads`` accepts text that nothing downstream can handle: a lone UTF-16
surrogate escape (``"\\ud800"``) decodes to a ``str`` that cannot be encoded
as UTF-8, so the database driver, the JSON encoder of a reply or a log
handler fails on it far from here, and an integer of more than 4,300 digits
raises ``ValueError`` instead of ``JSONDecodeError``. Both are the client's
mistake: ``400 validation_failed`` naming the field, decided before the
request or frame reaches any shared work (a batch, a socket's reply).
"""

import json
import re
from typing import Any

from chat import errors

# Only a \u escape can produce a surrogate: strict UTF-8 decoding refuses
# encoded surrogates, so a body without one needs no walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str, invalid: errors.ChatError) -> Any:
    """Parse ``text``; raises ``invalid`` when it is not JSON, ValidationFailed when unusable."""
    value = parse(text, invalid)
    check_unicode(text, value)
    return value


def parse(text: str, invalid: errors.ChatError) -> Any:
    """Parse ``text`` (not yet checked for lone surrogates: see ``check_unicode``)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise invalid from None
    except ValueError:
        # json raises a plain ValueError for integers beyond sys.int_info's digit limit.
        raise errors.ValidationFailed(
            [{"field": "", "message": "holds a number out of range"}]
        ) from None
    return value


def check_unicode(text: str, value: Any) -> None:
    """Raise ValidationFailed when ``value`` (parsed from ``text``) holds a lone surrogate."""
    if _SURROGATE_ESCAPE.search(text):
        field = unencodable_field(value)
        if field is not None:
            raise errors.ValidationFailed([{"field": field, "message": "is not valid Unicode"}])


def encodable(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unencodable_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (key or value) that is not valid Unicode, or None."""
    if isinstance(value, str):
        return None if encodable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if not encodable(key):
                return path or "(a key)"
            found = unencodable_field(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unencodable_field(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None
