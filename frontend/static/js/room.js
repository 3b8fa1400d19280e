// Being in a room: its socket, the Messages and Members lists, typing, and sending.
import { ApiError, messagesAfter, messagesBefore } from "./api.js";
import { Composer } from "./composer.js";
import { RoomConnection } from "./connection.js";
import { sameUser } from "./dom.js";
import { MessageLog } from "./messages.js";
import { Outbox } from "./outbox.js";
import { MemberList, TypingIndicator } from "./presence.js";

const TYPING_EVERY_MS = 2500;
const STATUS = { connecting: "Connecting…", open: "Connected", reconnecting: "Reconnecting…" };
const NOT_RECOVERED = "Could not load the messages you missed; reconnecting…";
const NO_EARLIER = "Could not load earlier messages; scroll up to try again.";
const SLOW_DOWN = "Too many messages at once: reconnecting in a moment. Nothing you wrote is lost.";
// `error` codes that answer a message the page sent (API.md, "Client frames").
const SEND_ERRORS = new Set([
  "rate_limited",
  "store_unavailable",
  "unavailable",
  "text_too_long",
  "empty_text",
  "bad_text",
]);
// The page's share of the server's message limit: under it, so the server need not refuse.
const PACE_SHARE = 0.8;
const EARLIER_PAGE = 50;

export class RoomView {
  // hooks: isSessionValid() -> Promise<boolean>, onSessionEnded(reason), onPresence(room)
  constructor(hooks) {
    this.hooks = hooks;
    this.view = document.getElementById("room-view");
    this.placeholder = document.getElementById("pick-a-room");
    this.title = document.getElementById("room-title");
    this.status = document.getElementById("connection");
    this.notice = document.getElementById("room-notice");
    const form = document.getElementById("send-form");
    const limits = form.dataset;
    const counter = document.getElementById("message-count");
    this.composer = new Composer(document.getElementById("message"), counter, {
      maxChars: Number(limits.maxChars),
      onSubmit: () => this.send(),
    });
    this.outbox = new Outbox(document.getElementById("outbox"), {
      rate: Number(limits.messagesPerSecond) * PACE_SHARE,
      burst: Math.max(1, Math.floor(Number(limits.messageBurst) * PACE_SHARE)),
      send: (text, clientId) =>
        this.connection?.send({ type: "message", text, client_id: clientId }) ?? false,
    });
    const newMessages = document.getElementById("new-messages");
    this.messages = new MessageLog(document.getElementById("messages"), newMessages, {
      onNearTop: () => this.loadEarlier(),
    });
    const stale = document.getElementById("members-stale");
    this.members = new MemberList(document.getElementById("members"), stale);
    this.typing = new TypingIndicator(document.getElementById("typing"));
    this.session = null;
    this.room = null;
    this.connection = null;
    // While missed messages are fetched over HTTP: the last one fetched (a reconnect
    // resumes after it, not after the newest live message), and which fetch is current.
    this.recoveredUpTo = null;
    this.recovery = 0;
    this.lastTypingSent = 0;
    // Paging back through older messages: which room's fetch is under way, and whether
    // the room has none older than those shown.
    this.loadingEarlier = false;
    this.noEarlier = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.composer.field.addEventListener("input", () => this.sendTyping());
  }

  start(session) {
    this.session = session;
    this.messages.me = session.username;
    this.members.me = session.username;
  }

  join(room) {
    if (room !== this.room) {
      this.leave();
      this.room = room;
      this.title.textContent = room;
      this.view.hidden = false;
      this.placeholder.hidden = true;
      this.connection = new RoomConnection({
        room,
        token: this.session.token,
        since: () => this.recoveredUpTo ?? this.messages.lastId,
        handlers: {
          onFrame: (frame) => this.receive(frame),
          onState: (state) => this.showState(state),
          onSessionEnded: (reason) => this.hooks.onSessionEnded(reason),
          onSlowDown: () => (this.notice.textContent = SLOW_DOWN),
          isSessionValid: () => this.hooks.isSessionValid(),
        },
      });
    }
    this.composer.focus();
  }

  leave() {
    this.connection?.close();
    this.connection = null;
    this.room = null;
    this.recoveredUpTo = null;
    this.recovery += 1;
    this.loadingEarlier = false;
    this.noEarlier = false;
    this.messages.clear();
    this.outbox.clear();
    this.members.set([]);
    this.typing.reset();
    this.notice.textContent = "";
    this.view.hidden = true;
    this.placeholder.hidden = false;
  }

  receive(frame) {
    if (frame.type !== "error" && frame.room !== this.room) return;
    if (frame.type === "ack") this.outbox.acknowledged(frame.client_id);
    switch (frame.type) {
      case "history":
        for (const message of frame.messages) this.add(message);
        this.recovery += 1; // a newer history frame takes over from any fetch under way
        this.recoveredUpTo = null;
        if (frame.more) this.recover(frame);
        break;
      case "message":
        this.add(frame);
        this.typing.clear(frame.user);
        break;
      case "presence":
        this.members.set(frame.members);
        this.members.markStale(false);
        this.hooks.onPresence(this.room);
        break;
      case "join":
        this.members.add(frame.user);
        this.hooks.onPresence(this.room);
        break;
      case "leave":
        this.members.remove(frame.user);
        this.typing.clear(frame.user);
        this.hooks.onPresence(this.room);
        break;
      case "typing":
        if (!sameUser(frame.user, this.session.username)) this.typing.show(frame.user);
        break;
      case "error":
        if (frame.client_id && SEND_ERRORS.has(frame.code)) {
          this.outbox.refuse(frame.client_id, frame.detail);
        } else this.notice.textContent = frame.detail;
        break;
    }
  }

  add(message) {
    this.messages.add(message);
  }

  // The reader scrolled up to the oldest message shown: fetch the page before it.
  async loadEarlier() {
    if (this.loadingEarlier || this.noEarlier || this.messages.firstId === null) return;
    const room = this.room;
    this.loadingEarlier = true;
    try {
      const before = this.messages.firstId;
      const page = await messagesBefore(this.session.token, room, before, EARLIER_PAGE);
      if (room !== this.room) return;
      if (page.messages.length < EARLIER_PAGE) this.noEarlier = true;
      this.messages.prepend(page.messages);
    } catch (error) {
      if (room !== this.room) return;
      if (error instanceof ApiError && error.status === 401) this.hooks.onSessionEnded(null);
      else this.notice.textContent = NO_EARLIER;
    } finally {
      if (room === this.room) this.loadingEarlier = false;
    }
  }

  // The history frame holds at most ROOMCHAT_RECOVERY_LIMIT of the missed messages; with
  // `more`, fetch the rest up to its `latest` (live messages come after it).
  async recover({ messages, latest }) {
    const recovery = this.recovery;
    const room = this.room;
    let after = messages.at(-1)?.id ?? 0;
    this.recoveredUpTo = after;
    try {
      while (after < latest) {
        const page = await messagesAfter(this.session.token, room, after);
        if (recovery !== this.recovery) return;
        if (page.messages.length === 0) break;
        for (const message of page.messages) {
          if (message.id <= latest) this.add(message);
        }
        after = page.messages.at(-1).id;
        this.recoveredUpTo = after;
      }
      this.recoveredUpTo = null;
    } catch (error) {
      if (recovery !== this.recovery) return;
      if (error instanceof ApiError && error.status === 401) {
        this.hooks.onSessionEnded(null);
        return;
      }
      this.notice.textContent = NOT_RECOVERED;
      this.connection?.reconnect(); // resumes after `recoveredUpTo`
    }
  }

  showState(state) {
    this.status.textContent = STATUS[state];
    this.status.dataset.state = state;
    if (state !== "open") {
      this.typing.reset();
      this.members.markStale(true);
      return;
    }
    if (this.notice.textContent === SLOW_DOWN) this.notice.textContent = "";
    this.outbox.opened();
  }

  // The text goes to the outbox, which sends it at a pace the server accepts (or once
  // connected) and keeps it, with "Retry", if it is refused.
  send() {
    const text = this.composer.value;
    if (!text.trim()) return;
    if (this.composer.tooLong) {
      this.notice.textContent = this.composer.tooLongMessage();
      return;
    }
    this.outbox.enqueue(text);
    this.composer.value = "";
    this.notice.textContent = "";
    this.lastTypingSent = 0;
  }

  sendTyping() {
    const now = Date.now();
    if (!this.composer.value || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    if (this.connection?.send({ type: "typing" })) this.lastTypingSent = now;
  }
}
