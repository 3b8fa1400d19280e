// The page: the login view or the chat view (lobby and room), and the session between.
import { ApiError, currentUser } from "./api.js";
import { LoginView } from "./login.js";
import { RoomView } from "./room.js";
import { RoomDirectory } from "./rooms.js";
import {
  clearSession,
  loadRoom,
  loadSession,
  saveRoom,
  saveSession,
  tokenExpired,
} from "./session.js";

const EXPIRED = "Your session expired — please log in again.";
const LOGGED_OUT = "You have logged out.";

const chatView = document.getElementById("chat-view");
const signedIn = document.getElementById("signed-in");
const logOutButton = document.getElementById("log-out");
let session = null;

const login = new LoginView({ onLoggedIn: startSession });
const directory = new RoomDirectory({
  onJoin: joinRoom,
  onUnauthorized: () => endSession(EXPIRED),
});
const room = new RoomView({
  isSessionValid,
  onSessionEnded: serverEndedSession,
  onPresence: () => directory.refreshSoon(),
});

function startSession(newSession) {
  session = newSession;
  saveSession(session);
  login.hide();
  document.getElementById("me").textContent = session.username;
  signedIn.hidden = false;
  logOutButton.hidden = false;
  chatView.hidden = false;
  room.start(session);
  directory.start(session.token);
  const lastRoom = loadRoom(session.username);
  if (lastRoom) joinRoom(lastRoom);
  else document.getElementById("room").focus();
}

function joinRoom(name) {
  saveRoom(session.username, name);
  directory.setCurrent(name);
  room.join(name);
}

function endSession(reason) {
  if (!session) return;
  session = null;
  room.leave();
  directory.stop();
  clearSession();
  signedIn.hidden = true;
  logOutButton.hidden = true;
  chatView.hidden = true;
  login.show(reason);
}

// Is the token still good? Only its expiry or a 401 says no: a server that is down does not.
async function isSessionValid() {
  const token = session?.token;
  if (!token || tokenExpired(token)) return false;
  try {
    await currentUser(token);
    return true;
  } catch (error) {
    return !(error instanceof ApiError && error.status === 401);
  }
}

// closeReason: null when the server refused the token at the handshake; the close reason
// of a 1008, which is an expired token or, with the token still good, the server's own.
async function serverEndedSession(closeReason) {
  if (closeReason === null || !(await isSessionValid())) {
    endSession(EXPIRED);
    return;
  }
  const why = closeReason ? `: ${closeReason}` : "";
  endSession(`The server closed your connection${why}. Please log in again.`);
}

logOutButton.addEventListener("click", () => endSession(LOGGED_OUT));

const saved = loadSession();
if (saved) startSession(saved);
else login.show();
