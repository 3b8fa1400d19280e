"""Registration, login (OAuth2 password grant) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from roomchat import accounts
from roomchat.deps import CurrentUser, ServicesDep
from roomchat.schemas import RegisterIn, TokenOut, UserOut
from roomchat.store import UsernameTakenError

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def register(body: RegisterIn, services: ServicesDep) -> UserOut:
    """Create an account."""
    try:
        user = await accounts.register(services, username=body.username, password=body.password)
    except UsernameTakenError:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="Username is taken") from None
    return UserOut(id=user.id, username=user.username)


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses={401: {"description": "Incorrect username or password"}},
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep
) -> TokenOut:
    """Log in with the OAuth2 password grant; returns a bearer access token."""
    try:
        access_token, expires_in = await accounts.login(
            services, username=form.username, password=form.password
        )
    except accounts.LoginFailedError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.get("/users/me", response_model=UserOut, responses={401: {"description": "Not logged in"}})
async def me(user: CurrentUser) -> UserOut:
    """The user the bearer token belongs to."""
    return UserOut(id=user.user_id, username=user.username)
