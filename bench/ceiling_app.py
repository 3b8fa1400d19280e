"""The practical ceiling: a raw C-accelerated broadcast server (picows on uvloop).

No framework, no ASGI, no auth, no storage: each text frame is sent as-is to every socket
of its room from the read callback. It shows how fast fan-out can go on this machine and,
since the same load process measures it, that the load is not what limits the others.
Run by ``python -m bench --ceiling`` (fanout only): ``python -m bench.ceiling_app --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

ROOMS: dict[str, list[WSTransport]] = {}


class Member(WSListener):  # type: ignore[misc]
    def __init__(self, room: str) -> None:
        super().__init__()
        self.room = room

    def on_ws_connected(self, transport: WSTransport) -> None:
        ROOMS.setdefault(self.room, []).append(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            for peer in ROOMS[self.room]:
                peer.send(WSMsgType.TEXT, payload)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        members = ROOMS.get(self.room, [])
        if transport in members:
            members.remove(transport)


def listener(request: WSUpgradeRequest) -> Member | None:
    path = request.path.decode() if isinstance(request.path, bytes) else str(request.path)
    if not path.startswith("/ws/"):
        return None
    return Member(path[len("/ws/") :].split("?", 1)[0])


async def serve(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, as uvicorn does."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await ws_create_server(listener, host, port)
    async with server:
        await stop.wait()
        server.close()
        for members in ROOMS.values():
            for transport in members:
                transport.disconnect(graceful=False)


def main() -> None:
    parser = argparse.ArgumentParser(description="a raw picows broadcast server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
