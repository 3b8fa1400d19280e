"""``Client``: logs in, keeps a fresh token, and makes the HTTP calls of the API."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import httpx

from roomchat.client.backoff import Backoff
from roomchat.client.errors import (
    AuthenticationError,
    HTTPError,
    OutcomeUnknownError,
    ServerUnavailableError,
)
from roomchat.client.models import Message, RoomInfo, User
from roomchat.client.room import Room


class Client:
    """A roomchat API client: ``async with Client(url, username=…, password=…) as c:``.

    With ``token=`` alone it uses that token and raises ``AuthenticationError`` once it is
    refused; with ``username=`` and ``password=`` (and optionally a first ``token=``) it
    logs in again whenever the token expires or is refused.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        if token is None and (username is None or password is None):
            raise ValueError("give token=, or username= and password=")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._token = token
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        #: Log in again this long before the token expires (and allow this clock skew).
        self.refresh_margin = 60.0
        #: After a ``1008 too many messages`` close, wait this long before reconnecting.
        self.abuse_pause = 5.0
        self._http: httpx.AsyncClient | None = None
        self._login_lock = asyncio.Lock()

    async def __aenter__(self) -> Client:
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
        try:
            if self._token is None:
                await self.login()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- tokens -----------------------------------------------------------------------

    @property
    def token(self) -> str:
        if self._token is None:
            raise AuthenticationError(401, "not logged in", what="token")
        return self._token

    @property
    def can_log_in(self) -> bool:
        return self.username is not None and self._password is not None

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    def token_expiring(self) -> bool:
        """True when the token is expired or about to be (read from its ``exp`` claim)."""
        expires_at = token_expires_at(self._token) if self._token else None
        return expires_at is None or expires_at <= time.time() + self.refresh_margin

    async def login(self) -> str:
        """Log in with the password grant; return (and keep) the new access token."""
        if self.username is None or self._password is None:
            raise AuthenticationError(401, "no username and password to log in", what="login")
        form = {"username": self.username, "password": self._password}
        response = await self._send("POST", "/api/auth/token", data=form)
        if response.status_code == 401:
            raise AuthenticationError(401, _detail(response), what="login")
        _raise_for_status(response, "login")
        self._token = str(response.json()["access_token"])
        return self._token

    async def relogin(self, stale: str | None) -> str:
        """Log in again because ``stale`` was refused, unless another task already did."""
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return self._token
            if not self.can_log_in:
                raise AuthenticationError(401, "the token was refused", what="token")
            return await self.login()

    async def fresh_token(self) -> str:
        """The token, logged in again first when it is about to expire and we can."""
        if self.can_log_in and (self._token is None or self.token_expiring()):
            return await self.relogin(self._token)
        return self.token

    # -- the HTTP API -----------------------------------------------------------------

    async def me(self) -> User:
        data = (await self._call("GET", "/api/users/me")).json()
        return User(id=data["id"], username=data["username"])

    async def rooms(self, *, limit: int = 100, after: str | None = None) -> list[RoomInfo]:
        """One page of rooms, in name order: the first, or those after the name ``after``."""
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        data = (await self._call("GET", "/api/rooms", params=params)).json()
        return [RoomInfo(name=r["name"], members=r["members"]) for r in data]

    async def iter_rooms(self, *, page: int = 200) -> AsyncIterator[RoomInfo]:
        """Every room, in name order, a page at a time."""
        after = None
        while batch := await self.rooms(limit=page, after=after):
            for room in batch:
                yield room
            after = batch[-1].name

    async def messages(
        self, room: str, *, limit: int = 50, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        """One page of history, oldest first: the latest, or ``before``/``after`` an id."""
        params: dict[str, int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        if after is not None:
            params["after"] = after
        response = await self._call("GET", f"/api/rooms/{_path(room)}/messages", params=params)
        return [Message.from_json(m) for m in response.json()["messages"]]

    async def iter_messages(
        self, room: str, *, after: int = 0, page: int = 200
    ) -> AsyncIterator[Message]:
        """Every message after ``after``, oldest first, a page at a time."""
        while batch := await self.messages(room, limit=page, after=after):
            for message in batch:
                yield message
            after = batch[-1].id

    async def members(self, room: str) -> list[str]:
        response = await self._call("GET", f"/api/rooms/{_path(room)}/members")
        return list(response.json()["members"])

    async def post(
        self, room: str, text: str, *, idempotency_key: str | None = None, attempts: int = 3
    ) -> Message:
        """Post over HTTP: returns once the message is stored and delivered to the room.

        Exactly once: the post carries an ``Idempotency-Key`` (yours, or a new random one),
        and one the server did not answer (no answer came: a timeout, a dropped
        connection), or answered ``503``/``429``, is posted again with the same key, up to
        ``attempts`` times in all: the server stores one key once. When the last attempt
        went unanswered it raises ``OutcomeUnknownError`` (``.idempotency_key``: post again
        with it later to be sure); when none reached the server, ``ServerUnavailableError``.
        """
        key = idempotency_key or uuid4().hex
        path = f"/api/rooms/{_path(room)}/messages"
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._call(
                    "POST", path, json={"text": text}, headers={"Idempotency-Key": key}, keyed=True
                )
                return Message.from_json(response.json())
            except OutcomeUnknownError as unknown:
                if last:
                    raise OutcomeUnknownError(f"POST {path}", idempotency_key=key) from unknown
                delay = self.backoff.delay(attempt)
            except HTTPError as refused:
                if last or refused.status_code not in (429, 503):
                    raise
                delay = max(self.backoff.delay(attempt), _retry_after(refused))
            except ServerUnavailableError:
                if last:
                    raise
                delay = self.backoff.delay(attempt)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def room(self, name: str, *, since: int | None = None, queue_size: int = 1024) -> Room:
        """``async with client.room("lobby") as room:`` joins; iterate it for events.

        ``since`` resumes after a message id you already have; otherwise the room's recent
        history comes first, as message events.
        """
        return Room(self, name, since=since, queue_size=queue_size)

    async def _call(
        self, method: str, path: str, *, keyed: bool = False, **options: Any
    ) -> httpx.Response:
        """An authenticated request; a refused token with credentials logs in once more.

        ``keyed``: the request carries an ``Idempotency-Key``, so one sent but unanswered
        raises ``OutcomeUnknownError`` (safe to send again) rather than
        ``ServerUnavailableError``."""
        token = await self.fresh_token()
        response = await self._send(method, path, token=token, keyed=keyed, **options)
        if response.status_code == 401 and self.can_log_in:
            token = await self.relogin(token)
            response = await self._send(method, path, token=token, keyed=keyed, **options)
        if response.status_code == 401:
            raise AuthenticationError(401, _detail(response), what=f"{method} {path}")
        _raise_for_status(response, f"{method} {path}")
        return response

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        keyed: bool = False,
        **options: Any,
    ) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("use the client as `async with Client(...) as client:`")
        headers = dict(options.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return await self._http.request(method, path, headers=headers, **options)
        except httpx.TransportError as exc:
            if keyed and not isinstance(exc, NOT_SENT):
                raise OutcomeUnknownError(f"{method} {path}: {type(exc).__name__}") from exc
            raise ServerUnavailableError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc


#: Transport errors before the request went out: the server never saw it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _retry_after(error: HTTPError) -> float:
    """The seconds a ``Retry-After`` asked for (a number; dates are not used here)."""
    try:
        return min(30.0, max(0.0, float(error.retry_after or 0)))
    except ValueError:
        return 0.0


def token_expires_at(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (only the server can)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _path(room: str) -> str:
    return quote(room, safe="")


def _detail(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return body.get("detail", body) if isinstance(body, dict) else body


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.is_error:
        retry_after = response.headers.get("Retry-After")
        raise HTTPError(response.status_code, _detail(response), what=what, retry_after=retry_after)
