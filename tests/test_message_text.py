"""What counts as a blank message text is one rule, shared by the schema and the server."""

from __future__ import annotations

import re
import sys

import pytest

from roomchat.api.schemas import BLANK_CHARACTERS
from roomchat.config import Settings
from roomchat.main import create_app
from roomchat.realtime.frames import FrameError, check_text


def schema_pattern() -> re.Pattern[str]:
    openapi = create_app(Settings(_env_file=None)).openapi()
    message_in = openapi["components"]["schemas"]["MessageIn"]
    return re.compile(message_in["properties"]["text"]["pattern"])


def test_every_white_space_character_python_knows_is_blank() -> None:
    python_spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert python_spaces <= set(BLANK_CHARACTERS)
    assert "\ufeff" in BLANK_CHARACTERS  # white space to JSON Schema (ECMA-262), not Python


@pytest.mark.parametrize("blank", list(BLANK_CHARACTERS), ids=lambda ch: f"U+{ord(ch):04X}")
def test_a_blank_text_is_refused_by_the_schema_and_the_server_alike(blank: str) -> None:
    text = blank * 3
    assert schema_pattern().fullmatch(text) is None
    refused = check_text(text, max_chars=100)
    assert isinstance(refused, FrameError)
    assert refused.code == "empty_text"


@pytest.mark.parametrize("text", ["a", " a ", "\x1ca\x1c", "\ufeffb", "é"])
def test_a_text_with_something_in_it_is_accepted_by_both(text: str) -> None:
    assert schema_pattern().fullmatch(text) is not None
    assert not isinstance(check_text(text, max_chars=100), FrameError)


def test_nul_is_refused_by_both() -> None:
    assert schema_pattern().fullmatch("a\x00b") is None
    refused = check_text("a\x00b", max_chars=100)
    assert isinstance(refused, FrameError)
    assert refused.code == "bad_text"
