"""Named ``Annotated`` dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from roomchat.accounts.security import InvalidTokenError
from roomchat.accounts.service import Accounts, Principal, authenticate
from roomchat.services import Services

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


async def get_services(connection: HTTPConnection) -> Services:
    # async, though it awaits nothing: FastAPI runs a plain ``def`` dependency in a thread,
    # one hop per request and per socket handshake (a tenth of a connect's time).
    services: Services = connection.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_accounts(connection: HTTPConnection) -> Accounts:
    accounts: Accounts = connection.state.services.accounts
    return accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


async def get_current_user(
    accounts: AccountsDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    try:
        return await authenticate(accounts, token)
    except InvalidTokenError:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None


CurrentUser = Annotated[Principal, Depends(get_current_user)]
