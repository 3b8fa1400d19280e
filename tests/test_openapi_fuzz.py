"""schemathesis against the app's own OpenAPI schema: no 500s, every response as documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import allow_header_conformance

from roomchat.config import Settings
from roomchat.main import create_app
from tests.conftest import live_token, make_settings
from tests.live import LiveServer


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(make_settings(tmp_path_factory.mktemp("openapi")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_token(fuzzed_server: LiveServer) -> str:
    return asyncio.run(live_token(fuzzed_server, "fuzzer"))


# The schema comes from the app itself; the calls go to a real server running it.
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())


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
