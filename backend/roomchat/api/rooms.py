"""Rooms over HTTP: list them, page through history, post, see who is online."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError

from roomchat import store
from roomchat.api.deps import CurrentUser, ServicesDep
from roomchat.api.errors import RETRY_AFTER_SECONDS
from roomchat.api.responses import MALFORMED_BODY, NOT_LOGGED_IN, THROTTLED
from roomchat.api.schemas import (
    CLIENT_ID_PATTERN,
    ROOM_PATTERN,
    MembersOut,
    MessageIn,
    MessageOut,
    MessagePage,
    RoomOut,
)
from roomchat.realtime import events
from roomchat.realtime.frames import FrameError, check_text, excerpt
from roomchat.realtime.writer import ChatUnavailableError
from roomchat.services import Services

router = APIRouter(prefix="/api/rooms", tags=["rooms"], responses=NOT_LOGGED_IN)

RoomName = Annotated[str, Path(pattern=ROOM_PATTERN, description="1-64 of A-Z a-z 0-9 _ -")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=CLIENT_ID_PATTERN,
        description="Send exactly once: the same key from the same user in the same room "
        "within 24 hours stores nothing new and answers 201 with the first message. The "
        "same keys as a socket message's client_id: 1-64 printable ASCII characters, no "
        "space at either end.",
    ),
]


@router.get("", response_model=list[RoomOut])
async def list_rooms(
    _user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    after: Annotated[str | None, Query(pattern=ROOM_PATTERN)] = None,
) -> list[RoomOut]:
    """Rooms with messages or members, with how many users are online in each: a page of
    names in order, after ``after`` (the next page: ``after`` = the last name of this one)."""
    stored = await services.store.rooms_with_messages(limit=limit, after=after)
    online = await services.rooms.online()
    later = {name for name in online if after is None or name > after}
    names = sorted(set(stored) | later)[:limit]
    return [RoomOut(name=name, members=online.get(name, 0)) for name in names]


@router.get("/{room}/messages", response_model=MessagePage)
async def list_messages(
    room: RoomName,
    _user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=0)] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> MessagePage:
    """A page of history, oldest first: the latest, or ``before`` / ``after`` an id.

    Given both, the page holds the first messages after ``after`` that are before ``before``.
    """
    messages = await services.store.list_messages(
        room=room, limit=limit, before=before, after=after
    )
    return MessagePage(messages=[MessageOut(**events.message_dict(m)) for m in messages])


@router.post(
    "/{room}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
    responses={
        **THROTTLED,
        **MALFORMED_BODY,
        503: {"description": "The message could not be stored or delivered"},
    },
)
async def post_message(
    room: RoomName,
    body: MessageIn,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> MessageOut:
    """Post a message; every socket in the room receives it. With ``Idempotency-Key``, a
    retry is safe: a repeat answers with the first message and delivers nothing new."""
    checked = check_text(body.text, max_chars=services.settings.max_message_chars)
    if isinstance(checked, FrameError):
        error = {"type": checked.code, "loc": ("body", "text"), "msg": checked.detail}
        raise RequestValidationError([{**error, "input": excerpt(body.text)}])
    if not await services.user_limits.messages.allow(user.user_id):
        services.metrics.rate_limited.labels("http").inc()
        retry_after = str(max(1, round(1 / services.settings.messages_per_second)))
        raise HTTPException(429, detail="too many messages", headers={"Retry-After": retry_after})
    if await services.rooms.is_new(room):
        await take_new_room(services, user.user_id)
    draft = store.Draft(user.user_id, user.username, checked.text, idempotency_key)
    try:
        message = await services.writer.submit(room, draft)
    except ChatUnavailableError as exc:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        raise HTTPException(503, detail=str(exc), headers=retry) from None
    return MessageOut(**events.message_dict(message))


@router.get("/{room}/members", response_model=MembersOut)
async def list_members(room: RoomName, _user: CurrentUser, services: ServicesDep) -> MembersOut:
    """Users online in the room now."""
    return MembersOut(members=await services.rooms.members(room))


async def take_new_room(services: Services, user_id: int) -> None:
    """Count a room created by first use against the user's hourly quota; 429 past it."""
    quota = services.user_limits.new_rooms
    if not await quota.allow(str(user_id)):
        retry_after = str(max(1, math.ceil(await quota.retry_after(str(user_id)))))
        detail = f"at most {services.settings.rooms_per_user} new rooms an hour"
        raise HTTPException(429, detail=detail, headers={"Retry-After": retry_after})
