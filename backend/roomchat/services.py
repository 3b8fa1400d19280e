"""The app-wide objects built at startup and handed to every request through lifespan state."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from roomchat.accounts.service import Accounts
from roomchat.config import Settings
from roomchat.limits.throttle import LoginThrottle, RegistrationThrottle
from roomchat.limits.users import UserLimits
from roomchat.ops.metrics import Metrics
from roomchat.realtime.manager import RoomManager
from roomchat.realtime.writer import MessageWriter
from roomchat.store.open import Store


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine  # for readiness only
    store: Store
    accounts: Accounts
    rooms: RoomManager
    writer: MessageWriter
    metrics: Metrics
    user_limits: UserLimits
    login_throttle: LoginThrottle
    registration_throttle: RegistrationThrottle
