// Who is in the room (the Members list) and who is typing (expires by itself).
import { element, sameUser } from "./dom.js";

export const TYPING_SHOWN_MS = 4000;

export class MemberList {
  // staleNote: shown while the list may be out of date (the room is reconnecting).
  constructor(list, staleNote) {
    this.list = list;
    this.staleNote = staleNote;
    this.me = ""; // the signed-in user's name, set when a session starts
    this.names = new Map(); // lower-case name -> name as the server spells it
    this.stale = false;
  }

  // While reconnecting, who is online is not known: say so, until a presence frame.
  markStale(stale) {
    this.stale = stale;
    const shown = stale && this.names.size > 0;
    this.list.classList.toggle("stale", shown);
    this.staleNote.hidden = !shown;
  }

  set(names) {
    this.names = new Map(names.map((name) => [name.toLowerCase(), name]));
    this.render();
    this.markStale(this.stale);
  }

  add(name) {
    this.names.set(name.toLowerCase(), name);
    this.render();
  }

  remove(name) {
    this.names.delete(name.toLowerCase());
    this.render();
  }

  render() {
    const names = [...this.names.values()].sort((a, b) => a.localeCompare(b));
    this.list.replaceChildren(
      ...names.map((name) =>
        element("li", { className: sameUser(name, this.me) ? "me" : undefined, text: name }),
      ),
    );
  }
}

export class TypingIndicator {
  constructor(line) {
    this.line = line;
    this.timers = new Map(); // name -> timeout that forgets them
  }

  show(name) {
    clearTimeout(this.timers.get(name));
    this.timers.set(name, setTimeout(() => this.clear(name), TYPING_SHOWN_MS));
    this.render();
  }

  clear(name) {
    clearTimeout(this.timers.get(name));
    if (this.timers.delete(name)) this.render();
  }

  reset() {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.render();
  }

  render() {
    const names = [...this.timers.keys()];
    if (names.length === 0) this.line.textContent = "";
    else if (names.length === 1) this.line.textContent = `${names[0]} is typing…`;
    else if (names.length === 2) this.line.textContent = `${names[0]} and ${names[1]} are typing…`;
    else this.line.textContent = "Several people are typing…";
  }
}
