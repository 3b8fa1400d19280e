"""``roomchat chat ROOM``: a terminal chat built on the client.

Incoming events print above a ``> `` prompt; a line you type is sent to the room.
``/who`` lists who is online, ``/quit`` (or end of input, Ctrl-D) leaves. On a terminal
the prompt and what you have typed so far are redrawn below each incoming line (with GNU
readline); with pipes it reads lines and prints lines, which is how scripts and the tests
drive it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Literal, TextIO

from roomchat.client.errors import RoomchatError
from roomchat.client.http import Client
from roomchat.client.models import (
    Disconnected,
    ErrorEvent,
    Event,
    Join,
    Leave,
    Message,
    Presence,
)
from roomchat.client.room import Room

PROMPT = "> "
HELP = (
    "type a message and press Enter (start it with // to send a leading /); "
    "/who lists who is online; /quit leaves"
)
COMMANDS = ("/who", "/help", "/?", "/quit")


class Screen:
    """Prints lines above the prompt; plain lines when not on a terminal."""

    def __init__(self, out: TextIO, *, interactive: bool) -> None:
        self._out = out
        self.interactive = interactive
        self._readline = None
        if interactive:
            try:
                import readline  # line editing for input(); optional

                self._readline = readline
            except ImportError:  # pragma: no cover (platforms without readline)
                pass

    def show(self, line: str) -> None:
        if not self.interactive:
            self._out.write(line + "\n")
        else:
            typed = self._readline.get_line_buffer() if self._readline else ""
            self._out.write("\r\x1b[K" + line + "\n" + PROMPT + typed)
        self._out.flush()


def safe(text: str) -> str:
    """Text as it may reach a terminal: no escape sequences or control characters."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


#: Where the room is: not joined yet, joined, or reconnecting (a ``Presence`` follows).
Joined = bool | Literal["reconnecting"]


def describe(event: Event, me: str, joined: Joined) -> str | None:
    if isinstance(event, Message):
        return f"[{event.time.astimezone():%H:%M}] {safe(event.user)}: {safe(event.text)}"
    if isinstance(event, Join):
        return None if event.user == me else f"* {safe(event.user)} joined"
    if isinstance(event, Leave):
        return f"* {safe(event.user)} left"
    if isinstance(event, Presence):
        online = ", ".join(safe(m) for m in event.members)
        if joined == "reconnecting":
            return f"* reconnected to {safe(event.room)}; online: {online}"
        if joined:  # the server's fresh list (after its backend came back, say)
            return f"* online in {safe(event.room)}: {online}"
        return f"* you are in {safe(event.room)} as {safe(me)}; online: {online} (/help)"
    if isinstance(event, ErrorEvent):
        return f"! {safe(event.detail)}"
    if isinstance(event, Disconnected):
        why = f" ({event.code}{': ' + safe(event.reason) if event.reason else ''})"
        return f"* disconnected{why}, retrying…"
    return None  # typing: too chatty for a line each


def read_lines(
    loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None], prompt: str
) -> None:
    """In a daemon thread (a blocked read must not keep the process alive): stdin lines."""
    try:
        while True:
            line = input(prompt) if prompt else sys.stdin.readline()
            if not prompt and not line:
                break
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
    except (EOFError, KeyboardInterrupt, ValueError, OSError):
        pass
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def chat(client: Client, room_name: str, *, out: TextIO | None = None) -> int:
    """Run the chat until /quit, end of input, or the room ends; return an exit status."""
    out = out or sys.stdout
    screen = Screen(out, interactive=sys.stdin.isatty() and out.isatty())
    me = (await client.me()).username
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    reader = threading.Thread(
        target=read_lines,
        args=(asyncio.get_running_loop(), lines, PROMPT if screen.interactive else ""),
        name="roomchat-stdin",
        daemon=True,
    )
    async with client.room(room_name) as room:
        reader.start()
        shown = asyncio.create_task(_show(room, screen, me))
        typed = asyncio.create_task(_type(room, client, lines, screen))
        done, pending = await asyncio.wait({shown, typed}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if screen.interactive:
        out.write("\n")
    error = next(iter(done)).exception()
    if isinstance(error, RoomchatError):
        screen.show(f"! {error}")
        return 1
    if error is not None:
        raise error
    return 0


async def _show(room: Room, screen: Screen, me: str) -> None:
    joined: Joined = False
    async for event in room:
        line = describe(event, me, joined)
        if isinstance(event, Presence):
            joined = True
        elif isinstance(event, Disconnected):
            joined = "reconnecting"
        if line is not None:
            screen.show(line)


async def _type(
    room: Room, client: Client, lines: asyncio.Queue[str | None], screen: Screen
) -> None:
    while (line := await lines.get()) is not None:
        command = line.strip()
        if command == "/quit":
            return
        if command == "/who":
            members = await client.members(room.name)
            screen.show("* online: " + ", ".join(safe(m) for m in members))
        elif command in ("/help", "/?"):
            screen.show(f"* {HELP}")
        elif command.startswith("//"):
            await room.send(line.lstrip()[1:])
        elif command.startswith("/"):
            name = command.split()[0]
            screen.show(f"! unknown command {safe(name)}: not sent. {HELP}")
        elif command:
            await room.send(line)
