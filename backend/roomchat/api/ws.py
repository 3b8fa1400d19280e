"""``/ws/{room}``: the path of a chat socket, from handshake to close.

Sockets reach ``ROUTE`` in front of FastAPI (``server.routing.ServeSocketsFirst``).
"""

from __future__ import annotations

import logging
import re

from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from roomchat.accounts.service import Principal, authenticate
from roomchat.api import errors
from roomchat.api.schemas import ROOM_PATTERN
from roomchat.realtime import closecodes, events
from roomchat.realtime.connection import Connection
from roomchat.realtime.handshake import Admission, Gate, HandshakeRefusedError, admit
from roomchat.realtime.session import SocketSession, close_socket
from roomchat.realtime.sink import RAW_SEND, frame_sink, text_frame
from roomchat.services import Services

log = logging.getLogger(__name__)

_ROOM = re.compile(ROOM_PATTERN)
DATABASE_AWAY = HandshakeRefusedError(503, "the database is unavailable; try again shortly")


async def room_socket(websocket: WebSocket) -> None:
    room: str = websocket.path_params["room"]
    services: Services = websocket.state.services
    # 1. Check the room, origin, token and since, and claim one of the user's sockets,
    #    before accepting: refusals are HTTP answers.
    try:
        admission = await admit(websocket, room, gate(services))
    except HandshakeRefusedError as refusal:
        services.metrics.refused(refusal.status_code)
        log.info("handshake refused", extra={"status": refusal.status_code, "room": room})
        await refuse(websocket, refusal)
        return
    except errors.DATABASE_UNAVAILABLE as exc:
        # A user not cached, or a room's newest id: the database is needed, and away.
        log.warning("handshake refused, the database is unavailable: %r", exc)
        await refuse(websocket, DATABASE_AWAY)
        return
    try:
        await serve(websocket, room, admission, services)
    except errors.DATABASE_UNAVAILABLE as exc:
        # Joining needs the room's history: a socket already accepted is told, not dropped.
        log.warning("socket closed, the database is unavailable: %r", exc)
        await close_after_failure(websocket)
    finally:
        await services.rooms.release_socket(admission.principal.username)


def gate(services: Services) -> Gate:
    """What a handshake is checked against, from the app-wide objects."""

    async def authenticate_token(token: str | None) -> Principal:
        return await authenticate(services.accounts, token)

    settings = services.settings
    return Gate(
        room_pattern=_ROOM,
        allowed_origins=settings.allowed_origins,
        authenticate=authenticate_token,
        rooms=services.rooms,
        new_rooms=services.user_limits.new_rooms,
        rooms_per_user=settings.rooms_per_user,
        max_sockets_per_user=settings.max_sockets_per_user,
    )


async def serve(websocket: WebSocket, room: str, admission: Admission, services: Services) -> None:
    """An admitted socket, from accept to close."""
    await websocket.accept()

    # 2. Join: from here on, the room's events queue up for this socket.
    user, settings = admission.principal.username, services.settings
    connection = Connection(user=user, room=room, queue_bytes=settings.send_queue_bytes)
    async with services.rooms.join(connection):
        # 3. Replay history (the last messages, or the first after since=), then presence.
        replay = await services.rooms.replay(
            room,
            since=admission.since,
            limit=settings.history_limit if admission.since is None else settings.recovery_limit,
            max_chars=settings.send_queue_bytes,  # a frame no bigger than the socket's budget
        )
        history = events.history_event(
            room, replay.messages, latest=replay.latest, more=replay.more
        )
        await send_first(websocket, history)
        members = await services.rooms.members_for_socket(room)
        await send_first(websocket, events.presence_event(room, members))

        # 4. Chat: read frames, write the room's events, until one side ends.
        close = await SocketSession(
            websocket,
            send=websocket.scope[RAW_SEND],
            connection=connection,
            principal=admission.principal,
            rooms=services.rooms,
            writer=services.writer,
            metrics=services.metrics,
            limits=services.user_limits,
            settings=settings,
            replayed_up_to=replay.latest,
        ).run()

    # 5. Out of the room (its leave follows unless it is back soon), then close if the server
    #    ends it; the claim on one of the user's sockets is released after that.
    if close is not None:
        services.metrics.closed(close.code)
        log.info("closing socket", extra={"code": close.code, "room": room, "user": user})
        await close_socket(websocket, close)


async def send_first(websocket: WebSocket, event: str) -> None:
    """Send a frame ahead of the room's events (they queue until the session starts):
    through the socket's frame sink when it has one, so both go out in one write."""
    sink = frame_sink(websocket.scope)
    if sink is None or not sink.write(text_frame(event)):
        await websocket.send_text(event)


async def refuse(websocket: WebSocket, refusal: HandshakeRefusedError) -> None:
    """Answer with the HTTP status; a server without the denial extension gets a close."""
    headers = {"Retry-After": str(errors.RETRY_AFTER_SECONDS)} if refusal.status_code == 503 else {}
    response = JSONResponse(
        {"detail": refusal.detail}, status_code=refusal.status_code, headers=headers
    )
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        await websocket.close(closecodes.POLICY_VIOLATION, refusal.detail)


async def close_after_failure(websocket: WebSocket) -> None:
    """``1011`` for the socket ``serve`` accepted (its first step), unless it is gone."""
    if websocket.application_state == WebSocketState.CONNECTED:
        await close_socket(websocket, closecodes.SERVER_ERROR)


ROUTE = WebSocketRoute("/ws/{room}", room_socket)
