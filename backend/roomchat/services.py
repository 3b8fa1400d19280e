"""The app-wide objects built at startup and handed to every request through lifespan state."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from roomchat.config import Settings
from roomchat.known_users import KnownUsers
from roomchat.realtime.manager import RoomManager
from roomchat.security import PasswordHasher
from roomchat.throttle import LoginThrottle, RegistrationThrottle
from roomchat.user_limits import UserLimits


@dataclass(slots=True)
class Services:
    settings: Settings
    secret_key: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    known_users: KnownUsers
    rooms: RoomManager
    user_limits: UserLimits
    login_throttle: LoginThrottle
    registration_throttle: RegistrationThrottle
