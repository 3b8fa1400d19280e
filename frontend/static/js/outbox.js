// Messages on their way: sent no faster than the server accepts, shown until the room
// echoes them back, and kept with "Retry" when one is refused or its fate is unknown.
// Nothing the person wrote is lost, and a burst never has to be refused by the server.
import { element } from "./dom.js";

const STATE_TEXT = {
  waiting: "Waiting to send…",
  sent: "Sending…",
};

export class Outbox {
  // send(text) -> true when handed to an open socket. rate, burst: the page's share of
  // the server's message limit (slightly under it, so the server need not refuse).
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
      if (!this.send(entry.text)) return; // not connected: sent once the socket opens
      this.bucket.take();
      entry.generation = this.generation;
      this.show(entry, "sent");
    }
  }

  // A new socket is open: what waits goes out on it.
  opened() {
    this.generation += 1;
    this.pump();
  }

  // The room has the history since the last message seen: a message sent on an earlier
  // socket that is not in it may not have been stored. Offer to send it again.
  caughtUp() {
    for (const entry of this.entries) {
      if (entry.state === "sent" && entry.generation < this.generation) {
        this.fail(entry, "Not confirmed: the connection dropped while it was sent.");
      }
    }
  }

  // One of the person's own messages arrived in the room: the oldest unsent copy of
  // that text was stored. Messages are stored in the order they were sent, so an older
  // one still waiting for its echo was refused.
  confirm(text) {
    const index = this.entries.findIndex(
      (entry) => entry.state !== "waiting" && entry.text === text,
    );
    if (index === -1) return;
    for (const older of this.entries.slice(0, index)) {
      if (older.state === "sent") this.fail(older, "Not sent.");
    }
    this.remove(this.entries[index]);
  }

  // The server refused a message (an `error` frame about sending). Errors do not say
  // which message: the newest one sent is the likeliest (a burst is refused at its end);
  // an echo of it later puts things right (see ``confirm``).
  refuse(reason) {
    const sent = this.entries.filter((entry) => entry.state === "sent");
    const entry = sent.at(-1);
    if (entry) this.fail(entry, `Not sent: ${reason}`);
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
    const entry = { text, state: "waiting", generation: 0, reason: "", item, retry, discard };
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
