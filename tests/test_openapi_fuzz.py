"""schemathesis against the app's own OpenAPI schema: no 500s, every response as documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import allow_header_conformance

from roomchat.config import Settings
from roomchat.main import create_app
from tests.conftest import live_token, make_settings
from tests.live import LiveServer


def fuzzed_settings(data_dir: Path) -> Settings:
    """Limits high enough that later examples still reach the routes, rather than all 429."""
    return make_settings(
        data_dir,
        messages_per_second=10_000,
        message_burst=10_000,
        login_failures_per_user=10_000,
        login_failures_per_address=10_000,
    )


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(fuzzed_settings(tmp_path_factory.mktemp("openapi")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_token(fuzzed_server: LiveServer) -> str:
    return asyncio.run(live_token(fuzzed_server, "fuzzer"))


# The schema comes from an app built as the fuzzed server's is (schemathesis' lazy
# ``from_fixture`` does not run on pytest 9); the test below holds the two to be the same.
SCHEMA = create_app(fuzzed_settings(Path("never-started"))).openapi()
schema = schemathesis.openapi.from_dict(SCHEMA)


def test_the_fuzzed_schema_is_the_one_the_server_serves(fuzzed_server: LiveServer) -> None:
    assert httpx.get(f"{fuzzed_server.http_url}/openapi.json").json() == SCHEMA


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_schema(case: Any, fuzzed_server: LiveServer, api_token: str) -> None:
    case.call_and_validate(
        base_url=fuzzed_server.http_url,
        headers={"Authorization": f"Bearer {api_token}"},
        # Starlette answers 405 with the Allow of the first route on a path; GET and POST
        # /api/rooms/{room}/messages are two routes, so its Allow names only GET.
        excluded_checks=[allow_header_conformance],
    )
