// The Messages list: each message once (by id), in id order, own messages marked.
import { element, sameUser } from "./dom.js";

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export class MessageLog {
  constructor(list) {
    this.list = list;
    this.me = ""; // the signed-in user's name, set when a session starts
    this.ids = new Set();
    this.lastId = null;
    // Stay at the newest message while the reader is there, also when the list resizes.
    this.atBottom = true;
    list.addEventListener("scroll", () => (this.atBottom = this.isScrolledToBottom()));
    new ResizeObserver(() => this.atBottom && this.scrollToBottom()).observe(list);
  }

  clear() {
    this.list.replaceChildren();
    this.ids.clear();
    this.lastId = null;
    this.atBottom = true;
  }

  add(message) {
    if (this.ids.has(message.id)) return;
    this.ids.add(message.id);
    const stickToBottom = this.isScrolledToBottom();
    const item = this.render(message);
    if (this.lastId === null || message.id > this.lastId) {
      this.list.append(item);
      this.lastId = message.id;
    } else {
      const later = [...this.list.children].find((other) => Number(other.dataset.id) > message.id);
      this.list.insertBefore(item, later ?? null);
    }
    if (stickToBottom) this.scrollToBottom();
  }

  scrollToBottom() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  isScrolledToBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.list;
    return scrollHeight - scrollTop - clientHeight < 48;
  }

  render(message) {
    const mine = sameUser(message.user, this.me);
    const sent = new Date(message.ts);
    const time = element("time", { text: formatTime(sent) });
    time.dateTime = message.ts;
    time.title = dateAndTime.format(sent);
    const author = element("span", { className: "author", text: message.user });
    const item = element(
      "li",
      { className: mine ? "message mine" : "message" },
      element("p", { className: "meta" }, author, " ", time),
      element("p", { className: "text", text: message.text }),
    );
    item.dataset.id = String(message.id);
    return item;
  }
}

function formatTime(moment) {
  const today = moment.toDateString() === new Date().toDateString();
  return today ? timeOfDay.format(moment) : dateAndTime.format(moment);
}
