"""Settings and the generated secret key."""

from __future__ import annotations

import logging
import stat
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from roomchat.accounts.security import load_or_create_secret_key
from roomchat.config import Settings
from roomchat.main import create_app
from tests.conftest import make_settings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCHAT_ACCESS_TOKEN_MINUTES", "5")
    monkeypatch.setenv("ROOMCHAT_ALLOWED_ORIGINS", "https://a.example, https://b.example/")
    settings = Settings(_env_file=None)
    assert settings.access_token_minutes == 5
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_ORIGINS"):
        monkeypatch.delenv(f"ROOMCHAT_{name}", raising=False)
    settings = Settings(_env_file=None)
    assert settings.secret_key is None
    assert settings.database_url == "sqlite+aiosqlite:///./roomchat.db"
    assert settings.redis_url is None
    assert settings.access_token_minutes == 60
    assert settings.allowed_origins == []
    assert settings.history_limit == 50
    assert settings.max_message_chars == 4000
    assert settings.messages_per_second == 5
    assert settings.message_burst == 20
    assert settings.max_frame_bytes == 65536
    assert settings.recovery_limit == 1000
    assert settings.max_sockets_per_user == 20
    assert settings.rooms_per_user == 100


def test_token_lifetime_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).max_token_lifetime == timedelta(hours=24)
    assert Settings(_env_file=None).registrations_per_address == 5
    monkeypatch.setenv("ROOMCHAT_MAX_TOKEN_LIFETIME", "7200")  # seconds
    assert Settings(_env_file=None).max_token_lifetime == timedelta(hours=2)
    monkeypatch.setenv("ROOMCHAT_MAX_TOKEN_LIFETIME", "PT12H")  # or ISO 8601
    assert Settings(_env_file=None).max_token_lifetime == timedelta(hours=12)
    with pytest.raises(ValidationError, match="at least ROOMCHAT_ACCESS_TOKEN_MINUTES"):
        Settings(_env_file=None, max_token_lifetime=1800, access_token_minutes=60)


def test_a_short_secret_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(_env_file=None, secret_key="short")


def test_generated_key_is_private_and_stable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        key = load_or_create_secret_key(tmp_path)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert load_or_create_secret_key(tmp_path) == key
    assert "ROOMCHAT_SECRET_KEY" in caplog.text
    assert key not in caplog.text


async def test_app_without_a_key_generates_one_and_tokens_survive_a_restart(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, secret_key=None)
    body = {"username": "alice", "password": "long enough"}
    token = ""
    for attempt in range(2):
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                if attempt == 0:
                    await client.post("/api/auth/register", json=body)
                    response = await client.post("/api/auth/token", data=body)
                    token = response.json()["access_token"]
                me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200
    assert (tmp_path / "data" / "secret_key").exists()


@pytest.mark.parametrize(
    "origin", ["chat.example", "https://chat.example/path", "null", "ftp://chat.example", "*"]
)
def test_an_allowed_origin_must_be_an_origin(origin: str) -> None:
    with pytest.raises(ValidationError, match="allowed_origins"):
        Settings(_env_file=None, allowed_origins=origin)


def test_allowed_origins_are_kept_in_the_form_browsers_send() -> None:
    settings = Settings(
        _env_file=None, allowed_origins="HTTPS://Chat.Example/, http://a.example:8080"
    )
    assert settings.allowed_origins == ["https://chat.example", "http://a.example:8080"]


def test_the_body_limit_has_a_sane_default_and_floor() -> None:
    assert Settings(_env_file=None).max_body_bytes == 1_048_576
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(_env_file=None, max_body_bytes=100)
