// The lobby: the Room field with its Join button, and the rooms that exist with how many
// people are online (GET /api/rooms), each joinable. The list refreshes itself.
import { ApiError, listRooms } from "./api.js";
import { element } from "./dom.js";

const REFRESH_MS = 15000;
const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export class RoomDirectory {
  constructor({ onJoin, onUnauthorized }) {
    this.form = document.getElementById("join-form");
    this.field = document.getElementById("room");
    this.list = document.getElementById("rooms");
    this.empty = document.getElementById("no-rooms");
    this.onJoin = onJoin;
    this.onUnauthorized = onUnauthorized;
    this.token = null;
    this.current = null;
    this.timer = null;
    this.soon = null;
    this.entries = new Map(); // room name -> { item, button, count }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const room = this.field.value.trim();
      if (!ROOM_NAME.test(room)) return;
      this.field.value = "";
      this.onJoin(room);
    });
  }

  start(token) {
    this.token = token;
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.token = null;
    this.current = null;
    this.list.replaceChildren();
    this.entries.clear();
  }

  setCurrent(room) {
    this.current = room;
    this.refresh();
  }

  // Presence changed: refresh once the burst of join and leave frames has passed.
  refreshSoon() {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.refresh(), 300);
  }

  async refresh() {
    const token = this.token;
    if (!token) return;
    let rooms;
    try {
      rooms = await listRooms(token);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && token === this.token) {
        this.onUnauthorized();
      }
      return; // server unreachable: keep showing the last list
    }
    if (token === this.token) this.render(rooms);
  }

  // Updates the list in place, so a room button keeps the keyboard focus across refreshes.
  render(rooms) {
    this.empty.hidden = rooms.length > 0;
    const names = new Set(rooms.map((room) => room.name));
    for (const [name, entry] of this.entries) {
      if (names.has(name)) continue;
      entry.item.remove();
      this.entries.delete(name);
    }
    rooms.forEach(({ name, members }, index) => {
      const entry = this.entries.get(name) ?? this.create(name);
      entry.count.textContent = `${members} online`;
      if (name === this.current) entry.button.setAttribute("aria-current", "true");
      else entry.button.removeAttribute("aria-current");
      const there = this.list.children[index];
      if (there !== entry.item) this.list.insertBefore(entry.item, there ?? null);
    });
  }

  create(name) {
    const button = element("button", { className: "room-link", text: name });
    button.type = "button";
    button.addEventListener("click", () => this.onJoin(name));
    const entry = { button, count: element("span", { className: "count" }) };
    entry.item = element("li", {}, button, entry.count);
    this.entries.set(name, entry);
    return entry;
  }
}
