"""The page as served: its own assets only, nothing inline that a strict CSP would block."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from roomchat.api.pages import STATIC_DIR
from roomchat.config import Settings
from tests.conftest import make_settings

SCRIPTS = sorted((STATIC_DIR / "js").glob("*.js"))
MAX_MESSAGE_CHARS = 123


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, max_message_chars=MAX_MESSAGE_CHARS)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] in ("script", "style"):
            self.script_text += data.strip()


async def page_tags(client: httpx.AsyncClient) -> Tags:
    response = await client.get("/")
    assert response.status_code == 200
    tags = Tags()
    tags.feed(response.text)
    return tags


async def test_the_page_has_no_inline_script_style_or_handlers(client: httpx.AsyncClient) -> None:
    tags = await page_tags(client)
    assert tags.script_text == "", "inline <script> or <style> content"
    for tag, attrs in tags.tags:
        assert tag != "style"
        assert "style" not in attrs, f"style= on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"{handlers} on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "a <script> without src"


async def test_every_asset_the_page_loads_is_served_from_static(client: httpx.AsyncClient) -> None:
    tags = await page_tags(client)
    assets = [attrs for tag, attrs in tags.tags if tag in ("script", "link")]
    urls = [attrs.get("src") or attrs.get("href") or "" for attrs in assets]
    assert urls
    for url in urls:
        assert url.startswith("/static/"), url
        assert (await client.get(url)).status_code == 200, url


#: ``import { a, b } from "./x.js";`` (over several lines too) or ``import "./x.js";``.
IMPORTED_MODULE = re.compile(r'^import\s+(?:[^;"]*?\sfrom\s+)?"\./([\w-]+\.js)"\s*;', re.M)


async def test_every_module_the_scripts_import_is_served(client: httpx.AsyncClient) -> None:
    for script in SCRIPTS:
        source = script.read_text()
        names = IMPORTED_MODULE.findall(source)
        # Every import statement, one line or several, names a module found here.
        assert len(names) == len(re.findall(r"^import\b", source, re.M)), script.name
        for name in names:
            response = await client.get(f"/static/js/{name}")
            assert response.status_code == 200, (script.name, name)
            assert "javascript" in response.headers["content-type"]


def test_scripts_never_insert_html() -> None:
    """Message text and every other server string go in as text, never parsed as HTML."""
    assert SCRIPTS
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(")
    for script in SCRIPTS:
        assert not forbidden.search(script.read_text()), script.name


async def test_the_page_knows_the_configured_limits(client: httpx.AsyncClient) -> None:
    """The field has no ``maxlength``, which would cut a paste silently: the page refuses
    an over-long text whole (tests/test_browser.py), and paces sends under the rate."""
    tags = await page_tags(client)
    field = next(attrs for _tag, attrs in tags.tags if attrs.get("id") == "message")
    assert "maxlength" not in field
    form = next(attrs for _tag, attrs in tags.tags if attrs.get("id") == "send-form")
    assert form["data-max-chars"] == str(MAX_MESSAGE_CHARS)
    assert float(form["data-messages-per-second"]) > 0
    assert int(form["data-message-burst"]) >= 1
