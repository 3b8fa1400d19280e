// One room's WebSocket that keeps itself open: it reconnects with exponential backoff and
// jitter, asking for the messages it missed with `since=`, until it is closed or the
// session ends (close 1008, or a refused handshake whose token the server also refuses).

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const NORMAL_CLOSURE = 1000;
const POLICY_VIOLATION = 1008;
const RECONNECT = 4000; // ours: the page closes its socket to connect again
// A 1008 with this reason is the server's abuse close, not the end of the session: the
// token is still good, so connect again after a pause (API.md: "too many messages: slow down").
const SLOW_DOWN_REASON = "too many messages";
const SLOW_DOWN_DELAY_MS = 5000;

export class RoomConnection {
  // handlers: onFrame(frame), onState("connecting" | "open" | "reconnecting"),
  // isSessionValid() -> Promise<boolean>, onSessionEnded(reason): the reason of a 1008
  // close, or null for a refused handshake; onSlowDown(): closed for sending too fast.
  // since() -> the last message id seen, or null.
  constructor({ room, token, since, handlers }) {
    this.room = room;
    this.token = token;
    this.since = since;
    this.handlers = handlers;
    this.attempt = 0;
    this.socket = null;
    this.retryTimer = null;
    this.stopped = false;
    // Back online: retry now rather than when the backoff says.
    this.onOnline = () => !this.stopped && !this.socket && this.connect();
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  send(frame) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  // Drop the socket and connect again (with since=), as after a lost connection.
  reconnect() {
    this.socket?.close(RECONNECT);
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener("online", this.onOnline);
    this.socket?.close(NORMAL_CLOSURE);
    this.socket = null;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.handlers.onState(this.attempt === 0 ? "connecting" : "reconnecting");
    const socket = new WebSocket(this.url());
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      this.attempt = 0;
      this.handlers.onState("open");
    });
    socket.addEventListener("message", (event) => {
      const frame = parse(event.data);
      if (frame) this.handlers.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket === socket) this.closed(event, opened);
    });
    this.socket = socket;
  }

  url() {
    const url = new URL(`/ws/${encodeURIComponent(this.room)}`, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.token);
    const since = this.since();
    if (since !== null) url.searchParams.set("since", String(since));
    return url;
  }

  async closed(event, opened) {
    this.socket = null;
    if (this.stopped) return;
    if (event.code === POLICY_VIOLATION && event.reason.startsWith(SLOW_DOWN_REASON)) {
      this.handlers.onSlowDown();
      this.handlers.onState("reconnecting");
      this.retryTimer = setTimeout(() => this.connect(), SLOW_DOWN_DELAY_MS);
      return;
    }
    if (event.code === POLICY_VIOLATION) {
      this.close();
      this.handlers.onSessionEnded(event.reason);
      return;
    }
    // A refused handshake looks like a failed connection (1006 before open): it may be
    // the server being down, or our token being refused. Ask the server which.
    if (!opened && !(await this.handlers.isSessionValid())) {
      this.close();
      this.handlers.onSessionEnded(null);
      return;
    }
    if (!this.stopped && !this.socket) this.scheduleRetry(); // not already back ("online")
  }

  scheduleRetry() {
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.handlers.onState("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

function parse(data) {
  try {
    const frame = JSON.parse(data);
    return frame && typeof frame.type === "string" ? frame : null;
  } catch {
    return null;
  }
}
