"""For operators: readiness (``/readyz``) and Prometheus metrics (``/metrics``, opt-in)."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status
from fastapi.responses import JSONResponse

from roomchat.api.deps import ServicesDep
from roomchat.ops.metrics import CONTENT_TYPE_LATEST
from roomchat.ops.readiness import readiness

router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])


@router.get(
    "/readyz",
    responses={503: {"description": "A dependency does not answer"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: 200 when the store (and Redis, when configured) answers and the message
    writer is not stuck, else 503."""
    checks = await readiness(services.engine, services.settings.redis_url)
    if "redis" in checks and not services.rooms.broker_connected:
        checks["redis"] = "failed"  # Redis answers, but this worker's subscriber is not back
    # A transaction open past the post deadline: its senders cannot be answered in time.
    checks["writer"] = "failed" if services.writer.stuck else "ok"
    ready = all(result == "ok" for result in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"X-Roomchat-Worker": str(os.getpid())},  # which worker answered
    )


@metrics_router.get("/metrics", response_class=Response)
async def metrics(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics of this process (when ROOMCHAT_METRICS_ENABLED is true)."""
    expected = services.settings.metrics_token
    if expected is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.encode(), expected.get_secret_value().encode()
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="a valid metrics token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
