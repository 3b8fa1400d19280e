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
