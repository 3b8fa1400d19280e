"""The web page and the health check."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import text

from roomchat.deps import ServicesDep
from roomchat.realtime.broker import BrokerUnavailableError
from roomchat.schemas import Health, Readiness

READY_TIMEOUT_SECONDS = 2.0

FRONTEND_DIR = Path(__file__).resolve().parents[3] / "frontend"
STATIC_DIR = FRONTEND_DIR / "static"
templates = Jinja2Templates(directory=FRONTEND_DIR / "templates")

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "index.html")


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    tags=["health"],
    responses={503: {"model": Readiness, "description": "The store or Redis is unavailable"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the store answers and, when configured, Redis too (else 503 degraded)."""
    checks: dict[str, Literal["ok", "unavailable"]] = {"store": "ok", "broker": "ok"}
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), services.engine.connect() as db:
            await db.execute(text("SELECT 1"))
    except Exception:
        checks["store"] = "unavailable"
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await services.rooms.ping()
    except (BrokerUnavailableError, TimeoutError):
        checks["broker"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ok" if ready else "degraded", checks=checks, worker=os.getpid())
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
