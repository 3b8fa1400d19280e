"""Settings: the only module that reads the environment (``ROOMCHAT_*`` and ``.env``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from roomchat.ops.origins import parse_origin


class Settings(BaseSettings):
    """Every setting of API.md, plus a few operational ones; see ``.env.example``."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMCHAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    secret_key: SecretStr | None = None
    data_dir: Path = Path("./data")
    database_url: str = "sqlite+aiosqlite:///./roomchat.db"
    #: PostgreSQL's own bounds on every session of the server's engine (seconds): a lock
    #: wait, a statement, and a transaction left idle (a frozen worker's: it ends the
    #: session and frees its locks). ``roomchat migrate`` gets no statement bound.
    database_lock_timeout_seconds: float = Field(default=2.0, gt=0, le=600)
    database_statement_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    database_idle_in_transaction_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: A post not taken into a transaction this long after it arrived is refused, never
    #: stored later: less than roomchat.client's 10 s timeout, so its sender hears it.
    post_deadline_seconds: float = Field(default=8.0, gt=0, le=300)
    redis_url: str | None = None
    redis_prefix: str = Field(default="roomchat", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    presence_ttl_seconds: float = Field(default=15.0, ge=0.5, le=300)
    presence_linger_seconds: float = Field(default=2.0, ge=0, le=60)
    access_token_minutes: int = Field(default=60, ge=1)
    #: Seconds (``86400``), ``HH:MM:SS`` or ISO 8601 (``PT24H``); at least the access
    #: token lifetime. A token (minted ones included) whose exp - iat is longer is refused.
    max_token_lifetime: timedelta = timedelta(hours=24)
    allowed_origins: Annotated[list[str], NoDecode] = []
    history_limit: int = Field(default=50, ge=0, le=1000)
    recovery_limit: int = Field(default=1000, ge=1, le=100_000)
    max_message_chars: int = Field(default=4000, ge=1)
    messages_per_second: float = Field(default=5, gt=0)
    message_burst: int = Field(default=20, ge=1)
    max_sockets_per_user: int = Field(default=20, ge=1)
    rooms_per_user: int = Field(default=100, ge=1)
    max_frame_bytes: int = Field(default=65536, ge=256)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    send_queue_bytes: int = Field(default=1_048_576, ge=1024)
    idle_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    password_hash_concurrency: int = Field(default=2, ge=1)
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: float = Field(default=60, gt=0)
    registrations_per_address: int = Field(default=5, ge=1)  # per hour
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept ``a,b`` from the environment as well as a list."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins_as_browsers_send_them(cls, value: list[str]) -> list[str]:
        """Each entry an origin, ``scheme://host[:port]``, lowercased as in an Origin header,
        so that the handshake can compare exactly; a typo fails at startup instead."""
        return [_origin(entry) for entry in value]

    @field_validator("max_token_lifetime", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        """A plain number from the environment is seconds, as it is in code."""
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            return float(value)
        return value

    @model_validator(mode="after")
    def _token_lifetimes(self) -> Self:
        if self.max_token_lifetime < timedelta(minutes=self.access_token_minutes):
            raise ValueError(
                "ROOMCHAT_MAX_TOKEN_LIFETIME must be at least ROOMCHAT_ACCESS_TOKEN_MINUTES"
            )
        return self

    @field_validator("secret_key")
    @classmethod
    def _secret_key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("ROOMCHAT_SECRET_KEY must be at least 32 characters long")
        return value


def _origin(entry: str) -> str:
    origin = parse_origin(entry)
    if origin is None:
        raise ValueError(f"{entry!r} is not an origin such as https://chat.example.com")
    return origin


class ClientSettings(BaseSettings):
    """What ``roomchat send`` and ``roomchat chat`` read when no option is given."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMCHAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    url: str = "http://127.0.0.1:8000"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
