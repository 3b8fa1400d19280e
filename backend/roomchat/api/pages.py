"""The web page and the health check."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from roomchat.api.deps import ServicesDep
from roomchat.api.schemas import Health

FRONTEND_DIR = Path(__file__).resolve().parents[3] / "frontend"
STATIC_DIR = FRONTEND_DIR / "static"
templates = Jinja2Templates(directory=FRONTEND_DIR / "templates")

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, services: ServicesDep) -> HTMLResponse:
    """The single-page chat client: login and chat views, switched by /static/js/main.js."""
    settings = services.settings
    context = {
        "max_message_chars": settings.max_message_chars,
        "messages_per_second": settings.messages_per_second,
        "message_burst": settings.message_burst,
    }
    return templates.TemplateResponse(request, "index.html", context)


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")
