"""``/ws/{room}``: the path of a chat socket, from handshake to close."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from roomchat.deps import ServicesDep
from roomchat.realtime import closecodes, events
from roomchat.realtime.handshake import HandshakeRefusedError, admit
from roomchat.realtime.manager import Connection
from roomchat.realtime.session import SocketSession, close_socket

log = logging.getLogger(__name__)
router = APIRouter()


@router.websocket("/ws/{room}")
async def room_socket(websocket: WebSocket, room: str, services: ServicesDep) -> None:
    # 1. Check the room, origin and token before accepting: refusals are HTTP answers.
    try:
        admission = await admit(websocket, room, services)
    except HandshakeRefusedError as refusal:
        services.rooms.metrics.refused(refusal.status_code)
        log.info("handshake refused", extra={"status": refusal.status_code, "room": room})
        await refuse(websocket, refusal)
        return
    await websocket.accept()

    # 2. Join: from here on, the room's events queue up for this socket.
    user = admission.principal.username
    budget = services.settings.send_queue_bytes
    connection = Connection(user=user, room=room, queue_bytes=budget)
    async with services.rooms.join(connection):
        # 3. Replay history (the last messages, or all after since=), then presence.
        limit, since = services.settings.history_limit, admission.since
        history = await services.rooms.history(room, since=since, limit=limit)
        replayed_up_to = history[-1].id if history else (since or 0)
        await websocket.send_text(events.history_event(room, history))
        members = await services.rooms.members_for_socket(room)
        await websocket.send_text(events.presence_event(room, members))

        # 4. Chat: read frames, write the room's events, until one side ends.
        close = await SocketSession(
            websocket,
            connection=connection,
            principal=admission.principal,
            rooms=services.rooms,
            settings=services.settings,
            replayed_up_to=replayed_up_to,
        ).run()

    # 5. Out of the room (the others see it leave at once), then close if the server ends it.
    if close is not None:
        services.rooms.metrics.closed(close.code)
        log.info("closing socket", extra={"code": close.code, "room": room, "user": user})
        await close_socket(websocket, close)


async def refuse(websocket: WebSocket, refusal: HandshakeRefusedError) -> None:
    """Answer with the HTTP status; a server without the denial extension gets a close."""
    response = JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        await websocket.close(closecodes.POLICY_VIOLATION, refusal.detail)
