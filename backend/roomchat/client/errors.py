"""Every error the client raises: small exceptions that carry what went wrong."""

from __future__ import annotations


class RoomchatError(Exception):
    """The base of every error the client raises."""


class HTTPError(RoomchatError):
    """The server answered with an error status; ``detail`` is its ``{"detail": …}``."""

    def __init__(
        self, status_code: int, detail: object, *, what: str, retry_after: str | None = None
    ) -> None:
        super().__init__(f"{what}: HTTP {status_code}: {sentence(detail)}")
        self.status_code = status_code
        self.detail = detail
        #: The answer's ``Retry-After`` header, when it had one (429, 503).
        self.retry_after = retry_after


def sentence(detail: object) -> str:
    """A ``detail`` as a person reads it: FastAPI's list of validation errors becomes
    "room: String should match pattern …", not a list of dicts."""
    if not isinstance(detail, list):
        return str(detail)
    problems = []
    for error in detail:
        if not isinstance(error, dict) or "msg" not in error:
            problems.append(str(error))
            continue
        where = [
            str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")
        ]
        problems.append(f"{'.'.join(where)}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(problems)


class AuthenticationError(HTTPError):
    """401: wrong username or password, or a refused token and no credentials to log in."""


class HandshakeRefusedError(HTTPError):
    """A room socket was refused before it opened: 401 token, 403 origin, 422 room name."""


class RoomClosedError(RoomchatError):
    """The server closed the room's socket with a code the client does not recover from.

    ``1008`` token expired (and no credentials to log in again) or repeated abuse, ``1009``
    a frame too large, or any code outside the reconnect set.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(
            f"the server closed the room with code {code}" + (f": {reason}" * bool(reason))
        )
        self.code = code
        self.reason = reason


class ServerUnavailableError(RoomchatError):
    """The server could not be reached, or did not answer a read or a login (or a room
    could not reconnect within its attempts): trying again cannot do anything twice. A post
    that went out unanswered raises ``OutcomeUnknownError`` instead."""


class OutcomeUnknownError(RoomchatError):
    """A request was sent but no answer came (a read timed out, the connection dropped):
    it may or may not have taken effect.

    A post raises it only after its own retries, each with the same ``idempotency_key``;
    posting again later with that key is safe: the server stores the message at most once.
    """

    def __init__(self, what: str, *, idempotency_key: str | None = None) -> None:
        super().__init__(f"{what}: no answer, so it may or may not have been done")
        self.idempotency_key = idempotency_key


class MessageRefusedError(RoomchatError):
    """The server refused a message sent on a room's socket for good (``text_too_long``,
    ``empty_text``…), or kept refusing it (``rate_limited``…) past the client's retries."""

    def __init__(self, code: str, detail: str, *, client_id: str) -> None:
        super().__init__(f"message {client_id} refused: {code}: {detail}")
        self.code = code
        self.detail = detail
        self.client_id = client_id
