"""Errors that carry their own API code and HTTP status.

Raise a ``ChatError`` subclass anywhere below a handler; ``ApiHandler.write_error``
turns it into the contract's single error shape::

    {"error": {"code": "...", "message": "...", "details": {...}}}
"""

from typing import Any


class ChatError(Exception):
    code: str = "internal"
    status: int = 500
    message: str = "Something went wrong on our side."

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(ChatError):
    """A bare 4xx that Tornado raised itself (see ``for_status``); its status varies."""

    code, status, message = "bad_request", 400, "The request could not be understood."


class InvalidJson(ChatError):
    code, status, message = "invalid_json", 400, "The request body must be a JSON object."


class ValidationFailed(ChatError):
    code, status, message = "validation_failed", 400, "The request is not valid."

    def __init__(self, errors: list[dict[str, str]], message: str | None = None) -> None:
        super().__init__(message, {"errors": errors})


class Unauthorized(ChatError):
    code, status, message = "unauthorized", 401, "A valid bearer token is required."


class InvalidCredentials(ChatError):
    code, status, message = "invalid_credentials", 401, "Wrong user or password."


class InsufficientCoins(ChatError):
    code, status = "insufficient_coins", 402

    def __init__(self, required: int, available: int) -> None:
        super().__init__(
            f"Joining this room costs {required} coins; you have {available}.",
            {"required": required, "available": available},
        )


class Forbidden(ChatError):
    code, status, message = "forbidden", 403, "You are not allowed to do that."


class NotPrime(ChatError):
    code, status, message = "not_prime", 403, "This needs a prime member."


class WrongRoomPassword(ChatError):
    code, status, message = "wrong_room_password", 403, "The room password is wrong."


class NotRoomMember(ChatError):
    code, status, message = "not_room_member", 403, "You are not a member of this room."


class NotParticipant(ChatError):
    code, status, message = "not_participant", 403, "You share no room with this user."


class InviteInvalid(ChatError):
    code, status, message = (
        "invite_invalid",
        403,
        "This invitation is unknown, expired, used, or not yours.",
    )


class NotFound(ChatError):
    code, status, message = "not_found", 404, "Not found."


class MethodNotAllowed(ChatError):
    code, status, message = "method_not_allowed", 405, "This method is not allowed here."


class UserExists(ChatError):
    code, status, message = "user_exists", 409, "That userId or phone is already registered."


class RoomFull(ChatError):
    code, status, message = "room_full", 409, "The room is full."


class RequestExists(ChatError):
    code, status, message = "request_exists", 409, "You already sent this user a friend request."


class AlreadyFriends(ChatError):
    code, status, message = "already_friends", 409, "You are already friends."


class RequestNotPending(ChatError):
    code, status, message = (
        "request_not_pending",
        409,
        "This friend request has already been answered.",
    )

    def __init__(self, current_status: str) -> None:
        super().__init__(None, {"status": current_status})


class PayloadTooLarge(ChatError):
    code, status, message = "payload_too_large", 413, "The request body is too large."


class RateLimited(ChatError):
    code, status, message = "rate_limited", 429, "Too many attempts; try again later."

    def __init__(self, retry_after: float) -> None:
        retry_after = max(1, int(retry_after + 0.999))
        super().__init__(
            None, {"retryAfter": retry_after}, headers={"Retry-After": str(retry_after)}
        )


class Unavailable(ChatError):
    """The database cannot be reached (or does not answer in time): try again shortly."""

    code, status, message = "unavailable", 503, "The service is temporarily unavailable."

    def __init__(self, message: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, {"retryAfter": retry_after}, {"Retry-After": str(retry_after)})


class Overloaded(ChatError):
    """Refused at once because the server is busier than it can serve in time."""

    code, status, message = "overloaded", 503, "The server is overloaded; try again shortly."

    def __init__(self, message: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, {"retryAfter": retry_after}, {"Retry-After": str(retry_after)})


class Internal(ChatError):
    pass


def error_classes() -> list[type[ChatError]]:
    """ChatError and every subclass of it, wherever defined."""
    found: list[type[ChatError]] = [ChatError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


def statuses() -> dict[str, int]:
    """Every error code of the API and its HTTP status, from the error classes."""
    return {cls.code: cls.status for cls in error_classes()}


# Bare statuses Tornado raises itself, answered by the error class of that status.
_FOR_STATUS = {
    cls.status: cls for cls in (NotFound, MethodNotAllowed, PayloadTooLarge, Unavailable)
}


def for_status(status: int) -> ChatError:
    """The ChatError to report for a bare HTTP status Tornado raised itself."""
    if status in _FOR_STATUS:
        return _FOR_STATUS[status]()
    if 400 <= status < 500:
        err = BadRequest()
        err.status = status
        return err
    return Internal()
