// Messages on their way: sent no faster than the server accepts, shown until the server
// acknowledges them (an `ack` naming the message's `client_id`), and kept with "Retry"
// when one is refused. Each message keeps its `client_id` for good, so sending it again
// (after a reconnect, or Retry) never stores it twice: the server stores a key once.
// Nothing the person wrote is lost, and a burst never has to be refused by the server.
import { element } from "./dom.js";

const STATE_TEXT = {
  waiting: "Waiting to send…",
  sent: "Sending…",
};

export class Outbox {
  // send(text, clientId) -> true when handed to an open socket. rate, burst: the page's
  // share of the server's message limit (slightly under it, so the server need not refuse).
  constructor(list, { rate, burst, send }) {
    this.list = list;
    this.send = send;
    this.bucket = new TokenBucket(rate, burst);
    this.entries = [];
    this.generation = 0; // which socket a message went out on
    this.timer = null;
  }

  get pending() {
    return this.entries.length;
  }

  enqueue(text) {
    this.entries.push(this.entry(text));
    this.pump();
  }

  // Send what waits, as far as the pace allows; come back when the next token is due.
  pump() {
    clearTimeout(this.timer);
    this.timer = null;
    for (const entry of this.entries) {
      if (entry.state !== "waiting") continue;
      const wait = this.bucket.waitMs();
      if (wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait);
        return;
      }
      if (!this.send(entry.text, entry.clientId)) return; // sent once the socket opens
      this.bucket.take();
      entry.generation = this.generation;
      this.show(entry, "sent");
    }
  }

  // A new socket is open: what waits goes out on it, and so does what went out on an
  // earlier socket without an ack (lost, or stored unanswered: the key settles which).
  opened() {
    this.generation += 1;
    for (const entry of this.entries) {
      if (entry.state === "sent") this.show(entry, "waiting");
    }
    this.pump();
  }

  // The server stored the message sent as `clientId` (or had stored it already).
  acknowledged(clientId) {
    const entry = this.entries.find((candidate) => candidate.clientId === clientId);
    if (entry) this.remove(entry);
  }

  // The server refused the message sent as `clientId`: it was not stored.
  refuse(clientId, reason) {
    const entry = this.entries.find((candidate) => candidate.clientId === clientId);
    if (entry && entry.state === "sent") this.fail(entry, `Not sent: ${reason}`);
  }

  clear() {
    clearTimeout(this.timer);
    this.entries = [];
    this.list.replaceChildren();
    this.list.hidden = true;
  }

  fail(entry, reason) {
    entry.reason = reason;
    this.show(entry, "failed");
  }

  retry(entry) {
    this.show(entry, "waiting");
    this.pump();
  }

  remove(entry) {
    this.entries = this.entries.filter((other) => other !== entry);
    entry.item.remove();
    this.list.hidden = this.entries.length === 0;
  }

  entry(text) {
    const state = element("span", { className: "state" });
    const retry = element("button", { className: "link-button", text: "Retry" });
    const discard = element("button", { className: "link-button", text: "Discard" });
    const body = element("p", { className: "text", text });
    body.dir = "auto";
    const meta = element("p", { className: "meta" }, state, " ", retry, " ", discard);
    const item = element("li", { className: "unsent" }, body, meta);
    const clientId = newClientId();
    const entry = { text, clientId, state: "waiting", generation: 0, reason: "", item };
    Object.assign(entry, { retry, discard });
    entry.stateLine = state;
    for (const button of [retry, discard]) button.type = "button";
    retry.addEventListener("click", () => this.retry(entry));
    discard.addEventListener("click", () => this.remove(entry));
    this.list.append(item);
    this.list.hidden = false;
    this.show(entry, "waiting");
    return entry;
  }

  show(entry, state) {
    entry.state = state;
    entry.stateLine.textContent = state === "failed" ? entry.reason : STATE_TEXT[state];
    entry.item.dataset.state = state;
    entry.retry.hidden = state !== "failed";
    entry.discard.hidden = state !== "failed";
  }
}

// A random key of 32 hex digits (crypto.randomUUID needs a secure context; this does not).
function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// Tokens for sending: `burst` at once, then `rate` a second.
class TokenBucket {
  constructor(rate, burst) {
    this.rate = rate;
    this.capacity = burst;
    this.tokens = burst;
    this.at = performance.now();
  }

  refill() {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
  }

  waitMs() {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }

  take() {
    this.tokens -= 1;
  }
}
