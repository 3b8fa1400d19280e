// The signed-in session lives in this tab's sessionStorage only: it survives a reload,
// not the tab, and is never sent as a cookie. The room a person was in outlives their
// session, so logging in again (after an expiry, say) brings them back to it.
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

// The last room, per user (lower-cased name): another person logging in here starts fresh.
export function loadRoom(username) {
  const rooms = lastRooms();
  return rooms[username.toLowerCase()] ?? null;
}

export function saveRoom(username, room) {
  const rooms = lastRooms();
  rooms[username.toLowerCase()] = room;
  sessionStorage.setItem(KEYS.room, JSON.stringify(rooms));
}

function lastRooms() {
  try {
    const rooms = JSON.parse(sessionStorage.getItem(KEYS.room) ?? "{}");
    return rooms && typeof rooms === "object" && !Array.isArray(rooms) ? rooms : {};
  } catch {
    return {}; // an older page kept a bare room name here
  }
}

export function clearSession() {
  sessionStorage.removeItem(KEYS.token);
  sessionStorage.removeItem(KEYS.username);
}

// The token's own `exp` claim, read without verifying it (the server does that): enough to
// tell an expired session from a server that closed the connection for another reason.
export function tokenExpired(token) {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return Date.now() / 1000 >= JSON.parse(atob(payload)).exp;
  } catch {
    return false;
  }
}
