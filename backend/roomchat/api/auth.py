"""Registration, login (OAuth2 password grant) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from roomchat.accounts import service as accounts
from roomchat.api.deps import CurrentUser, ServicesDep
from roomchat.api.responses import MALFORMED_BODY, NOT_LOGGED_IN, THROTTLED
from roomchat.api.schemas import RegisterIn, TokenOut, UserOut
from roomchat.store import UsernameTakenError

router = APIRouter(prefix="/api", tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


FAILED_ATTEMPTS = "Too many failed attempts; try again later"


def throttled(wait: int, detail: str = FAILED_ATTEMPTS) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, detail=detail, headers={"Retry-After": str(wait)}
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
    wait = await services.login_throttle.retry_after(address=address)
    if wait:
        raise throttled(wait)
    # Counted before the hash, so concurrent registrations count like sequential ones.
    wait = await services.registration_throttle.reserve(address=address)
    if wait:
        raise throttled(wait, "Too many registrations from this address; try again later")
    try:
        user = await accounts.register(
            services.accounts, username=body.username, password=body.password
        )
    except UsernameTakenError:
        await services.login_throttle.failed(address=address)
        raise HTTPException(status.HTTP_409_CONFLICT, detail="Username is taken") from None
    except Exception:
        await services.registration_throttle.refund(address=address)  # our failure
        raise
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
    address, username = client_address(request), form.username
    # The attempt counts as a failure before the password is checked, and is given back
    # if it was right: concurrent guesses are throttled like sequential ones.
    wait = await services.login_throttle.reserve(address=address, username=username)
    if wait:
        raise throttled(wait)
    try:
        access_token, expires_in = await accounts.login(
            services.accounts, username=username, password=form.password
        )
    except accounts.LoginFailedError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    except Exception:
        await services.login_throttle.refund(address=address, username=username)
        raise  # our failure (the database), not a wrong guess
    await services.login_throttle.refund(address=address, username=username)
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.get("/users/me", response_model=UserOut, responses=NOT_LOGGED_IN)
async def me(user: CurrentUser) -> UserOut:
    """The user the bearer token belongs to."""
    return UserOut(id=user.user_id, username=user.username)
