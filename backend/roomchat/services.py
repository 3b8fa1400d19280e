"""The app-wide objects built at startup and handed to every request through lifespan state."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from roomchat.accounts.known_users import KnownUsers
from roomchat.accounts.security import PasswordHasher
from roomchat.config import Settings
from roomchat.limits.throttle import LoginThrottle, RegistrationThrottle
from roomchat.limits.users import UserLimits
from roomchat.ops.metrics import Metrics
from roomchat.realtime.manager import RoomManager
from roomchat.realtime.writer import MessageWriter


@dataclass(slots=True)
class Services:
    settings: Settings
    secret_key: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    known_users: KnownUsers
    rooms: RoomManager
    writer: MessageWriter
    metrics: Metrics
    user_limits: UserLimits
    login_throttle: LoginThrottle
    registration_throttle: RegistrationThrottle
