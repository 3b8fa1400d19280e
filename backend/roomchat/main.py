"""The application factory: ``create_app(settings)``; ``app`` for ``uvicorn roomchat.main:app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from roomchat import __version__
from roomchat.accounts.known_users import KnownUsers
from roomchat.accounts.security import PasswordHasher, load_or_create_secret_key
from roomchat.accounts.service import Accounts
from roomchat.accounts.watch import AccountWatch
from roomchat.api import auth, docs, errors, ops, pages, rooms
from roomchat.api.bodylimit import BodyLimit
from roomchat.config import Settings
from roomchat.limits.buckets import Clock
from roomchat.limits.throttle import create_limits
from roomchat.limits.users import create_user_limits
from roomchat.ops.headers import SecurityHeaders
from roomchat.ops.logs import install_redaction
from roomchat.ops.metrics import Metrics
from roomchat.realtime.backend import create_backend
from roomchat.realtime.broker import BrokerUnavailableError
from roomchat.realtime.manager import RoomManager
from roomchat.realtime.writer import MessageWriter
from roomchat.server.routing import ServeSocketsFirst
from roomchat.server.tuning import settled_garbage_collector
from roomchat.services import Services
from roomchat.store.engine import DatabaseBounds, create_engine, prepare_schema
from roomchat.store.open import open_store
from roomchat.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, owns_process: bool = False
) -> FastAPI:
    """Building the app changes nothing outside it; nor does running it, unless it
    ``owns_process``: it is what this process serves (``app`` below, under ``roomchat
    serve`` or plain uvicorn). Then its startup redacts tokens from every log, and the
    garbage collector is tuned for a long-lived server until shutdown.

    ``clock``: drives the login and registration throttles and this worker's message
    buckets (tests move time with it).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if owns_process:
            install_redaction()
        secret = settings.secret_key
        secret_key = (
            secret.get_secret_value() if secret else load_or_create_secret_key(settings.data_dir)
        )
        engine = create_engine(settings.database_url, DatabaseBounds.of(settings))
        await prepare_schema(engine)
        store = await open_store(engine)
        hasher = PasswordHasher(concurrency=settings.password_hash_concurrency)
        broker, presence = create_backend(settings)
        limits = create_limits(settings, clock=clock)
        user_limits = create_user_limits(settings, clock=clock)
        metrics = Metrics()
        room_manager = RoomManager(
            broker=broker,
            presence=presence,
            store=store,
            metrics=metrics,
            linger=settings.presence_linger_seconds,
        )
        writer = MessageWriter(
            broker=broker,
            store=store,
            metrics=metrics,
            post_deadline=settings.post_deadline_seconds,
            lock_wait=settings.database_lock_timeout_seconds,
        )
        if isinstance(store, SQLiteStore):
            failed = metrics.backend_errors.labels("checkpoint")
            store.checkpointer.on_error = failed.inc
        known_users = KnownUsers(store)
        accounts = Accounts(
            users=store,
            hasher=hasher,
            known_users=known_users,
            secret_key=secret_key,
            access_token_minutes=settings.access_token_minutes,
            max_token_lifetime=settings.max_token_lifetime,
        )
        services = Services(
            settings=settings,
            engine=engine,
            store=store,
            accounts=accounts,
            rooms=room_manager,
            writer=writer,
            metrics=metrics,
            user_limits=user_limits,
            login_throttle=limits.login_throttle,
            registration_throttle=limits.registration_throttle,
        )
        account_watch = AccountWatch(
            known_users=known_users,
            rooms=room_manager,
            store=store,
            broker=broker if settings.redis_url else None,
        )
        tuned = ExitStack()  # the process's tuning, while this app serves it
        if owns_process:
            tuned.enter_context(settled_garbage_collector())
        try:
            yield {"services": services}
        finally:
            tuned.close()
            await account_watch.close()
            await room_manager.close()
            await writer.close()
            await broker.close()
            await presence.close()
            await limits.close()
            await user_limits.close()
            hasher.close()
            await store.close()
            await engine.dispose()

    # No trailing-slash redirects: Starlette builds their Location from the Host header,
    # which the client chooses. `/api/rooms/` is a 404, as any path the API lacks.
    app = RoomchatApp(
        title="roomchat",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(BrokerUnavailableError, backend_unavailable)
    app.add_exception_handler(RequestValidationError, errors.validation_failed)
    for unavailable in errors.DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, errors.database_unavailable)
    app.add_exception_handler(Exception, errors.server_error)
    # Innermost first: sockets are routed off before the body limit (it is HTTP's alone).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServeSocketsFirst)
    app.include_router(auth.router)
    app.include_router(rooms.router)
    app.include_router(pages.router)
    app.include_router(ops.router)
    if settings.metrics_enabled:
        app.include_router(ops.metrics_router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    docs.install(app)
    return app


class RoomchatApp(FastAPI):
    """FastAPI with the security headers outside everything, error handling included,
    so that a 500 carries them too (``add_middleware`` puts them inside it)."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


async def backend_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """Redis is away (presence cannot be read): 503, and the client tries again."""
    log.warning("answered 503: %s", exc)
    return JSONResponse(
        {"detail": "the chat backend is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


app = create_app(owns_process=True)
