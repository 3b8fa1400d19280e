"""The reference point: FastAPI's documented ``ConnectionManager``, with a dict of rooms.

This is the broadcast example from FastAPI's WebSockets tutorial, changed only so that
sockets are grouped by room: no authentication, no storage, no queues, and a broadcast
that awaits each member in turn (``for ws in room: await ws.send_text(msg)``). It runs
under the same uvicorn as roomchat (``python -m bench.baseline_app --port N``).
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

#: uvicorn's options, as ``roomchat serve`` passes them when this was written, so that
#: both servers run the same WebSocket implementation with the same frame limit.
UVICORN_OPTIONS = {
    "ws": "websockets-sansio",
    "ws_max_size": 65536,
    "proxy_headers": True,
}


class ConnectionManager:
    def __init__(self) -> None:
        self.rooms: dict[str, list[WebSocket]] = {}

    async def connect(self, room: str, websocket: WebSocket) -> None:
        await websocket.accept()
        self.rooms.setdefault(room, []).append(websocket)

    def disconnect(self, room: str, websocket: WebSocket) -> None:
        self.rooms[room].remove(websocket)

    async def broadcast(self, room: str, message: str) -> None:
        for connection in self.rooms[room]:
            await connection.send_text(message)


app = FastAPI()
manager = ConnectionManager()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws/{room}")
async def websocket_endpoint(websocket: WebSocket, room: str) -> None:
    await manager.connect(room, websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(room, data)
    except WebSocketDisconnect:
        manager.disconnect(room, websocket)


def main() -> None:
    parser = argparse.ArgumentParser(description="the baseline chat server for `make bench`")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default=UVICORN_OPTIONS["ws"], help="uvicorn's ws implementation")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    options = UVICORN_OPTIONS | {"ws": args.ws}
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **options)


if __name__ == "__main__":
    main()
