// The Messages list: each message once (by id), in id order, own messages marked.
// Consecutive messages of one author are grouped, days are separated, links are
// clickable, long messages are collapsed, and a "New messages" button shows while the
// reader is scrolled up and something new arrives.
import { element, sameUser } from "./dom.js";
import { linkify } from "./links.js";

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

// A message continues the one before it (no name shown) when the same author wrote it
// this soon after, on the same day.
const GROUP_WITHIN_MS = 5 * 60 * 1000;
// Longer messages are shown cut, with "Show more".
const COLLAPSE_OVER_CHARS = 700;
const COLLAPSE_OVER_LINES = 12;
const NEAR_TOP_PX = 80;
const NEAR_BOTTOM_PX = 48;

export class MessageLog {
  // hooks: onNearTop() when the reader scrolls up to the oldest message shown.
  constructor(list, newMessagesButton, hooks = {}) {
    this.list = list;
    this.newMessages = newMessagesButton;
    this.hooks = hooks;
    this.me = ""; // the signed-in user's name, set when a session starts
    this.ids = new Set();
    this.firstId = null;
    this.lastId = null;
    // Stay at the newest message while the reader is there, also when the list resizes.
    this.atBottom = true;
    list.addEventListener("scroll", () => this.scrolled());
    newMessagesButton.addEventListener("click", () => this.scrollToBottom());
    new ResizeObserver(() => this.atBottom && this.scrollToBottom()).observe(list);
  }

  clear() {
    this.list.replaceChildren();
    this.ids.clear();
    this.firstId = null;
    this.lastId = null;
    this.atBottom = true;
    this.newMessages.hidden = true;
  }

  add(message) {
    if (this.ids.has(message.id)) return;
    const stickToBottom = this.isScrolledToBottom();
    const newest = this.lastId === null || message.id > this.lastId;
    this.insert(message);
    if (stickToBottom || (newest && sameUser(message.user, this.me))) this.scrollToBottom();
    else if (newest) this.newMessages.hidden = false;
  }

  // Older messages, fetched as the reader scrolls up: added above, keeping their place.
  prepend(messages) {
    const fromBottom = this.list.scrollHeight - this.list.scrollTop;
    this.list.setAttribute("aria-busy", "true");
    for (const message of messages) {
      if (!this.ids.has(message.id)) this.insert(message);
    }
    this.list.scrollTop = this.list.scrollHeight - fromBottom;
    this.list.removeAttribute("aria-busy");
  }

  insert(message) {
    this.ids.add(message.id);
    const item = this.render(message);
    const later =
      this.lastId === null || message.id > this.lastId
        ? null
        : [...this.list.querySelectorAll(".message")].find((other) => idOf(other) > message.id);
    // Before the later message's day separator, if it has one: the separator may go.
    const separator = later?.previousElementSibling;
    const anchor = isSeparator(separator) ? separator : later;
    this.list.insertBefore(item, anchor);
    this.decorate(item);
    if (later) this.decorate(later);
    if (this.lastId === null || message.id > this.lastId) this.lastId = message.id;
    if (this.firstId === null || message.id < this.firstId) this.firstId = message.id;
  }

  // A day separator before the item when its day is not the previous message's, and the
  // author's name hidden (kept for screen readers) when it continues the previous one.
  decorate(item) {
    const previous = previousMessage(item);
    const day = dayOf(item);
    const separator = isSeparator(item.previousElementSibling) ? item.previousElementSibling : null;
    const newDay = !previous || dayOf(previous) !== day;
    if (newDay && !separator) item.before(daySeparator(day));
    if (!newDay && separator) separator.remove();
    const continues =
      !newDay &&
      sameUser(previous.dataset.user, item.dataset.user) &&
      timeOf(item) - timeOf(previous) < GROUP_WITHIN_MS;
    item.classList.toggle("continued", continues);
  }

  scrolled() {
    this.atBottom = this.isScrolledToBottom();
    if (this.atBottom) this.newMessages.hidden = true;
    if (this.list.scrollTop < NEAR_TOP_PX && this.firstId !== null) this.hooks.onNearTop?.();
  }

  scrollToBottom() {
    this.list.scrollTop = this.list.scrollHeight;
    this.atBottom = true;
    this.newMessages.hidden = true;
  }

  isScrolledToBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.list;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  render(message) {
    const mine = sameUser(message.user, this.me);
    const sent = new Date(message.ts);
    const time = element("time", { text: formatTime(sent) });
    time.dateTime = message.ts;
    time.title = dateAndTime.format(sent);
    const author = element("span", { className: "author", text: message.user });
    const text = element("p", { className: "text" }, ...linkify(message.text));
    text.dir = "auto";
    const item = element(
      "li",
      { className: mine ? "message mine" : "message" },
      element("p", { className: "meta" }, author, " ", time),
      text,
    );
    if (isLong(message.text)) collapse(item, text);
    item.dataset.id = String(message.id);
    item.dataset.user = message.user;
    item.dataset.ts = message.ts;
    return item;
  }
}

function isLong(text) {
  return text.length > COLLAPSE_OVER_CHARS || text.split("\n").length > COLLAPSE_OVER_LINES;
}

function collapse(item, text) {
  text.classList.add("collapsed");
  const toggle = element("button", { className: "show-more link-button", text: "Show more" });
  toggle.type = "button";
  toggle.setAttribute("aria-expanded", "false");
  toggle.addEventListener("click", () => {
    const expanded = text.classList.toggle("collapsed") === false;
    toggle.textContent = expanded ? "Show less" : "Show more";
    toggle.setAttribute("aria-expanded", String(expanded));
  });
  item.append(toggle);
}

function daySeparator(day) {
  const separator = element("li", { className: "day", text: dayLabel(day) });
  separator.setAttribute("role", "separator");
  separator.dataset.day = day;
  return separator;
}

function dayLabel(day) {
  const date = new Date(day);
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return "Today";
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return fullDate.format(date);
}

function previousMessage(item) {
  let node = item.previousElementSibling;
  while (node && !node.classList.contains("message")) node = node.previousElementSibling;
  return node;
}

function isSeparator(node) {
  return node?.classList.contains("day") ?? false;
}

function idOf(item) {
  return Number(item.dataset.id);
}

function timeOf(item) {
  return new Date(item.dataset.ts).getTime();
}

function dayOf(item) {
  return new Date(item.dataset.ts).toDateString();
}

function formatTime(moment) {
  const today = moment.toDateString() === new Date().toDateString();
  return today ? timeOfDay.format(moment) : dateAndTime.format(moment);
}
