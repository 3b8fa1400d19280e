// Being in a room: its socket, the Messages and Members lists, typing, and sending.
import { ApiError, messagesAfter } from "./api.js";
import { RoomConnection } from "./connection.js";
import { sameUser } from "./dom.js";
import { MessageLog } from "./messages.js";
import { MemberList, TypingIndicator } from "./presence.js";

const TYPING_EVERY_MS = 2500;
const STATUS = { connecting: "Connecting…", open: "Connected", reconnecting: "Reconnecting…" };
const NOT_SENT = "Not connected right now: your message is kept, send it again once reconnected.";
const NOT_RECOVERED = "Could not load the messages you missed; reconnecting…";

export class RoomView {
  // hooks: isSessionValid() -> Promise<boolean>, onSessionEnded(reason), onPresence(room)
  constructor(hooks) {
    this.hooks = hooks;
    this.view = document.getElementById("room-view");
    this.placeholder = document.getElementById("pick-a-room");
    this.title = document.getElementById("room-title");
    this.status = document.getElementById("connection");
    this.notice = document.getElementById("room-notice");
    this.field = document.getElementById("message");
    this.messages = new MessageLog(document.getElementById("messages"));
    this.members = new MemberList(document.getElementById("members"));
    this.typing = new TypingIndicator(document.getElementById("typing"));
    this.session = null;
    this.room = null;
    this.connection = null;
    // While missed messages are fetched over HTTP: the last one fetched (a reconnect
    // resumes after it, not after the newest live message), and which fetch is current.
    this.recoveredUpTo = null;
    this.recovery = 0;
    this.lastTypingSent = 0;
    document.getElementById("send-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.field.addEventListener("input", () => this.sendTyping());
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
          isSessionValid: () => this.hooks.isSessionValid(),
        },
      });
    }
    this.field.focus();
  }

  leave() {
    this.connection?.close();
    this.connection = null;
    this.room = null;
    this.recoveredUpTo = null;
    this.recovery += 1;
    this.messages.clear();
    this.members.set([]);
    this.typing.reset();
    this.notice.textContent = "";
    this.view.hidden = true;
    this.placeholder.hidden = false;
  }

  receive(frame) {
    if (frame.type !== "error" && frame.room !== this.room) return;
    switch (frame.type) {
      case "history":
        for (const message of frame.messages) this.messages.add(message);
        this.recovery += 1; // a newer history frame takes over from any fetch under way
        this.recoveredUpTo = null;
        if (frame.more) this.recover(frame);
        break;
      case "message":
        this.messages.add(frame);
        this.typing.clear(frame.user);
        break;
      case "presence":
        this.members.set(frame.members);
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
        this.notice.textContent = frame.detail;
        break;
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
          if (message.id <= latest) this.messages.add(message);
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
    if (state !== "open") this.typing.reset();
    else if (this.notice.textContent === NOT_SENT) this.notice.textContent = "";
  }

  send() {
    const text = this.field.value;
    if (!text.trim()) return;
    if (!this.connection?.send({ type: "message", text })) {
      this.notice.textContent = NOT_SENT;
      return;
    }
    this.field.value = "";
    this.notice.textContent = "";
    this.lastTypingSent = 0;
  }

  sendTyping() {
    const now = Date.now();
    if (!this.field.value || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    if (this.connection?.send({ type: "typing" })) this.lastTypingSent = now;
  }
}
