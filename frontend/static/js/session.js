// The signed-in session lives in this tab's sessionStorage only: it survives a reload,
// not the tab, and is never sent as a cookie.
const KEYS = { token: "roomchat.token", username: "roomchat.username", room: "roomchat.room" };

export function loadSession() {
  const token = sessionStorage.getItem(KEYS.token);
  const username = sessionStorage.getItem(KEYS.username);
  return token && username ? { token, username } : null;
}

export function saveSession({ token, username }) {
  sessionStorage.setItem(KEYS.token, token);
  sessionStorage.setItem(KEYS.username, username);
}

export function loadRoom() {
  return sessionStorage.getItem(KEYS.room);
}

export function saveRoom(room) {
  sessionStorage.setItem(KEYS.room, room);
}

export function clearSession() {
  for (const key of Object.values(KEYS)) sessionStorage.removeItem(key);
}
