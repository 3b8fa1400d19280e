"""Registration, login (OAuth2 password grant) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from roomchat import accounts
from roomchat.api.responses import MALFORMED_BODY, NOT_LOGGED_IN, THROTTLED
from roomchat.deps import CurrentUser, ServicesDep
from roomchat.schemas import RegisterIn, TokenOut, UserOut
from roomchat.services import Services
from roomchat.store import UsernameTakenError

router = APIRouter(prefix="/api", tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def refuse_if_throttled(
    services: Services, *, address: str, username: str | None = None
) -> None:
    wait = await services.login_throttle.retry_after(address=address, username=username)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many failed attempts; try again later",
            headers={"Retry-After": str(wait)},
        )


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"description": "Username is taken"}, **THROTTLED, **MALFORMED_BODY},
)
async def register(body: RegisterIn, request: Request, services: ServicesDep) -> UserOut:
    """Create an account."""
    address = client_address(request)
    await refuse_if_throttled(services, address=address)
    try:
        user = await accounts.register(services, username=body.username, password=body.password)
    except UsernameTakenError:
        await services.login_throttle.failed(address=address)
        raise HTTPException(status.HTTP_409_CONFLICT, detail="Username is taken") from None
    return UserOut(id=user.id, username=user.username)


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses={
        401: {"description": "Incorrect username or password"},
        **THROTTLED,
        **MALFORMED_BODY,
    },
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    services: ServicesDep,
) -> TokenOut:
    """Log in with the OAuth2 password grant; returns a bearer access token."""
    address = client_address(request)
    await refuse_if_throttled(services, address=address, username=form.username)
    try:
        access_token, expires_in = await accounts.login(
            services, username=form.username, password=form.password
        )
    except accounts.LoginFailedError:
        await services.login_throttle.failed(address=address, username=form.username)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.get("/users/me", response_model=UserOut, responses=NOT_LOGGED_IN)
async def me(user: CurrentUser) -> UserOut:
    """The user the bearer token belongs to."""
    return UserOut(id=user.user_id, username=user.username)
