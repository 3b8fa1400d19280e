"""The web page in Debian's Chromium, driven through Playwright the way a person uses it.

Controls are found by their accessible names (API.md, "Web page"); every wait is one of
Playwright's auto-retrying ``expect`` assertions, never a sleep.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jose import jwt
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    expect,
    sync_playwright,
)
from pydantic import SecretStr

from roomchat import store
from roomchat.config import Settings
from roomchat.store.engine import create_engine
from roomchat.store.through_engine import EngineStore
from tests.conftest import PASSWORD, TEST_SECRET, require_service
from tests.helpers import FakeClock
from tests.live import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Written on every run (git ignores it); copy it to docs/ when the page's look changes.
SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshot-chat.png"
DESKTOP = {"width": 1000, "height": 640}
PHONE = {"width": 390, "height": 844}
EXPIRED = "Your session expired — please log in again."


def said(user: str, text: str) -> re.Pattern[str]:
    """A Messages item: the author, the time (hh:mm), then exactly the text."""
    return re.compile(rf"^{re.escape(user)} \d\d:\d\d{re.escape(text)}$")


class Person:
    """One person at one browser tab, acting through the page's labelled controls."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.messages = page.get_by_role("list", name="Messages", exact=True).get_by_role(
            "listitem"
        )
        self.members = page.get_by_role("list", name="Members").get_by_role("listitem")
        self.message_field = page.get_by_label("Message", exact=True)
        self.room_field = page.get_by_label("Room", exact=True)
        self.connection = page.get_by_role("status")
        self.notice = page.get_by_role("alert")
        self.room_notice = page.locator("#room-notice")

    def room_entry(self, room: str) -> Locator:
        """The room's item in the list of rooms: its button and how many are online."""
        button = self.page.get_by_role("button", name=room, exact=True)
        return self.page.get_by_role("listitem").filter(has=button)

    def fill_in(self, username: str, password: str = PASSWORD) -> None:
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)

    def register(self, username: str) -> None:
        self.fill_in(username)
        self.page.get_by_role("button", name="Register").click()
        expect(self.page.get_by_role("button", name="Log out")).to_be_visible()

    def join(self, room: str) -> None:
        self.room_field.fill(room)
        self.page.get_by_role("button", name="Join").click()
        expect(self.page.get_by_role("heading", name=room)).to_be_visible()
        expect(self.connection).to_have_text("Connected")

    def send(self, text: str) -> None:
        self.message_field.fill(text)
        self.page.get_by_role("button", name="Send").click()
        expect(self.message_field).to_have_value("")

    def sees_login_form(self, reason: str | None, *, timeout: float | None = None) -> None:
        expect(self.page.get_by_label("Username")).to_be_visible(timeout=timeout)
        expect(self.page.get_by_role("button", name="Log in")).to_be_visible()
        if reason is None:
            expect(self.notice).to_have_count(0)
        else:
            expect(self.notice).to_have_text(reason)
        expect(self.page.get_by_role("button", name="Log out")).to_be_hidden()

    def set_session(self, token: str, username: str, room: str) -> None:
        """Put a session in the tab's sessionStorage, as logging in would, and reload."""
        self.page.evaluate(
            """([token, username, room]) => {
                sessionStorage.setItem("roomchat.token", token);
                sessionStorage.setItem("roomchat.username", username);
                sessionStorage.setItem("roomchat.room", JSON.stringify({[username]: room}));
            }""",
            [token, username, room],
        )
        self.page.reload()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_service(
        CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    )
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def person(browser: Browser) -> Iterator[Callable[..., Person]]:
    """``person(server)`` opens the page in a fresh browser context (its own storage).

    At teardown, every page must have run without an uncaught script error, a
    Content-Security-Policy violation or a request to another site.
    """
    problems: list[str] = []
    contexts = []

    def open_page(
        server: LiveServer,
        viewport: dict[str, int] = DESKTOP,
        path: str = "/",
        blocked_as_expected: tuple[str, ...] = (),
    ) -> Person:
        """``blocked_as_expected``: URLs the page tries and its policy blocks (no problem)."""
        context = browser.new_context(viewport=viewport, locale="en-GB")
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))

        def on_console(message: ConsoleMessage) -> None:
            text = message.text
            if "Content Security Policy" in text and not any(
                f"'{url}'" in text for url in blocked_as_expected
            ):
                problems.append(text)

        own = (server.http_url + "/", "blob:" + server.http_url + "/")
        page.on("console", on_console)
        page.on(
            "requestfinished",
            lambda request: (
                None if request.url.startswith(own) else problems.append(f"off-site: {request.url}")
            ),
        )
        page.goto(server.http_url + path)
        return Person(page)

    yield open_page
    for context in contexts:
        context.close()
    assert problems == []


def test_two_people_chat_in_a_room(live: LiveServer, person: Callable[..., Person]) -> None:
    # Alice uses only the keyboard: the page puts the focus where she needs it next.
    alice = person(live)
    keyboard = alice.page.keyboard
    expect(alice.page.get_by_label("Username")).to_be_focused()
    keyboard.type("alice")
    keyboard.press("Tab")
    keyboard.type(PASSWORD)
    keyboard.press("Tab")
    keyboard.press("Tab")
    expect(alice.page.get_by_role("button", name="Register")).to_be_focused()
    keyboard.press("Enter")
    expect(alice.room_field).to_be_focused()
    keyboard.type("lobby")
    keyboard.press("Enter")
    expect(alice.message_field).to_be_focused()
    expect(alice.connection).to_have_text("Connected")
    expect(alice.members).to_have_text(["alice"])
    keyboard.type("Hello, is anyone here?")
    keyboard.press("Enter")
    expect(alice.messages).to_have_text([said("alice", "Hello, is anyone here?")])

    # Bob, on a phone, sees the room with one person online and joins it from the list.
    bob = person(live, viewport=PHONE)
    bob.register("bob")
    expect(bob.room_entry("lobby")).to_contain_text("1 online")
    bob.room_entry("lobby").get_by_role("button").click()
    expect(bob.connection).to_have_text("Connected")
    expect(bob.messages).to_have_text([said("alice", "Hello, is anyone here?")])
    for someone in (alice, bob):
        expect(someone.members).to_have_text(["alice", "bob"])
        expect(someone.room_entry("lobby")).to_contain_text("2 online")

    # Typing shows on the other side; the message arrives for both, marked as Bob's own.
    bob.message_field.fill("Hi Alice")
    expect(alice.page.get_by_text("bob is typing…")).to_be_visible()
    bob.page.get_by_role("button", name="Send").click()
    for someone in (alice, bob):
        expect(someone.messages.nth(1)).to_have_text(said("bob", "Hi Alice"))
    expect(alice.page.get_by_text("bob is typing…")).to_be_hidden()
    expect(bob.messages.nth(1)).to_have_class(re.compile(r"\bmine\b"))
    expect(alice.messages.nth(1)).not_to_have_class(re.compile(r"\bmine\b"))
    alice.send("Welcome, Bob!")
    expect(bob.messages).to_have_count(3)

    # The phone layout fits the screen: no sideways scrolling, Send within reach.
    assert bob.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(bob.page.get_by_role("button", name="Send")).to_be_in_viewport()

    SCREENSHOT.parent.mkdir(exist_ok=True)
    alice.page.screenshot(path=SCREENSHOT)

    # Alice logs out: she is back at the login form, and Bob sees her leave.
    alice.page.get_by_role("button", name="Log out").click()
    alice.sees_login_form("You have logged out.")
    expect(bob.members).to_have_text(["bob"])


def test_message_text_shows_as_text_and_runs_nothing(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script><b>b</b>'
    mallory = person(live)
    mallory.register("mallory")
    mallory.join("xss")
    mallory.send(payload)
    markup = mallory.page.get_by_role("list", name="Messages").locator("img, script, b")

    expect(mallory.messages).to_have_text([said("mallory", payload)])
    expect(markup).to_have_count(0)
    # After a reload the session and room are restored, and history is text as well.
    mallory.page.reload()
    expect(mallory.connection).to_have_text("Connected")
    expect(mallory.messages).to_have_text([said("mallory", payload)])
    expect(markup).to_have_count(0)
    assert mallory.page.evaluate("window.pwned") is None


#: ReDoc shows its maker's logo from their CDN (and hides it when it fails to load).
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.embedded_only  # static pages: no backend takes part
@pytest.mark.parametrize(("path", "blocked"), [("/docs", ()), ("/redoc", (REDOC_LOGO,))])
def test_the_api_docs_work_from_this_server_alone(
    live: LiveServer, person: Callable[..., Person], path: str, blocked: tuple[str, ...]
) -> None:
    """Swagger UI and ReDoc come from a package, under their page's policy; nothing off-site."""
    reader = person(live, path=path, blocked_as_expected=blocked)
    expect(reader.page.get_by_role("heading", name=re.compile(r"^roomchat")).first).to_be_visible()
    expect(reader.page.get_by_text("/api/auth/register").first).to_be_visible()


def test_a_server_restart_is_survived_and_the_gap_filled(
    live_server: Callable[..., LiveServer], person: Callable[..., Person]
) -> None:
    # With a history of 2, a reconnect that forgot since= would miss "gap 1".
    server = live_server(history_limit=2)
    alice, bob = person(server), person(server)
    alice.register("alice")
    alice.join("ops")
    bob.register("bob")
    bob.join("ops")
    socket_urls: list[str] = []
    alice.page.on("websocket", lambda socket: socket_urls.append(socket.url))
    alice.send("before the restart")
    expect(bob.messages).to_have_count(1)

    server.stop()
    for someone in (alice, bob):
        expect(someone.connection).to_have_text("Reconnecting…")
    add_messages_offline(
        server.settings, room="ops", author="bob", texts=["gap 1", "gap 2", "gap 3"]
    )
    server.start()

    expected = [said("alice", "before the restart")] + [said("bob", f"gap {n}") for n in (1, 2, 3)]
    for someone in (alice, bob):
        expect(someone.connection).to_have_text("Connected", timeout=20_000)
        expect(someone.messages).to_have_text(expected)
        expect(someone.members).to_have_text(["alice", "bob"])
    assert re.search(r"[?&]since=\d+", socket_urls[-1])

    bob.send("after the restart")
    expect(alice.messages).to_have_text([*expected, said("bob", "after the restart")])


def test_a_recovery_past_the_limit_is_completed_over_http(
    live_server: Callable[..., LiveServer], person: Callable[..., Person]
) -> None:
    """On reconnect the history frame holds 2 of the 6 missed messages and ``more``: the
    page fetches the others (after=) and shows every message once, in order."""
    server = live_server(history_limit=2, recovery_limit=2)
    bob = person(server)
    bob.register("bob")
    bob.join("ops")
    bob.send("before the restart")
    expect(bob.messages).to_have_count(1)
    fetched: list[str] = []
    bob.page.on(
        "request", lambda request: "/messages?after=" in request.url and fetched.append(request.url)
    )

    server.stop()
    expect(bob.connection).to_have_text("Reconnecting…")
    gap = [f"gap {n}" for n in range(1, 7)]
    add_messages_offline(server.settings, room="ops", author="bob", texts=gap)
    server.start()

    expect(bob.connection).to_have_text("Connected", timeout=20_000)
    expected = [said("bob", "before the restart")] + [said("bob", text) for text in gap]
    expect(bob.messages).to_have_text(expected)
    assert fetched, "the rest of the recovery was not fetched over HTTP"
    bob.send("after the restart")
    expect(bob.messages).to_have_text([*expected, said("bob", "after the restart")])


def test_log_out_and_back_in(live: LiveServer, person: Callable[..., Person]) -> None:
    carol = person(live)
    carol.register("carol")
    carol.join("tea")
    carol.send("Anyone for tea?")
    assert carol.page.context.cookies() == []

    carol.page.get_by_role("button", name="Log out").click()
    carol.sees_login_form("You have logged out.")
    # Nothing of the session is kept; only the room she was in, to come back to.
    assert carol.page.evaluate("Object.keys(sessionStorage)") == ["roomchat.room"]
    carol.page.reload()
    carol.sees_login_form(None)

    carol.fill_in("carol", "not her password")
    carol.page.get_by_role("button", name="Log in").click()
    expect(carol.notice).to_have_text("Incorrect username or password.")
    carol.fill_in("carol")
    carol.page.get_by_role("button", name="Log in").click()
    expect(carol.page.get_by_text("Signed in as carol")).to_be_visible()
    expect(carol.page.get_by_role("button", name="tea")).to_be_visible()


# The page's answer to a token refused (expired, or signed with another key) is the same
# whatever the backend: these run once.
@pytest.mark.embedded_only
def test_an_expired_token_lands_on_the_login_form(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    dave = person_with_token(live, person, "dave", expires_in=timedelta(minutes=-30))
    dave.sees_login_form(EXPIRED)


@pytest.mark.embedded_only
def test_a_token_expiring_mid_chat_lands_on_the_login_form(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    # The token must outlive a new browser context, two page loads and a connect on a
    # loaded machine, so it is not short; the wait for the form covers all of its life.
    lifetime = timedelta(seconds=8)
    erin = person_with_token(live, person, "erin", expires_in=lifetime)
    expect(erin.connection).to_have_text("Connected", timeout=lifetime.total_seconds() * 1000)
    erin.sees_login_form(EXPIRED, timeout=(lifetime.total_seconds() + 10) * 1000)


@pytest.mark.embedded_only
def test_a_token_the_server_refuses_on_reconnect_lands_on_the_login_form(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    frank = person(live)
    frank.register("frank")
    frank.join("night")
    live.stop()
    expect(frank.connection).to_have_text("Reconnecting…")
    # A new key: the old token no longer verifies, so the handshake is refused (401).
    new_key = SecretStr("another-" + TEST_SECRET)
    live.settings = live.settings.model_copy(update={"secret_key": new_key})
    live.start()
    frank.sees_login_form(EXPIRED)


def person_with_token(
    server: LiveServer, person: Callable[..., Person], username: str, *, expires_in: timedelta
) -> Person:
    """A registered user whose tab holds a token that expires ``expires_in`` from now."""
    response = httpx.post(
        f"{server.http_url}/api/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    # Minted as a trusted backend may, issued now: one issued before the account was
    # created would be refused (it would have been another account's).
    now = datetime.now(UTC).timestamp()
    claims = {"sub": username, "iat": int(now), "exp": now + expires_in.total_seconds()}
    token = str(jwt.encode(claims, TEST_SECRET, algorithm="HS256"))
    someone = person(server)
    someone.set_session(token, username, "night")
    return someone


def add_messages_offline(settings: Settings, *, room: str, author: str, texts: list[str]) -> None:
    """Write messages straight to the database while the server is down."""

    async def add() -> None:
        engine = create_engine(settings.database_url)
        try:
            users = EngineStore(engine)
            user = await users.get_user(username=author)
            assert user is not None
            drafts = [store.Draft(user.id, user.username, text) for text in texts]
            await users.add_messages_to_rooms(drafts={room: drafts})
        finally:
            await engine.dispose()

    # Playwright's sync API keeps an event loop of its own on this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, add()).result()


# -- Day-to-day use (issue 16): no words lost, nobody pushed out --------------------------

#: Keeps the page's sockets reachable from a test, to misbehave on the page's behalf.
RECORD_SOCKETS = """
    window.__sockets = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) { super(...args); window.__sockets.push(this); }
    };
"""


def in_room(server: LiveServer, person: Callable[..., Person], username: str, room: str) -> Person:
    someone = person(server)
    someone.register(username)
    someone.join(room)
    return someone


def post_as(server: LiveServer, username: str, room: str, texts: list[str]) -> None:
    """Log ``username`` (registered) in over HTTP and post ``texts`` to ``room``."""
    with httpx.Client(base_url=server.http_url) as client:
        response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        for text in texts:
            answer = client.post(
                f"/api/rooms/{room}/messages", json={"text": text}, headers=headers
            )
            assert answer.status_code in (201, 429), answer.text


def metric(server: LiveServer, name: str) -> float:
    """The sum of a Prometheus counter's samples on ``/metrics``."""
    text = httpx.get(f"{server.http_url}/metrics").text
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


@pytest.mark.embedded_only
def test_a_burst_past_the_rate_limit_loses_no_text_and_logs_no_one_out(
    live_server: Callable[..., LiveServer], person: Callable[..., Person]
) -> None:
    """Thirty messages typed as fast as keys go, against a limit of 10 a second after a
    burst of 5: the page paces them, so the server refuses none and every one arrives."""
    server = live_server(messages_per_second=10, message_burst=5)
    gina = in_room(server, person, "gina", "fast")
    texts = [f"quick {n}" for n in range(1, 31)]
    for text in texts:
        gina.message_field.fill(text)
        gina.message_field.press("Enter")
    expect(gina.message_field).to_have_value("")
    expect(gina.messages).to_have_text([said("gina", text) for text in texts], timeout=20_000)
    expect(gina.page.get_by_role("list", name="Unsent messages")).to_be_hidden()
    expect(gina.page.get_by_role("button", name="Log out")).to_be_visible()
    assert metric(server, "roomchat_rate_limited_total") == 0


@pytest.mark.embedded_only
def test_a_refused_message_is_kept_with_retry(
    live_server: Callable[..., LiveServer], person: Callable[..., Person]
) -> None:
    """The user's script spent their shared limit: the page's message is refused (an
    ``error`` frame), kept as "Not sent" with its text, and Retry sends it once the
    limit has refilled (the server's buckets run on a clock the test moves)."""
    clock = FakeClock()
    server = live_server(messages_per_second=1, message_burst=3, clock=clock)
    hana = in_room(server, person, "hana", "slow")
    post_as(server, "hana", "slow", ["from a script 1", "from a script 2", "from a script 3"])
    expect(hana.messages).to_have_count(3)

    hana.send("from the page")
    unsent = hana.page.get_by_role("list", name="Unsent messages").get_by_role("listitem")
    expect(unsent).to_have_text(re.compile(r"^from the pageNot sent: slow down"))
    expect(hana.page.get_by_role("button", name="Log out")).to_be_visible()

    clock.now += 10
    unsent.get_by_role("button", name="Retry").click()
    expect(hana.messages.last).to_have_text(said("hana", "from the page"))
    expect(unsent).to_have_count(0)


#: The page's first message frame is followed at once by closing its socket (4000: the
#: page's own "connect again"): the server stores the message, its ack never arrives.
DROP_AFTER_FIRST_MESSAGE = """
    const nativeSend = WebSocket.prototype.send;
    window.__messageFrames = [];
    WebSocket.prototype.send = function (data) {
        nativeSend.call(this, data);
        if (!String(data).includes('"type":"message"')) return;
        window.__messageFrames.push(JSON.parse(data));
        if (window.__messageFrames.length === 1) this.close(4000);
    };
"""


@pytest.mark.embedded_only
def test_a_message_whose_ack_was_lost_is_sent_again_and_stored_once(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    joan = person(live)
    joan.page.add_init_script(DROP_AFTER_FIRST_MESSAGE)
    joan.page.reload()
    joan.register("joan")
    joan.join("keyed")
    joan.send("only once")
    expect(joan.messages).to_have_text([said("joan", "only once")])
    expect(joan.page.get_by_role("list", name="Unsent messages")).to_be_hidden()
    frames = joan.page.evaluate("() => window.__messageFrames")
    assert len(frames) == 2, frames  # once on the dropped socket, once on the next
    assert frames[0]["client_id"] == frames[1]["client_id"]
    token = httpx.post(
        f"{live.http_url}/api/auth/token", data={"username": "joan", "password": PASSWORD}
    ).json()["access_token"]
    stored = httpx.get(
        f"{live.http_url}/api/rooms/keyed/messages", headers={"Authorization": f"Bearer {token}"}
    ).json()["messages"]
    assert [m["text"] for m in stored] == ["only once"]


@pytest.mark.embedded_only
def test_the_abuse_close_reconnects_instead_of_logging_out(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    ivan = person(live)
    ivan.page.add_init_script(RECORD_SOCKETS)
    ivan.page.reload()
    ivan.register("ivan")
    ivan.join("noisy")
    ivan.send("before the flood")
    # Junk frames on the page's own socket until the server closes it for abuse.
    ivan.page.evaluate(
        "() => { const s = window.__sockets.at(-1); for (let i = 0; i < 200; i++) s.send('{'); }"
    )
    expect(ivan.room_notice).to_contain_text("Too many messages at once")
    expect(ivan.connection).to_have_text("Connected", timeout=15_000)
    expect(ivan.page.get_by_role("button", name="Log out")).to_be_visible()
    expect(ivan.page.get_by_role("heading", name="noisy")).to_be_visible()
    ivan.send("after the flood")
    expect(ivan.messages).to_have_text(
        [said("ivan", "before the flood"), said("ivan", "after the flood")]
    )


@pytest.mark.embedded_only
def test_a_text_over_the_limit_is_refused_whole_with_a_counter(
    live_server: Callable[..., LiveServer], person: Callable[..., Person]
) -> None:
    server = live_server(max_message_chars=100)
    jane = in_room(server, person, "jane", "long")
    counter = jane.page.locator("#message-count")
    jane.message_field.fill("x" * 80)
    expect(counter).to_be_hidden()
    jane.message_field.fill("x" * 95)
    expect(counter).to_have_text("95 / 100")
    jane.message_field.fill("x" * 150)  # as a paste would: nothing is cut
    expect(counter).to_have_text("150 / 100")
    # One long word wraps in the field; it does not widen the page past the Send button.
    expect(jane.page.get_by_role("button", name="Send")).to_be_in_viewport()
    jane.page.get_by_role("button", name="Send").click()
    expect(jane.room_notice).to_contain_text("50 characters over the limit of 100")
    expect(jane.message_field).to_have_value("x" * 150)
    expect(jane.messages).to_have_count(0)


@pytest.mark.embedded_only
def test_messages_hold_lines_links_and_collapse_when_long(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    kim = in_room(live, person, "kim", "reading")
    kim.message_field.fill("line one")
    kim.message_field.press("Shift+Enter")
    kim.message_field.press_sequentially("line two")
    kim.message_field.press("Enter")
    expect(kim.messages).to_have_text([said("kim", "line one\nline two")])

    kim.send("see https://example.org/wiki/A_(b). or javascript:alert(1) or http://x.test")
    links = kim.messages.last.get_by_role("link")
    expect(links).to_have_count(2)
    expect(links.first).to_have_attribute("href", "https://example.org/wiki/A_(b)")
    expect(links.first).to_have_attribute("rel", "noopener noreferrer")
    expect(links.last).to_have_text("http://x.test")

    kim.send("שלום עולם")
    expect(kim.messages.last.locator(".text")).to_have_attribute("dir", "auto")

    kim.send("long " * 400)
    show_more = kim.messages.last.get_by_role("button", name="Show more")
    expect(show_more).to_have_attribute("aria-expanded", "false")
    show_more.click()
    expect(kim.messages.last.get_by_role("button", name="Show less")).to_have_attribute(
        "aria-expanded", "true"
    )

    # One author in a row: the name shows once, after the day's separator.
    expect(kim.page.get_by_role("separator")).to_have_text(["Today"])
    expect(kim.page.locator("#messages .message.continued")).to_have_count(3)


@pytest.mark.embedded_only
def test_scrolling_up_pages_back_and_new_messages_are_announced(
    live_server: Callable[..., LiveServer], person: Callable[..., Person]
) -> None:
    server = live_server(messages_per_second=1000, message_burst=1000)
    texts = [f"old {n}" for n in range(1, 121)]
    leo = person(server)
    leo.register("leo")
    post_as(server, "leo", "archive", texts)
    leo.join("archive")
    expect(leo.messages).to_have_count(50)  # the history on join

    log = leo.page.get_by_role("list", name="Messages", exact=True)
    for count in (100, 120):
        oldest = log.locator(f'li[data-id="{leo.messages.first.get_attribute("data-id")}"]')
        log.evaluate("list => { list.scrollTop = 0; }")
        expect(leo.messages).to_have_count(count)
        expect(oldest).to_be_in_viewport()  # the reader keeps their place
    expect(leo.messages).to_have_text([said("leo", text) for text in texts])

    register = {"username": "nina", "password": PASSWORD}
    assert httpx.post(f"{server.http_url}/api/auth/register", json=register).status_code == 201
    post_as(server, "nina", "archive", ["while leo reads old ones"])
    pill = leo.page.get_by_role("button", name="New messages ↓")
    expect(pill).to_be_visible()
    pill.click()
    expect(leo.messages.last).to_be_in_viewport()
    expect(pill).to_be_hidden()


@pytest.mark.embedded_only
def test_members_are_marked_stale_while_reconnecting_and_the_room_kept_after_login(
    live: LiveServer, person: Callable[..., Person]
) -> None:
    mia = in_room(live, person, "mia", "kitchen")
    stale = mia.page.get_by_text("Reconnecting: this list may be out of date.")
    expect(stale).to_be_hidden()
    live.stop()
    expect(stale).to_be_visible()
    live.start()
    expect(mia.connection).to_have_text("Connected", timeout=20_000)
    expect(stale).to_be_hidden()

    mia.page.get_by_role("button", name="Log out").click()
    mia.fill_in("mia")
    mia.page.get_by_role("button", name="Log in").click()
    expect(mia.page.get_by_role("heading", name="kitchen")).to_be_visible()
