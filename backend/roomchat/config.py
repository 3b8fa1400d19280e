"""Settings: the only module that reads the environment (``ROOMCHAT_*`` and ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of API.md, plus a few operational ones; see ``.env.example``."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMCHAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    secret_key: SecretStr | None = None
    data_dir: Path = Path("./data")
    database_url: str = "sqlite+aiosqlite:///./roomchat.db"
    redis_url: str | None = None
    redis_prefix: str = Field(default="roomchat", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    presence_ttl_seconds: float = Field(default=15.0, ge=0.5, le=300)
    access_token_minutes: int = Field(default=60, ge=1)
    allowed_origins: Annotated[list[str], NoDecode] = []
    history_limit: int = Field(default=50, ge=0, le=1000)
    max_message_chars: int = Field(default=4000, ge=1)
    messages_per_second: float = Field(default=5, gt=0)
    message_burst: int = Field(default=20, ge=1)
    max_frame_bytes: int = Field(default=65536, ge=256)
    send_queue_bytes: int = Field(default=1_048_576, ge=1024)
    idle_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    password_hash_concurrency: int = Field(default=2, ge=1)
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: float = Field(default=60, gt=0)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept ``a,b`` from the environment as well as a list."""
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("ROOMCHAT_SECRET_KEY must be at least 32 characters long")
        return value


class ClientSettings(BaseSettings):
    """What ``roomchat send`` and ``roomchat chat`` read when no option is given."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMCHAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    url: str = "http://127.0.0.1:8000"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
