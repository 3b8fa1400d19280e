// The Messages list: each message once (by id), in id order, own messages marked.
import { element, sameUser } from "./dom.js";

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export class MessageLog {
  constructor(list, me) {
    this.list = list;
    this.me = me;
    this.ids = new Set();
    this.lastId = null;
  }

  clear() {
    this.list.replaceChildren();
    this.ids.clear();
    this.lastId = null;
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
    if (stickToBottom) this.list.scrollTop = this.list.scrollHeight;
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
