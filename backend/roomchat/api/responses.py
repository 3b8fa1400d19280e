"""Documented error responses shared by several routes (for OpenAPI and its clients)."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

MALFORMED_BODY: Responses = {
    400: {"description": "The body could not be parsed"},
    413: {"description": "The body is larger than ROOMCHAT_MAX_BODY_BYTES"},
}
NOT_LOGGED_IN: Responses = {401: {"description": "Missing, invalid or expired token"}}
THROTTLED: Responses = {429: {"description": "Too many attempts: wait Retry-After seconds"}}
